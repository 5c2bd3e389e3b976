"""``python -m lib_regedit.shapesworld.segmenter_train``: train a small CLIPSeg on ShapesWorld, for MRGD.

The model is transformers' ``CLIPSegForImageSegmentation`` at a small size (:func:`small_config`),
trained from scratch, backbone included (real CLIPSeg freezes a pretrained CLIP; we have none).
Data are made on the fly: scene ``index`` of data seed ``--seed`` rendered at 64x64 by ``data.render``,
with four phrases each (an object's full phrase, its colour, its shape, and an absent object's full
phrase) and their exact masks (``segmentation_data.object_mask``). Step ``s`` always sees the same
scenes, phrases and augmentation, so a resumed run continues exactly.

- Loss: binary cross-entropy on the logits, plus a soft Dice term on the phrases that name something.
- Checkpoints (model, optimiser, step) go to ``OUT/checkpoint.pt`` every ``--ckpt-minutes``, on
  SIGTERM and at the end; a run with the same ``--out`` resumes from it. The log is ``OUT/train.log``.
- At the end the model is saved as a CLIPSeg folder (``OUT/model``) and scored by :func:`evaluate`
  through ``load_segmenter``: mean IoU at 0.5 on 200 scenes of a data seed training never uses.
- ``--export DIR`` trains nothing: it writes the checkpoint of ``--out`` as the shipped folder
  (float16 safetensors, the project's CLIP tokenizer, preprocessor_config.json) and scores it.
"""

from __future__ import annotations

import argparse
import math
import signal
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..editing.segmenter import (PROJECT_TOKENIZER, decode, load_segmenter, preprocess, text_embeddings,
                                 vision_activations, write_processor_files)
from .data import render_array, scene_for
from .segmentation_data import COLOURS, KINDS, SHAPES, all_phrases, object_mask, queries_for

IMAGE_SIZE = 64
# CLIP's image normalisation (any fixed values would do for a model trained from scratch).
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)
EVAL_SEED = 90_001  # held-out scenes: a data seed no training run here uses
EVAL_SCENES = 200


def small_config(vision_hidden=128, vision_layers=4, text_hidden=64, text_layers=2, image_size=IMAGE_SIZE,
                 patch=4, extract_layers=(0, 2, 3), reduce_dim=64, complex_upsampling=False):
    """CLIPSeg at ShapesWorld size: patch 4, a 16x16 grid on 64x64 (patch 8 was only tried before
    :func:`init_decoder` existed; see TRAINING.md, "The segmenter for MRGD")."""
    from transformers import CLIPSegConfig

    from ..tokenizer import VOCAB_SIZE

    return CLIPSegConfig(
        vision_config=dict(hidden_size=vision_hidden, intermediate_size=4 * vision_hidden,
                           num_hidden_layers=vision_layers, num_attention_heads=4, image_size=image_size,
                           patch_size=patch),
        text_config=dict(hidden_size=text_hidden, intermediate_size=4 * text_hidden, num_hidden_layers=text_layers,
                         num_attention_heads=4, vocab_size=VOCAB_SIZE, pad_token_id=49407),
        projection_dim=128, extract_layers=list(extract_layers), reduce_dim=reduce_dim,
        decoder_num_attention_heads=4, decoder_intermediate_size=4 * reduce_dim,
        use_complex_transposed_convolution=complex_upsampling)


def init_decoder(model) -> None:
    """PyTorch's default initialisation for the decoder's FiLM, reduce and upsampling layers.

    transformers initialises them with a standard deviation of 1 (CLIPSeg is always loaded
    pretrained), which makes the FiLM output and the first reduced activation about ten times their
    inputs: the decoder's residual stream then drowns the shallow activations (coarse masks) and the
    gradient to the text encoder all but vanishes (one mask per phrase length). Trained from that
    initialisation, "red" and "circle" got the same mask after 2,000 steps."""
    import torch.nn as nn

    decoder = model.decoder
    for module in [decoder.film_mul, decoder.film_add, *decoder.reduces, *decoder.transposed_convolution.modules()]:
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            module.reset_parameters()


