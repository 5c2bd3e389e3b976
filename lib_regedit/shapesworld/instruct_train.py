"""``python -m lib_regedit.shapesworld.instruct_train``: fine-tune the bundled ShapesWorld model into an
instruction-following editor (the instruct-pix2pix recipe: Brooks et al. 2023), for LIME to run on.

- The UNet takes 8 input channels: the noisy latent of the edited image, then the latent of the
  source image (the VAE posterior's mode, unscaled, as diffusers' ``StableDiffusionInstructPix2PixPipeline``
  feeds it). It starts from the text-to-image UNet; the 4 new input channels start at zero, so step 0
  is the text-to-image model.
- The text encoder is the bundled 0-layer one; only its token embeddings train, so the instruction
  words ("make", "turn", "into", "remove") get meanings.
- Conditioning dropout for the two guidance scales: 5% of the rows drop the instruction, 5% the
  image, 5% both (instruct-pix2pix's values).
- Pairs come from ``instruct_data.edit_pair`` (data seed 0), rendered and encoded on the fly.
- ``--grounding W`` adds TokenCompose's token loss (``grounding.py``) with weight ``W``: the
  instruction's object words (the colour, the shape and the new colour or shape: LIME's
  ``edit_tokens.object_positions``) should put their cross-attention inside the edited object's box.
  LIME finds its region of interest where these words attend, which plain fine-tuning does not teach.
  ``--grounding-choice W`` adds its choice term: the scene's other objects are the negatives, so a
  word must pick its own object rather than attend to every object.
- ``--text-layers N`` also trains the text encoder's first N layers (``wake_identity_layer``), so a
  shape word can take in the colour before it; the 0-layer encoder gives "red" one key in every
  phrase.

The result is a diffusers ``StableDiffusionInstructPix2PixPipeline`` folder (``--out``); ``--init``
resumes from one. Checkpoints every ``--ckpt-minutes``; the run stops at ``--steps`` or ``--minutes``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import render_array
from .instruct_data import edit_pair
from .model import text_core

DROP = 0.05  # each of: no instruction, no image, neither


def widen_unet(unet):
    """An 8-input-channel copy of a text-to-image UNet: the extra channels' weights are zero."""
    from diffusers import UNet2DConditionModel

    config = {k: v for k, v in unet.config.items() if k != "_use_default_values"}  # else defaults win again
    config["in_channels"] = 8
    wide = UNet2DConditionModel.from_config(config)
    state = unet.state_dict()
    weight = state["conv_in.weight"]
    state["conv_in.weight"] = torch.cat([weight, torch.zeros_like(weight)], 1)
    wide.load_state_dict(state)
    return wide


@torch.no_grad()
def wake_identity_layer(layer, generator: torch.Generator, std: float = 0.02) -> None:
    """Make one of the text encoder's identity layers (all weights zero, ``model.make_identity_layers``)
    trainable: a zero layer gets no gradient anywhere, since its output projections block the branch
    and its inner projections give them nothing to learn from. The query, key, value and fc1 weights
    get CLIP's normal initialisation; the output projection and fc2 stay zero, so the layer is still
    an exact identity at step 0. A layer that has weights already is left as it is."""
    inner = [layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.mlp.fc1]
    if any(m.weight.abs().sum() > 0 for m in inner):
        return
    for m in inner:
        m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * std)


def load(init: Path | None):
    from diffusers import DDIMScheduler, StableDiffusionInstructPix2PixPipeline

    from ..models import default_model_path, load_pipeline

    if init is not None:
        return StableDiffusionInstructPix2PixPipeline.from_pretrained(str(init), local_files_only=True)
    base = load_pipeline(default_model_path())
    return StableDiffusionInstructPix2PixPipeline(
        vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=widen_unet(base.unet),
        scheduler=DDIMScheduler.from_config(base.scheduler.config), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)


def batch(seed: int, start: int, size: int) -> tuple[np.ndarray, np.ndarray, list]:
    pairs = [edit_pair(seed, start + i) for i in range(size)]
    sources = np.stack([render_array(p.source) for p in pairs])
    targets = np.stack([render_array(p.target) for p in pairs])
    return sources, targets, pairs


def to_tensor(images_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images_u8).permute(0, 3, 1, 2).float() / 127.5 - 1


