"""``python -m lib_regedit.bench lime``: one LIME edit against the same instruct-pix2pix edit without
LIME, whole runs.

Both run on one instruct-pix2pix pipeline with the full SD 1.5 UNet architecture widened to 8 input
channels and SD's VAE (random weights; a one-layer CLIP of SD's width), at 256x256 and the same steps,
interleaved over ``--runs`` rounds (the order alternates each round); medians are compared. Without
LIME: ``steps`` UNet evaluations of batch 3 (text and image guidance) and a VAE encode and decode. With
LIME: a first pass that stops after the feature step (a third of the steps), the k-means of its
features, the snap of the found region to the image's superpixels, then the edit with the
regularisation. The goal is at most 1.5; the clustering's and the snap's shares are printed. Last
line: ``ratio_time=X``.
"""

from __future__ import annotations

import statistics

import torch
from PIL import Image

from .drag_bench import sd15_pipeline
from .interleaved import interleaved_medians


def instruct_pipeline(size: int):
    from diffusers import StableDiffusionInstructPix2PixPipeline

    from ..shapesworld.instruct_train import widen_unet

    base = sd15_pipeline(size)
    unet = widen_unet(base.unet).eval()
    pipe = StableDiffusionInstructPix2PixPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
                                                  unet=unet, scheduler=base.scheduler, safety_checker=None,
                                                  feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(args) -> None:
    from ..lime import lime_edit

    torch.set_num_threads(args.threads)
    pipe = instruct_pipeline(args.size)
    image = Image.new("RGB", (args.size, args.size), (200, 200, 200))
    image.paste((220, 40, 40), (args.size // 8, args.size // 8, args.size // 2, args.size // 2))
    instruction = "make the red square blue"
    timings = []
    jobs = {
        "plain": lambda: lime_edit(pipe, image, instruction, lime=False, steps=args.steps, progress=False),
        "lime": lambda: timings.append(lime_edit(pipe, image, instruction, steps=args.steps, progress=False).timings),
    }
    medians = interleaved_medians(jobs, args.runs)
    plain, lime = medians["plain"], medians["lime"]
    timings = timings[1:]  # the warm-up's left out
    parts = {k: statistics.median(t[k] for t in timings) for k in ("first_pass", "clustering", "snap", "edit")}
    print(f"instruct-pix2pix edit: {plain:.2f} s; with LIME: {lime:.2f} s (first pass {parts['first_pass']:.2f} s, "
          f"clustering {parts['clustering']:.2f} s = {parts['clustering'] / lime:.1%} of the LIME edit, "
          f"snap {parts['snap']:.3f} s = {parts['snap'] / lime:.2%}, "
          f"regularised edit {parts['edit']:.2f} s); SD 1.5 UNet (8 input channels) and VAE, random weights, "
          f"{args.size}x{args.size}, {args.steps} steps, {args.threads} thread(s), median of {args.runs}")
    print(f"ratio_time={lime / plain:.3f}")
