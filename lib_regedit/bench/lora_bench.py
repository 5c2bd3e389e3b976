"""``python -m lib_regedit.bench lora``: a region generation where two of the four regions carry their own
LoRA (``<lora:NAME:WEIGHT>``) against the same generation without LoRAs, whole runs, in both fusion
modes.

The SD 1.5 pipeline of the other whole-run benches (full UNet and VAE, random weights, a one-layer
CLIP of SD's width) at 256x256. The two LoRAs are rank-16 kohya files written for the run, covering
every linear layer of the UNet's transformer blocks (self- and cross-attention, feed-forward,
projections), as a typical character or style LoRA does, and the text encoder's. In attention mode
a region's LoRA costs its prompt's encoding under the LoRA and one extra low-rank term per
cross-attention key and value projection, computed once per generation; in latent mode each region's
own UNet pass adds its whole LoRA's low-rank terms to the layers' outputs, every step.
Interleaved over ``--runs`` rounds; medians are compared. Last line: ``ratio_time=X`` (attention mode).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..regions.lora_files import random_lora
from .drag_bench import sd15_pipeline
from .interleaved import interleaved_medians

BOXES = [(0.0, 0.0, 0.5, 0.5), (0.5, 0.0, 0.5, 0.5), (0.0, 0.5, 0.5, 0.5), (0.5, 0.5, 0.5, 0.5)]
PROMPTS = ["a red circle", "a blue square", "a green triangle", "a yellow star"]


def write_random_lora(pipe, path: Path, seed: int, rank: int = 16) -> Path:
    g = torch.Generator().manual_seed(seed)
    tensors = random_lora(pipe.unet, "lora_unet_", lambda n: ".transformer_blocks." in n or "proj_" in n, g,
                          rank=rank, scale=0.01)
    tensors.update(random_lora(pipe.text_encoder, "lora_te_", lambda n: "encoder.layers" in n, g, rank=rank,
                               scale=0.01))
    save_file(tensors, str(path))
    return path


def document(mode: str, loras: bool) -> dict:
    tags = ["<lora:style_a:0.8>", "<lora:style_b:1>", "", ""] if loras else [""] * 4
    return {"prompt": "four shapes", "mode": mode, "init": "noise",
            "regions": [{"x": x, "y": y, "w": w, "h": h, "prompt": f"{p} {t}".strip()}
                        for (x, y, w, h), p, t in zip(BOXES, PROMPTS, tags)]}


def run(args) -> None:
    from ..api import generate
    from ..regions.lora_files import DiffusersLoras

    torch.set_num_threads(args.threads)
    pipe = sd15_pipeline(args.size)
    with tempfile.TemporaryDirectory() as folder:
        files = {name: write_random_lora(pipe, Path(folder) / f"{name}.safetensors", seed)
                 for name, seed in (("style_a", 1), ("style_b", 2))}
        sizes = sum(p.stat().st_size for p in files.values()) / 2 ** 20

        def job(mode: str, with_loras: bool):
            def go():
                loras = DiffusersLoras(pipe, files) if with_loras else None  # read afresh, as a new generation
                generate(pipe, document(mode, with_loras), seed=0, steps=args.steps, width=args.size,
                         height=args.size, loras=loras)
            return go

        jobs = {"attention": job("attention", False), "attention + LoRA": job("attention", True),
                "latent": job("latent", False), "latent + LoRA": job("latent", True)}
        medians = interleaved_medians(jobs, args.runs)
    for name, seconds in medians.items():
        print(f"{name:17s} {seconds:8.2f} s per generation (median of {args.runs})")
    print(f"SD1.5 pipeline (random weights), {args.size}x{args.size}, {args.steps} steps, 4 regions, 2 of them with "
          f"a rank-16 LoRA ({sizes:.0f} MB of files, read each generation), {args.threads} thread(s)")
    print(f"latent mode with LoRAs vs without: ratio_time={medians['latent + LoRA'] / medians['latent']:.3f}")
    print(f"attention mode with LoRAs vs without: ratio_time={medians['attention + LoRA'] / medians['attention']:.3f}")