def grounding_targets(pipe, pairs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each pair: the positions of its instruction's object words (n, K), -1 where there is none,
    found as LIME finds them at edit time (``api.tokenize``, then ``object_positions``), the edited
    object's box (n, K, 4) for each, and the scene's other objects' boxes (n, M, 4), zero-sized where
    there is none (the choice term's negatives)."""
    from ..api import tokenize
    from ..lime.edit_tokens import object_positions
    from .grounding import MAX_OBJECTS

    k = 3  # colour, shape, new colour or shape
    positions = torch.full((len(pairs), k), -1, dtype=torch.long)
    boxes = torch.zeros(len(pairs), k, 4)
    others = torch.zeros(len(pairs), MAX_OBJECTS - 1, 4)
    for i, pair in enumerate(pairs):
        found = object_positions(tokenize(pipe, pair.instruction))[:k]
        positions[i, :len(found)] = torch.tensor(found, dtype=torch.long)
        boxes[i] = torch.tensor(pair.source.objects[pair.index].box)
        rest = [o.box for j, o in enumerate(pair.source.objects) if j != pair.index]
        if rest:
            others[i, :len(rest)] = torch.tensor(rest, dtype=torch.float32)
    return positions, boxes, others


def train_step(pipe, sources, targets, pairs, generator, ground_store=None, choice=False):
    """The noise-prediction loss of one batch of ``pairs`` (with conditioning dropout), the grounding
    loss when ``ground_store`` (from ``grounding.install``) is given (else None), and with ``choice``
    the grounding's choice term (else None)."""
    vae, unet, text_encoder, tokenizer = pipe.vae, pipe.unet, pipe.text_encoder, pipe.tokenizer
    with torch.no_grad():
        source_latents = vae.encode(to_tensor(sources)).latent_dist.mode()
        target_latents = vae.encode(to_tensor(targets)).latent_dist.mode() * vae.config.scaling_factor
    n = target_latents.shape[0]
    ids = tokenizer([p.instruction for p in pairs], padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    empty = tokenizer([""] * n, padding="max_length", max_length=tokenizer.model_max_length,
                      return_tensors="pt").input_ids
    u = torch.rand(n, generator=generator)
    drop_text = (u < DROP) | ((u >= 2 * DROP) & (u < 3 * DROP))
    drop_image = (u >= DROP) & (u < 3 * DROP)
    ground_targets = grounding_targets(pipe, pairs) if ground_store is not None else None
    ids = torch.where(drop_text[:, None], empty, ids)
    context = text_encoder(ids)[0]
    source_latents = source_latents * (~drop_image).float()[:, None, None, None]
    noise = torch.randn(target_latents.shape, generator=generator)
    t = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (n,), generator=generator)
    noisy = pipe.scheduler.add_noise(target_latents, noise, t)
    if ground_store is not None:
        ground_store.clear()
    pred = unet(torch.cat([noisy, source_latents], 1), t, encoder_hidden_states=context).sample
    ground = chosen = None
    if ground_targets is not None:
        from . import grounding

        positions, boxes, others = ground_targets
        positions[drop_text] = -1  # no instruction, no target
        ground, chosen = grounding.losses(ground_store, positions, boxes, others if choice else None)
    return F.mse_loss(pred, noise), ground, chosen


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib_regedit.shapesworld.instruct_train", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/shapesworld_instruct")
    p.add_argument("--init", default=None, help="resume from this instruct pipeline folder")
    p.add_argument("--seed", type=int, default=0, help="data seed (pairs) and training seed")
    p.add_argument("--start", type=int, default=0, help="first pair index (resume past the pairs already seen)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--steps", type=int, default=10 ** 9)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--ckpt-minutes", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--grounding", type=float, default=0.0,
                   help="weight of the token grounding loss on the instruction's object words; 0 = off")
    p.add_argument("--grounding-choice", type=float, default=0.0,
                   help="weight of the grounding's choice term (the scene's other objects as negatives); 0 = off")
    p.add_argument("--text-layers", type=int, default=0,
                   help="also train the text encoder's first N layers (identities until then: their output "
                        "projections are zero), so a word can take in the words before it; 0 = embeddings only")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    pipe = load(Path(args.init) if args.init else None)
    pipe.unet.train()
    for param in pipe.text_encoder.parameters():
        param.requires_grad_(False)
    embeddings = pipe.text_encoder.get_input_embeddings().weight
    embeddings.requires_grad_(True)
    pipe.vae.requires_grad_(False)
    groups = [{"params": pipe.unet.parameters()}, {"params": [embeddings], "weight_decay": 0.0}]
    if args.text_layers > 0:
        layers = text_core(pipe.text_encoder).encoder.layers[:args.text_layers]
        waking = torch.Generator().manual_seed(args.seed)  # one stream, so no two layers start alike
        for layer in layers:
            wake_identity_layer(layer, waking)
        layers.requires_grad_(True)
        groups.append({"params": layers.parameters()})
    opt = torch.optim.AdamW(groups, lr=args.lr)
    ground_store = None
    if args.grounding > 0 or args.grounding_choice > 0:
        from . import grounding

        ground_store = grounding.install(pipe.unet)
    generator = torch.Generator().manual_seed(args.seed)
    started, saved, step, index = time.time(), time.time(), 0, args.start
    losses, grounds, choices = [], [], []
    while step < args.steps and time.time() - started < args.minutes * 60:
        sources, targets, pairs = batch(args.seed, index, args.batch)
        index += args.batch
        loss, ground, chosen = train_step(pipe, sources, targets, pairs, generator, ground_store,
                                          choice=args.grounding_choice > 0)
        losses.append(float(loss.detach()))
        if ground is not None:
            grounds.append(float(ground.detach()))
            loss = loss + args.grounding * ground
        if chosen is not None:
            choices.append(float(chosen.detach()))
            loss = loss + args.grounding_choice * chosen
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 25 == 0:
            ground_text = f" grounding {np.mean(grounds[-25:]):.3f}" if grounds else ""
            ground_text += f" choice {np.mean(choices[-25:]):.3f}" if choices else ""
            print(f"step {step} pairs {index} loss {np.mean(losses[-25:]):.4f}{ground_text} "
                  f"({time.time() - started:.0f}s)", flush=True)
        if time.time() - saved > args.ckpt_minutes * 60:
            save(pipe, out, index)
            saved = time.time()
    save(pipe, out, index)
    print(f"saved {out} after {step} steps, {index - args.start} pairs (next --start {index})")


def save(pipe, out: Path, next_index: int) -> None:
    pipe.unet.eval()
    pipe.save_pretrained(str(out))
    (out / "next_start.txt").write_text(f"{next_index}\n")
    pipe.unet.train()


if __name__ == "__main__":
    main()
