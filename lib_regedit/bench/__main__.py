"""``python -m lib_regedit.bench regions|kssa|shapes|layout|guidance|defaults|drag|lime|edit|inversion|lora|startup``: region prompting
against plain sampling, keyword selection + KSSA against regions alone, layout init and layout guidance
against regions alone, the region defaults against plain (whole generations, ``whole_generation.py``), a RegionDrag edit against
a plain txt2img (``drag_bench.py``), and a LIME edit against the same instruct-pix2pix edit without
it (``lime_bench.py``), and a region edit pair against one region generation (``edit_bench.py``), and each real-image
inversion against one plain generation (``inversion_bench.py``), and a generation with a LoRA per region
against the same without (``lora_bench.py``). ``startup`` splits a shell ``regedit generate`` into imports, model load, sampling
and exit (``startup.py``).

The full SD 1.5 UNet architecture (diffusers' UNet2DConditionModel with 320/640/1280/1280 channels
and cross-attention dim 768) with random weights, at 256×256 (a 32×32 latent), classifier-free
guidance (batch 2), 4 regions plus the whole prompt.

Time: one process holds the UNet and runs the modes step by step, interleaved (plain, attention,
latent, then the next step in rotated order), so drifting machine load hits every mode alike; the
medians of the per-call times are compared. Memory: each mode also runs in its own short worker
process, whose peak resident memory is its own.

``regions`` ends with ``ratio_time=X ratio_rss=Y`` for attention mode against plain (goal: ≤ 1.15
and ≤ 1.10). ``kssa`` runs regions with keyword selection and KSSA (MRGD §3.2 defaults: N = 15,
×1.5 in the down blocks, maps at latent/4, refreshed every 5 steps) against regions alone and ends
with ``ratio_time=X`` (goal: ≤ 1.10). ``shapes`` runs the same four regions drawn as shapes (two discs,
two triangles, rasterised by ``lib_regedit/shape_masks.py``) against them as boxes and ends with
``ratio_time=X`` (goal: ≤ 1.02).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REGIONS = [(0.0, 0.0, 0.5, 0.5), (0.5, 0.0, 0.5, 0.5), (0.0, 0.5, 0.5, 0.5), (0.5, 0.5, 0.5, 0.5)]


def region_shapes():
    """``shapes``: the same four regions drawn as shapes: discs (brush dots) and triangles in turn, each
    inside its box."""
    from ..documents.shapes import MaskRegion, PolygonRegion, Stroke

    out = []
    for i, (x, y, w, h) in enumerate(REGIONS):
        if i % 2:
            out.append(PolygonRegion(((x + w / 2, y + 0.05), (x + w - 0.05, y + h - 0.05), (x + 0.05, y + h - 0.05))))
        else:
            out.append(MaskRegion((Stroke(((x + w / 2, y + h / 2),), 0.2),)))
    return out


class Bench:
    """The UNet, its inputs, and one attach function per mode."""

    def __init__(self, size: int, steps: int):
        from diffusers import UNet2DConditionModel

        torch.manual_seed(0)
        self.unet = UNet2DConditionModel(sample_size=size // 8, cross_attention_dim=768).eval()  # SD 1.5
        g = torch.Generator().manual_seed(1)
        self.cond, self.uncond = torch.randn(1, 77, 768, generator=g), torch.randn(1, 77, 768, generator=g)
        self.contexts = [torch.randn(1, 77, 768, generator=g) for _ in REGIONS]
        self.latent = torch.randn(1, 4, size // 8, size // 8, generator=g)
        self.steps = steps
        self.effects: dict = {}

    def attach(self, mode: str):
        """A context manager running the UNet in ``mode``; effects persist across steps, as in a generation."""
        from ..attention.controller import Controller, GenerationState
        from ..attention.effects.keyword_selection import KeywordSelection, RegionKeywords
        from ..attention.effects.kssa import KeywordSelfAttention
        from ..attention.effects.region_fusion import RegionFusion, RegionPrompt
        from ..backends import diffusers_backend
        from ..regions.latent_fusion import LatentFusion

        if mode == "plain":
            return contextlib.nullcontext()
        if mode not in self.effects:
            shapes = region_shapes() if mode == "shapes" else [None] * len(REGIONS)
            regions = [RegionPrompt(*box, feather=0.03, weight=1.0, context=c, shape=shape)
                       for box, c, shape in zip(REGIONS, self.contexts, shapes)]
            state = GenerationState(total_steps=self.steps, cond_reference=self.cond, uncond_reference=self.uncond,
                                    cond_first=False)
            if mode in ("attention", "shapes"):
                self.effects[mode] = Controller([RegionFusion(regions, whole_start=0.3)], state), None
            elif mode == "kssa":
                # each region prompt: 12 word tokens (quality words, then the object's), at positions 1..12
                words = [(i + 1, f"w{i}") for i in range(12)]
                selection = KeywordSelection([RegionKeywords(i, box, c, words)
                                              for i, (box, c) in enumerate(zip(REGIONS, self.contexts))],
                                             n=15, refresh_every=5, downscale=4)
                kssa = KeywordSelfAttention(selection, scale=1.5, levels=("down",))
                self.effects[mode] = Controller([kssa, RegionFusion(regions, whole_start=0.3), selection], state), kssa
            else:
                self.effects[mode] = Controller([], state), LatentFusion(regions, whole_start=0.3)
        controller, extra = self.effects[mode]
        if mode == "latent":
            return diffusers_backend.latent_attached(self.unet, controller, extra)
        return diffusers_backend.attached(self.unet, controller)

    def call(self, mode: str, step: int) -> float:
        if mode in self.effects:
            self.effects[mode][0].state.step = step
        x = self.latent
        with self.attach(mode), torch.no_grad():
            start = time.perf_counter()
            self.unet(torch.cat([x, x]), 999 - 50 * step, encoder_hidden_states=torch.cat([self.uncond, self.cond]))
            return time.perf_counter() - start


def _timing(modes: list[str], steps: int, size: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    bench = Bench(size, steps)
    for mode in modes:  # warm-up, not counted
        bench.call(mode, 0)
    times: dict[str, list[float]] = {m: [] for m in modes}
    for step in range(steps):
        order = modes[step % len(modes):] + modes[:step % len(modes)]
        for mode in order:
            times[mode].append(bench.call(mode, step))
    out = {m: statistics.median(t) for m, t in times.items()}
    kssa = bench.effects.get("kssa")
    if kssa:
        out["kssa_applied"] = kssa[1].applied
        out["keyword_refreshes"] = kssa[1].selection.refreshes
    return out


def _memory(mode: str, size: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    bench = Bench(size, 2)
    for step in range(2):
        bench.call(mode, step)
    return {"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_worker(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "lib_regedit.bench", "_worker", *args], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _compare(modes: list[str], args) -> tuple[dict, dict]:
    common = ["--size", str(args.size), "--threads", str(args.threads)]
    timing = _run_worker("timing", ",".join(modes), "--steps", str(args.steps), *common)
    rss = {m: _run_worker("memory", m, *common)["rss_mb"] for m in modes}
    for mode in modes:
        print(f"{mode:9s} {timing[mode]:.3f} s per UNet call (median of {args.steps}, interleaved)  "
              f"peak RSS {rss[mode]:.0f} MB", flush=True)
    print(f"SD1.5 UNet (random weights), {args.size}x{args.size}, {len(REGIONS)} regions + whole prompt, CFG batch 2, "
          f"{args.threads} thread(s)")
    return timing, rss


def regions(args) -> None:
    step, rss = _compare(["plain", "attention", "latent"], args)
    print(f"latent mode vs plain: ratio_time={step['latent'] / step['plain']:.3f} "
          f"ratio_rss={rss['latent'] / rss['plain']:.3f}")
    print(f"attention mode vs latent mode: ratio_time={step['attention'] / step['latent']:.3f}")
    print(f"attention mode vs plain: ratio_time={step['attention'] / step['plain']:.3f} "
          f"ratio_rss={rss['attention'] / rss['plain']:.3f}")


def shapes(args) -> None:
    step, rss = _compare(["attention", "shapes"], args)
    print(f"regions drawn as shapes (discs and triangles) vs the same regions as boxes: "
          f"ratio_rss={rss['shapes'] / rss['attention']:.3f}")
    print(f"ratio_time={step['shapes'] / step['attention']:.3f}")


def kssa(args) -> None:
    step, rss = _compare(["attention", "kssa"], args)
    print(f"KSSA applied in {step['kssa_applied']} self-attention calls; {step['keyword_refreshes']} keyword selections")
    print(f"regions + keyword selection + KSSA vs regions alone: ratio_rss={rss['kssa'] / rss['attention']:.3f}")
    print(f"ratio_time={step['kssa'] / step['attention']:.3f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lib_regedit.bench")
    sub = parser.add_subparsers(dest="bench", required=True)
    for name, steps, text in (("regions", 6, "attention and latent modes against plain sampling"),
                              ("kssa", 12, "keyword selection + KSSA against regions alone"),
                              ("shapes", 6, "regions drawn as shapes against the same regions as boxes")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--steps", type=int, default=steps, help="timed UNet calls per mode")
        p.add_argument("--size", type=int, default=256)
        p.add_argument("--threads", type=int, default=1)
    for name, text in (("layout", "layout init against regions alone, whole generations"),
                       ("guidance", "layout guidance against regions alone, whole generations"),
                       ("defaults", "the defaults (layout init cold and cached) and regions alone against plain")):
        whole = sub.add_parser(name, help=text)
        whole.add_argument("--model", default=None, help="diffusers folder or single file (default: bundled ShapesWorld)")
        whole.add_argument("--steps", type=int, default=20)
        whole.add_argument("--runs", type=int, default=6)
        whole.add_argument("--threads", type=int, default=1)
        whole.add_argument("--sd15", type=int, default=None, metavar="SIZE",
                           help="instead of --model: the full SD 1.5 architecture (random weights) at SIZE x SIZE")
    def whole_runs(name: str, text: str, runs: int = 3) -> argparse.ArgumentParser:
        """A bench of whole edits against a baseline: steps, size, rounds and threads."""
        bench = sub.add_parser(name, help=text)
        bench.add_argument("--steps", type=int, default=20)
        bench.add_argument("--size", type=int, default=256)
        bench.add_argument("--runs", type=int, default=runs)
        bench.add_argument("--threads", type=int, default=1)
        return bench

    whole_runs("drag", "one RegionDrag edit against one plain txt2img, whole runs")
    edited = whole_runs("edit", "one region edit pair (source and target) against one region generation")
    edited.add_argument("--guidance", action="store_true", help="also time the pair with multi-region guidance")
    inverted = whole_runs("inversion", "each real-image inversion against one plain generation", runs=1)
    inverted.add_argument("--methods", default="ddim,negative,nulltext", help="comma-separated")
    inverted.add_argument("--nulltext-iterations", type=int, default=10)
    whole_runs("lime", "one LIME edit against the same instruct-pix2pix edit without LIME")
    whole_runs("lora", "a region generation with a LoRA on two regions against the same without LoRAs, both modes",
               runs=1).set_defaults(steps=4)
    startup = sub.add_parser("startup", help="a shell generate's seconds: imports, model load, sampling, exit")
    startup.add_argument("--runs", type=int, default=3)
    startup.add_argument("--steps", type=int, default=20)
    startup.add_argument("--checkout", default=str(Path(__file__).resolve().parents[2]),
                         help="the checkout to time (default: this one)")
    startup.add_argument("--out", default="out/startup.png", help="the generated image")
    from . import memory

    memory.add_parsers(sub)
    worker = sub.add_parser("_worker")
    worker.add_argument("kind", choices=["timing", "memory"])
    worker.add_argument("modes")
    worker.add_argument("--steps", type=int, default=6)
    worker.add_argument("--size", type=int, default=256)
    worker.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if memory.dispatch(args):
        return
    if args.bench == "_worker":
        if args.kind == "timing":
            result = _timing(args.modes.split(","), args.steps, args.size, args.threads)
        else:
            result = _memory(args.modes, args.size, args.threads)
        print(json.dumps(result))
    elif args.bench == "kssa":
        kssa(args)
    elif args.bench == "shapes":
        shapes(args)
    elif args.bench == "startup":
        from . import startup

        startup.run(args)
    elif args.bench == "drag":
        from . import drag_bench

        drag_bench.run(args)
    elif args.bench == "edit":
        from . import edit_bench

        edit_bench.run(args)
    elif args.bench == "inversion":
        from . import inversion_bench

        inversion_bench.run(args)
    elif args.bench == "lime":
        from . import lime_bench

        lime_bench.run(args)
    elif args.bench == "lora":
        from . import lora_bench

        lora_bench.run(args)
    elif args.bench in ("layout", "guidance", "defaults"):
        from . import whole_generation

        getattr(whole_generation, args.bench)(args)
    else:
        regions(args)


if __name__ == "__main__":
    main()
