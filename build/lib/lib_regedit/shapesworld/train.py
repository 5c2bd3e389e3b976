"""Train ShapesWorld: ``python -m lib_regedit.shapesworld.train --out runs/shapesworld``.

Stages, each skipped when its output already exists in ``--out`` (so re-running resumes):

1. ``data.npz``: ``--samples`` scenes rendered at 64x64 from ``--seed`` (see ``data.py``).
2. ``vae/``: AutoencoderKL trained for ``--vae-minutes`` (MSE + 0.5 L1 + 1e-6 KL on [-1, 1] pixels);
   the latent scaling factor is 1 / std of the encoded training latents, as SD 1.x chose 0.18215.
3. ``latents.pt``: the posterior mean and std of every training image (encoded once; the UNet stage
   samples from the posterior each step, as LDM training does).
4. ``unet.pt``: UNet + the 0-layer text encoder (embeddings and final LayerNorm, see ``model.py``),
   epsilon objective on the SD 1.x schedule, ``--dropout`` caption dropout (to "", what the WebUI
   encodes for an empty negative prompt) for classifier-free guidance, EMA, AdamW with linear
   warm-up. Checkpointed every ``--ckpt-minutes`` and on SIGTERM/SIGINT; resumes from it.

Defaults are the probe settings in ``shared/notes/shapesworld-findings.md`` (batch 64, AdamW 5e-4,
EMA 0.999, 10% dropout, 77-token EOS padding and no attention mask). Runs on one thread by default
(``--threads``), leaving the second core free.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import model as M
from .data import BACKGROUNDS, BLANK_CAPTION, blank_scene, generate_dataset, render_array


def log(out: Path, msg: str) -> None:
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    with open(out / "train.log", "a") as f:
        f.write(line + "\n")


def to_pixels(images_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images_u8).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


# ---------------------------------------------------------------- stage 1: data
def stage_data(out: Path, args) -> None:
    path = out / "data.npz"
    if path.exists():
        return
    t = time.time()
    images, captions, _ = generate_dataset(args.samples, seed=args.seed, size=M.IMAGE_SIZE)
    np.savez(path, images=images, captions=np.array(captions))
    log(out, f"data: {args.samples} scenes from seed {args.seed} in {time.time() - t:.0f}s")


def load_data(out: Path):
    d = np.load(out / "data.npz")
    return d["images"], [str(c) for c in d["captions"]]


# ---------------------------------------------------------------- stage 2: VAE
def stage_vae(out: Path, args, images: np.ndarray) -> None:
    if (out / "vae" / "config.json").exists():
        return
    torch.manual_seed(args.seed)
    if args.vae_init:
        from diffusers import AutoencoderKL
        vae = AutoencoderKL.from_pretrained(args.vae_init)
        log(out, f"vae: continuing from {args.vae_init}")
    else:
        vae = M.build_vae()
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    rng = np.random.default_rng(args.seed + 1)
    t0 = time.time()
    step, avg = 0, None
    while time.time() - t0 < args.vae_minutes * 60 and step < args.vae_steps:
        x = to_pixels(images[rng.integers(len(images), size=args.vae_batch)])
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample()).sample
        mse = F.mse_loss(rec, x)
        loss = mse + 0.5 * F.l1_loss(rec, x) + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        # MSE on [0, 1] pixels is a quarter of the MSE on [-1, 1]
        avg = mse.item() / 4 if avg is None else 0.98 * avg + 0.02 * mse.item() / 4
        if step % 200 == 0:
            log(out, f"vae step {step} mse[0,1] {avg:.5f} {time.time() - t0:.0f}s")
    vae.eval()
    with torch.no_grad():
        z = torch.cat([vae.encode(to_pixels(images[i:i + 256])).latent_dist.mean for i in range(0, min(4096, len(images)), 256)])
    vae.register_to_config(scaling_factor=float(1.0 / z.std()))
    vae.save_pretrained(out / "vae")
    log(out, f"vae done: {step} steps, mse[0,1] {avg:.5f}, scaling factor {vae.config.scaling_factor:.4f}")


def stage_decoder(out: Path, args, images: np.ndarray) -> None:
    """Fine-tune only the VAE decoder (and post-quant conv) on posterior samples of the frozen encoder.

    The encoder, and so the latent space the UNet learned, stays bit-identical; only the decoding of
    latents to pixels improves. Runs after the UNet stage, for ``--decoder-minutes``.
    """
    done = out / "decoder_finetune.json"
    if args.decoder_minutes <= 0 or done.exists():
        return
    from diffusers import AutoencoderKL
    vae = AutoencoderKL.from_pretrained(out / "vae")
    vae.save_pretrained(out / "vae_before_decoder")
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in vae.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=args.vae_lr * 0.5, weight_decay=0.0)
    rng = np.random.default_rng(args.seed + 3)
    t0, step, avg = time.time(), 0, None
    while time.time() - t0 < args.decoder_minutes * 60 and step < args.decoder_steps:
        x = to_pixels(images[rng.integers(len(images), size=args.vae_batch)])
        with torch.no_grad():
            z = vae.encode(x).latent_dist.sample()
        rec = vae.decode(z).sample
        mse = F.mse_loss(rec, x)
        loss = mse + 0.5 * F.l1_loss(rec, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        avg = mse.item() / 4 if avg is None else 0.98 * avg + 0.02 * mse.item() / 4
        if step % 200 == 0:
            log(out, f"decoder step {step} mse[0,1] {avg:.5f} {time.time() - t0:.0f}s")
    vae.save_pretrained(out / "vae")
    done.write_text(json.dumps({"steps": step, "mse01": avg, "minutes": args.decoder_minutes}))
    log(out, f"decoder fine-tune done: {step} steps, mse[0,1] {avg:.5f}")


# ---------------------------------------------------------------- stage 3: latents
def stage_latents(out: Path, images: np.ndarray) -> None:
    if (out / "latents.pt").exists():
        return
    from diffusers import AutoencoderKL
    vae = AutoencoderKL.from_pretrained(out / "vae").eval()
    t = time.time()
    means, stds = [], []
    with torch.no_grad():
        for i in range(0, len(images), 256):
            d = vae.encode(to_pixels(images[i:i + 256])).latent_dist
            means.append(d.mean.half())
            stds.append(d.std.half())
    torch.save({"mean": torch.cat(means), "std": torch.cat(stds),
                "scaling_factor": vae.config.scaling_factor}, out / "latents.pt")
    log(out, f"latents: {len(images)} encoded in {time.time() - t:.0f}s")


def blank_latents(out: Path):
    """Posterior mean and std of the blank scenes (one per background colour)."""
    from diffusers import AutoencoderKL
    vae = AutoencoderKL.from_pretrained(out / "vae").eval()
    images = np.stack([render_array(blank_scene(bg), M.IMAGE_SIZE) for bg in BACKGROUNDS])
    with torch.no_grad():
        d = vae.encode(to_pixels(images)).latent_dist
    return d.mean, d.std


# ---------------------------------------------------------------- stage 4: UNet + text
class EMA:
    """Exponential moving average of parameters, with the usual (1 + n) / (10 + n) warm-up."""

    def __init__(self, params, decay: float):
        self.params = list(params)
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay = decay

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1 - d)

    def state_dict(self):
        return self.shadow

    def load_state_dict(self, shadow):
        for s, v in zip(self.shadow, shadow):
            s.copy_(v)


def decay_factor(step: int, args) -> float:
    """Linear learning-rate decay to ``--decay-to`` of the peak over ``--decay-steps`` steps from
    ``--decay-start``; 1.0 when no decay is set."""
    if args.decay_start is None or step < args.decay_start:
        return 1.0
    f = min(1.0, (step - args.decay_start) / max(1, args.decay_steps))
    return 1.0 - f * (1.0 - args.decay_to)


def unet_state(unet, text_encoder, ema, opt, step, elapsed):
    return {"unet": unet.state_dict(), "text": {k: v for k, v in text_encoder.state_dict().items()},
            "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed,
            "rng": torch.get_rng_state()}


def stage_unet(out: Path, args, captions: list[str]) -> None:
    from ..tokenizer import build_clip_tokenizer
    tokenizer = build_clip_tokenizer(out / "tokenizer")
    lat = torch.load(out / "latents.pt")
    mean, std, scale = lat["mean"], lat["std"], lat["scaling_factor"]
    ids_all = M.tokenize(tokenizer, captions)
    ids_empty = M.tokenize(tokenizer, [""])[0]
    blank_mean, blank_std = blank_latents(out)
    ids_blank = M.tokenize(tokenizer, [BLANK_CAPTION])[0]

    grounding = None
    if args.grounding > 0:
        from . import grounding as G
        positions, obj_boxes = G.targets(tokenizer, args.seed, len(captions), ids_all)
        log(out, f"grounding targets for {len(captions)} scenes, weight {args.grounding}")

    regional = None
    if args.region_training > 0:
        from . import region_training as RT
        if args.grounding > 0:
            raise SystemExit("--region-training and --grounding both replace the cross-attention processors; "
                             "use one of them")
        slot_index, slot_boxes = RT.scene_targets(args.seed, len(captions))
        ids_phrases = M.tokenize(tokenizer, RT.phrases())
        log(out, f"region training: {args.region_training:.0%} of captioned rows, {len(captions)} scenes")

    torch.manual_seed(args.seed + 2)
    unet = M.build_unet()
    text = M.build_text_encoder()
    params = list(unet.parameters()) + M.trainable_text_parameters(text)
    ema = EMA(params, args.ema)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-2)
    sched = M.noise_scheduler()
    alphas = sched.alphas_cumprod
    step, elapsed = 0, 0.0
    ckpt = out / "unet.pt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        unet.load_state_dict(state["unet"])
        text.load_state_dict(state["text"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        torch.set_rng_state(state["rng"])
        step, elapsed = state["step"], state["elapsed"]
        log(out, f"resumed at step {step} ({elapsed / 60:.1f} min trained)")

    def save():
        tmp = ckpt.with_suffix(".tmp")
        torch.save(unet_state(unet, text, ema, opt, step, elapsed + time.time() - t0), tmp)
        tmp.replace(ckpt)
        log(out, f"checkpoint at step {step}")

    stop = {"now": False}

    def on_signal(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if args.grounding > 0:
        grounding = G.install(unet)
    if args.region_training > 0:
        regional = RT.install(unet)
    unet.train()
    t0 = time.time()
    last_ckpt = t0
    avg, avg_ground, seen = None, None, 0
    n = len(mean)
    while not stop["now"] and step < args.max_steps and (elapsed + time.time() - t0) < args.max_minutes * 60:
        idx = torch.randint(n, (args.batch,))
        z = (mean[idx].float() + std[idx].float() * torch.randn(args.batch, 4, M.LATENT_SIZE, M.LATENT_SIZE)) * scale
        ids = ids_all[idx].clone()
        blank = torch.zeros(args.batch, dtype=torch.bool)
        if args.blank_fraction > 0:
            blank = torch.rand(args.batch) < args.blank_fraction
            if blank.any():
                b = torch.randint(len(blank_mean), (int(blank.sum()),))
                zb = blank_mean[b] + blank_std[b] * torch.randn(len(b), 4, M.LATENT_SIZE, M.LATENT_SIZE)
                z[blank] = zb * scale
                ids[blank] = ids_blank
        drop = torch.rand(args.batch) < args.dropout
        ids[drop] = ids_empty
        noise = torch.randn_like(z)
        t = torch.randint(0, sched.config.num_train_timesteps, (args.batch,))
        a = alphas[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * z + (1 - a).sqrt() * noise
        cond = M.encode_tokens(text, ids)
        if grounding is not None:
            grounding.clear()
        if regional is not None:
            chosen = (~(drop | blank) & (torch.rand(args.batch) < args.region_training)).nonzero().flatten()
            regional["plan"] = RT.batch_plan(chosen, slot_index[idx[chosen]], slot_boxes[idx[chosen]],
                                             M.encode_tokens(text, ids_phrases), M.LATENT_SIZE,
                                             loosen_to=args.region_loosen,
                                             own_background=args.region_own_background)
        pred = unet(noisy, t, encoder_hidden_states=cond).sample
        loss = F.mse_loss(pred, noise)
        noise_loss = loss.item()
        if grounding is not None:
            pos = positions[idx].clone()
            pos[drop | blank] = -1  # no caption, no target
            ground = G.loss(grounding, pos, obj_boxes[idx])
            avg_ground = ground.item() if avg_ground is None else 0.99 * avg_ground + 0.01 * ground.item()
            loss = loss + args.grounding * ground
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * decay_factor(step, args)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update(step)
        step += 1
        seen += args.batch
        avg = noise_loss if avg is None else 0.99 * avg + 0.01 * noise_loss
        if step % args.log_every == 0:
            dt = time.time() - t0
            ground_text = f" grounding {avg_ground:.3f}" if avg_ground is not None else ""
            log(out, f"step {step} loss {avg:.4f}{ground_text} lr {lr:.1e} {seen / dt:.1f} samples/s "
                     f"{(elapsed + dt) / 60:.1f} min")
        if time.time() - last_ckpt > args.ckpt_minutes * 60:
            save()
            last_ckpt = time.time()
    save()
    log(out, "training stopped" + (" by signal" if stop["now"] else ""))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/shapesworld")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=50000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--vae-minutes", type=float, default=7.0)
    p.add_argument("--vae-batch", type=int, default=8,
                   help="small batches, many updates (ShapesWorld run: batch 32 reached MSE 0.0126 in 10 min "
                        "on one core; continuing at batch 8 reached 0.0036 in 9 more)")
    p.add_argument("--vae-steps", type=int, default=10 ** 9, help="step limit (with --vae-minutes, whichever first)")
    p.add_argument("--decoder-steps", type=int, default=10 ** 9)
    p.add_argument("--vae-lr", type=float, default=1e-3)
    p.add_argument("--vae-init", default=None, help="continue VAE training from this diffusers folder")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--blank-fraction", type=float, default=0.05,
                   help=f"share of training samples replaced by a shape-less scene captioned {BLANK_CAPTION!r}")
    p.add_argument("--decoder-minutes", type=float, default=0.0,
                   help="after the UNet stage, fine-tune the VAE decoder alone (latent space unchanged)")
    p.add_argument("--skip-unet", action="store_true", help="skip the UNet stage (e.g. to run only the decoder stage)")
    p.add_argument("--decay-start", type=int, default=None, help="step where a linear LR decay starts")
    p.add_argument("--decay-steps", type=int, default=500)
    p.add_argument("--decay-to", type=float, default=0.1, help="final LR as a fraction of --lr")
    p.add_argument("--max-steps", type=int, default=10 ** 9)
    p.add_argument("--grounding", type=float, default=0.0,
                   help="weight of the token grounding loss (grounding.py; TokenCompose's token loss); 0 = off")
    p.add_argument("--region-training", type=float, default=0.0, metavar="P",
                   help="share of captioned rows trained with region-fused cross-attention (region_training.py); 0 = off")
    p.add_argument("--region-loosen", type=float, default=1.0, metavar="S",
                   help="with --region-training: grow each training box by a random factor up to S per side (1 = exact)")
    p.add_argument("--region-own-background", type=float, default=0.0, metavar="Q",
                   help="with --region-training: share of region rows whose background is their own caption "
                        "instead of the blank one")
    p.add_argument("--max-minutes", type=float, default=600.0, help="UNet-stage training time, summed over resumes")
    p.add_argument("--ckpt-minutes", type=float, default=5.0)
    p.add_argument("--log-every", type=int, default=25)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(vars(args), indent=1))
    stage_data(out, args)
    images, captions = load_data(out)
    stage_vae(out, args, images)
    stage_latents(out, images)
    if not args.skip_unet:
        del images
        stage_unet(out, args, captions)
        images, _ = load_data(out)
    stage_decoder(out, args, images)


if __name__ == "__main__":
    main(sys.argv[1:])