def load_tokenizer():
    from transformers import CLIPTokenizer

    from ..tokenizer import build_clip_tokenizer

    if (PROJECT_TOKENIZER / "vocab.json").exists():
        return CLIPTokenizer.from_pretrained(str(PROJECT_TOKENIZER), local_files_only=True)
    return build_clip_tokenizer()


def phrase_table(tokenizer) -> dict[str, torch.Tensor]:
    """Token ids of every phrase training uses, padded to one length (CLIP pools at the first EOS)."""
    phrases = all_phrases() + list(COLOURS) + list(SHAPES)
    ids = tokenizer(phrases, padding=True, return_tensors="pt").input_ids
    return dict(zip(phrases, ids))


# ---------------------------------------------------------------------------------------------- data

def batch(seed: int, step: int, scenes: int, size: int = IMAGE_SIZE):
    """Images (scenes, 3, size, size) in [0, 1], phrases (4 per scene, scene-major), masks (4*scenes, size, size)."""
    images, phrases, masks = [], [], []
    for i in range(scenes):
        index = step * scenes + i
        scene = scene_for(seed, index)
        images.append(render_array(scene, size))
        for query in queries_for(scene, np.random.default_rng([seed, index, 1])):
            phrases.append(query.phrase)
            masks.append(object_mask(scene, query.phrase, size))
    images = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    return images, phrases, torch.from_numpy(np.stack(masks))


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mild blur and noise, since MRGD segments decoded (slightly soft, noisy) images, not renders."""
    b = images.shape[0]
    blurred = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    amount = torch.rand(b, 1, 1, 1, generator=generator) * (torch.rand(b, 1, 1, 1, generator=generator) < 0.3)
    images = images + amount * (blurred - images)
    noise = torch.randn(images.shape, generator=generator) * torch.rand(b, 1, 1, 1, generator=generator) * 0.04
    return (images + noise).clamp(0, 1)


# ---------------------------------------------------------------------------------------------- math

def segmentation_loss(logits: torch.Tensor, targets: torch.Tensor, dice_weight: float = 0.5) -> torch.Tensor:
    """BCE with logits over every pixel, plus soft Dice over the rows whose target is not empty."""
    bce = F.binary_cross_entropy_with_logits(logits, targets)
    probs = torch.sigmoid(logits).flatten(1)
    flat = targets.flatten(1)
    present = flat.sum(1) > 0
    if dice_weight == 0 or not present.any():
        return bce
    inter = (probs * flat).sum(1)
    dice = 1 - (2 * inter + 1) / (probs.sum(1) + flat.sum(1) + 1)
    return bce + dice_weight * dice[present].mean()


def learning_rate(step: int, max_steps: int, base: float, warmup: int = 200, floor: float = 0.05) -> float:
    """Linear warm-up, then a cosine decay to ``floor * base`` at ``max_steps``."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def iou(pred: np.ndarray, target: np.ndarray) -> float:
    union = np.logical_or(pred, target).sum()
    return float(np.logical_and(pred, target).sum() / union) if union else 1.0


def param_groups(model, text_lr_scale: float) -> list[dict]:
    """The text encoder (and its projection) in a group of its own, whose learning rate is
    ``text_lr_scale`` times the rest's."""
    text = [p for n, p in model.named_parameters() if n.startswith(("clip.text_model.", "clip.text_projection."))]
    ids = {id(p) for p in text}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [{"params": rest, "scale": 1.0}, {"params": text, "scale": text_lr_scale}]


