"""``python -m lib_regedit.bench inversion``: each real-image inversion's cost against one plain
generation at the same steps.

One Stable Diffusion pipeline with the full SD 1.5 UNet and VAE architectures (random weights, as
``edit_bench``), 256x256, CFG 7.5, a two-region edit document. Per round, interleaved: one plain
generation (``api.generate_plain``), then each inversion run through ``edit_image`` without a cache;
the inversion's own seconds (``Inversion.seconds``, no VAE, no edit) are compared with the plain
generation's, and so is the whole edit (inversion, then the pair's denoising). Medians over ``--runs``.
Null-text runs its full 10 iterations per step unless the early stop is met, so it dominates; its
iterations can be lowered for a quick look (``--nulltext-iterations``). Last line:
``ratio_time=X``, negative-prompt inversion against the plain generation.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from PIL import Image

from .drag_bench import sd15_pipeline
from .edit_bench import DOCUMENT

METHODS = ("ddim", "negative", "nulltext")


def run(args) -> None:
    from ..api import generate_plain
    from ..editing.diffusers_real import edit_image
    from ..inversion.null_text import NullTextOptions

    torch.set_num_threads(args.threads)
    pipe = sd15_pipeline(args.size)
    rng = np.random.default_rng(0)
    image = Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).resize((args.size, args.size))
    options = NullTextOptions(args.nulltext_iterations)
    methods = [m for m in METHODS if m in args.methods.split(",")]
    plain, inversion, whole = [], {m: [] for m in methods}, {m: [] for m in methods}
    generate_plain(pipe, DOCUMENT["prompt"], steps=2, width=args.size, height=args.size)  # warm-up
    for _ in range(args.runs):
        t0 = time.perf_counter()
        generate_plain(pipe, DOCUMENT["prompt"], steps=args.steps, width=args.size, height=args.size)
        plain.append(time.perf_counter() - t0)
        for method in methods:
            t0 = time.perf_counter()
            result = edit_image(pipe, image, DOCUMENT, inversion=method, steps=args.steps, nulltext=options)
            whole[method].append(time.perf_counter() - t0)
            inversion[method].append(result.extras["inversion"].seconds)
    base = statistics.median(plain)
    print(f"plain generation: {base:.2f} s ({args.steps} steps, CFG); SD 1.5 UNet and VAE (random weights), "
          f"{args.size}x{args.size}, {args.threads} thread(s), median of {args.runs}")
    for method in methods:
        inv, edit = statistics.median(inversion[method]), statistics.median(whole[method])
        print(f"{method:9s} inversion {inv:8.2f} s = {inv / base:6.2f}x a generation; whole edit (inversion, "
              f"then source and target) {edit:8.2f} s = {edit / base:6.2f}x")
    if "negative" in methods:
        print(f"ratio_time={statistics.median(inversion['negative']) / base:.3f}")