def batch_logits(model, table: dict[str, torch.Tensor], images: torch.Tensor, phrases: list[str]) -> torch.Tensor:
    """Logits (len(phrases), H, W): image ``i`` with phrases ``4i .. 4i+3``, the backbone run once per image."""
    pixels = preprocess(images, model.config.vision_config.image_size, IMAGE_MEAN, IMAGE_STD)
    per_image = len(phrases) // images.shape[0]
    activations = [a.repeat_interleave(per_image, dim=0) for a in vision_activations(model, pixels)]
    logits = decode(model, activations, text_embeddings(model, torch.stack([table[q] for q in phrases])))
    if logits.shape[-2:] != images.shape[-2:]:
        logits = F.interpolate(logits[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return logits


# ---------------------------------------------------------------------------------------------- eval

def evaluate(predict, scenes: int = EVAL_SCENES, seed: int = EVAL_SEED, size: int = IMAGE_SIZE) -> dict[str, float]:
    """Mean IoU at threshold 0.5 per phrase kind (full, colour, kind) on held-out scenes, and for absent
    objects the mean false-positive area (share of the image predicted). ``predict(images, phrases)``
    returns (B, P, H, W) probabilities, as a :class:`~lib_regedit.editing.segmenter.Segmenter` does."""
    scores: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for index in range(scenes):
        scene = scene_for(seed, index)
        queries = queries_for(scene, np.random.default_rng([seed, index, 1]))
        image = torch.tensor(render_array(scene, size)).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            probs = predict(image, [q.phrase for q in queries])[0].float().numpy()
        for query, prob in zip(queries, probs):
            pred = prob > 0.5
            if query.kind == "absent":
                scores["absent"].append(float(pred.mean()))
            else:
                scores[query.kind].append(iou(pred, object_mask(scene, query.phrase, size) > 0.5))
    return {kind: float(np.mean(values)) for kind, values in scores.items()}


def format_scores(scores: dict[str, float]) -> str:
    return (f"IoU full {scores['full']:.3f} colour {scores['colour']:.3f} kind {scores['kind']:.3f}, "
            f"absent false-positive area {scores['absent']:.4f}")


def training_predictor(model, tokenizer):
    """``predict(images, phrases)`` for :func:`evaluate` on a model being trained (no gradients)."""
    from ..editing.segmenter import segment

    def predict(images, phrases):
        enc = tokenizer(list(phrases), padding=True, return_tensors="pt")
        return segment(model, images, enc.input_ids, enc.attention_mask, IMAGE_MEAN, IMAGE_STD)

    return predict


# ---------------------------------------------------------------------------------------------- save

def save_checkpoint(path: Path, model, opt, step: int, args) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"config": model.config.to_dict(), "model": model.state_dict(), "optimizer": opt.state_dict(),
                "step": step, "args": vars(args)}, tmp)
    tmp.replace(path)


def model_from_checkpoint(path: Path):
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation

    state = torch.load(path, map_location="cpu", weights_only=False)
    model = CLIPSegForImageSegmentation(CLIPSegConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model, state


def save_folder(model, out: Path, dtype=torch.float32) -> Path:
    """A folder that ``load_segmenter`` and ``CLIPSegForImageSegmentation.from_pretrained`` read offline."""
    import copy

    out.mkdir(parents=True, exist_ok=True)
    copy.deepcopy(model).to(dtype).eval().save_pretrained(str(out))
    write_processor_files(out, model.config.vision_config.image_size, IMAGE_MEAN, IMAGE_STD)
    for path in out.iterdir():
        path.chmod(0o644)  # save_pretrained writes the weights owner-only
    return out


def export(run: Path, out: Path, scenes: int = EVAL_SCENES) -> dict[str, float]:
    """Write the run's checkpoint as the shipped folder (float16) and score it through ``load_segmenter``."""
    model, state = model_from_checkpoint(run / "checkpoint.pt")
    save_folder(model, out, torch.float16)
    scores = evaluate(load_segmenter(out), scenes)
    print(f"exported step {state['step']} to {out}; through load_segmenter: {format_scores(scores)}", flush=True)
    return scores


# ---------------------------------------------------------------------------------------------- train

def main(argv=None) -> None:
    from transformers import CLIPSegForImageSegmentation

    p = argparse.ArgumentParser(prog="python -m lib_regedit.shapesworld.segmenter_train",
                                description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/shapesworld_clipseg")
    p.add_argument("--seed", type=int, default=0, help="data seed and initialisation seed")
    p.add_argument("--scenes", type=int, default=16, help="scenes per step (4 phrases each)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--text-lr-scale", type=float, default=1.0,
                   help="learning-rate multiplier of the text encoder and its projection (see param_groups)")
    p.add_argument("--max-steps", type=int, default=6000, help="the learning-rate schedule ends here")
    p.add_argument("--minutes", type=float, default=75.0, help="stop (and checkpoint) after this wall time")
    p.add_argument("--ckpt-minutes", type=float, default=5.0)
    p.add_argument("--eval-every", type=int, default=500, help="score 50 held-out scenes every N steps (0: never)")
    p.add_argument("--eval-scenes", type=int, default=EVAL_SCENES)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tiny", action="store_true", help="a very small model (for tests)")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="train nothing: export --out's checkpoint to DIR (float16) and score it")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.export:
        export(out, Path(args.export), args.eval_scenes)
        return
    out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "train.log", "a", encoding="utf-8")

    def log(message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    ckpt = out / "checkpoint.pt"
    if ckpt.exists():
        model, state = model_from_checkpoint(ckpt)
        step = state["step"]
    else:
        torch.manual_seed(args.seed)
        config = small_config(vision_hidden=32, vision_layers=2, text_hidden=32, text_layers=1,
                              patch=8, extract_layers=(0, 1), reduce_dim=16) if args.tiny else small_config()
        model, state, step = CLIPSegForImageSegmentation(config), None, 0
        init_decoder(model)
    model.train()
    groups = param_groups(model, args.text_lr_scale)
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=0.01)
    resumed_optimiser = state is not None and len(state["optimizer"]["param_groups"]) == len(groups)
    if resumed_optimiser:
        opt.load_state_dict(state["optimizer"])
    tokenizer = load_tokenizer()
    table = phrase_table(tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    if state is not None and not resumed_optimiser:
        log("the checkpoint's optimiser has other parameter groups: its moments start again")
    log(f"{'resume at' if step else 'start'} step {step}: {n_params / 1e6:.2f}M parameters, {args.scenes} scenes "
        f"x 4 phrases per step, max-steps {args.max_steps}, minutes {args.minutes}, threads {args.threads}")

    stop = {"signal": None}
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.update(signal=signum))
    started = saved = time.time()
    losses: list[float] = []
    try:
        while step < args.max_steps and stop["signal"] is None and time.time() - started < args.minutes * 60:
            images, phrases, masks = batch(args.seed, step, args.scenes)
            images = augment(images, torch.Generator().manual_seed(args.seed * 1_000_003 + step))
            loss = segmentation_loss(batch_logits(model, table, images, phrases), masks)
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, args.max_steps, args.lr) * group["scale"]
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            losses.append(float(loss.detach()))
            if step % 50 == 0:
                log(f"step {step} loss {np.mean(losses[-50:]):.4f} lr {opt.param_groups[0]['lr']:.2e} "
                    f"({time.time() - started:.0f}s)")
            if args.eval_every and step % args.eval_every == 0:
                model.eval()
                log(f"step {step} held-out (50 scenes): {format_scores(evaluate(training_predictor(model, tokenizer), 50))}")
                model.train()
            if time.time() - saved > args.ckpt_minutes * 60:
                save_checkpoint(ckpt, model, opt, step, args)
                saved = time.time()
    finally:
        save_checkpoint(ckpt, model, opt, step, args)
        signal.signal(signal.SIGTERM, previous)
    why = "SIGTERM" if stop["signal"] is not None else ("max-steps" if step >= args.max_steps else "minutes")
    log(f"stopped ({why}) at step {step} after {time.time() - started:.0f}s; checkpoint {ckpt}")
    if stop["signal"] is None:
        folder = save_folder(model, out / "model")
        scores = evaluate(load_segmenter(folder), args.eval_scenes)
        log(f"step {step} held-out ({args.eval_scenes} scenes, seed {EVAL_SEED}) through load_segmenter: "
            f"{format_scores(scores)}")
    log_file.close()


if __name__ == "__main__":
    main()
