"""``python -m lib_regedit.bench regions``: region prompting against plain sampling.

The full SD 1.5 UNet architecture (diffusers' default UNet2DConditionModel config: 320/640/1280/1280
channels, cross-attention dim 768) with random weights, at 256×256 (a 32×32 latent), classifier-free
guidance (batch 2), 4 regions plus the whole prompt. Each mode runs in its own worker process, so its
peak resident memory is its own; the workers run one after another, in rounds, and the medians of the
per-step times are compared. The last line is ``ratio_time=X ratio_rss=Y`` for attention mode
against plain (goal: ≤ 1.15 and ≤ 1.10).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

REGIONS = [(0.0, 0.0, 0.5, 0.5), (0.5, 0.0, 0.5, 0.5), (0.0, 0.5, 0.5, 0.5), (0.5, 0.5, 0.5, 0.5)]


def _worker(mode: str, steps: int, size: int, threads: int) -> dict:
    from diffusers import UNet2DConditionModel

    from ..attention.controller import Controller, GenerationState
    from ..attention.effects.region_fusion import RegionFusion, RegionPrompt
    from ..backends import diffusers_backend
    from ..latent_fusion import LatentFusion

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=size // 8, cross_attention_dim=768).eval()  # the SD 1.5 architecture
    g = torch.Generator().manual_seed(1)
    cond, uncond = torch.randn(1, 77, 768, generator=g), torch.randn(1, 77, 768, generator=g)
    contexts = [torch.randn(1, 77, 768, generator=g) for _ in REGIONS]
    latent = torch.randn(1, 4, size // 8, size // 8, generator=g)
    regions = [RegionPrompt(*box, feather=0.03, weight=1.0, context=c) for box, c in zip(REGIONS, contexts)]
    state = GenerationState(total_steps=steps, cond_reference=cond, uncond_reference=uncond, cond_first=False)
    if mode == "plain":
        attach = None
    elif mode == "attention":
        controller = Controller([RegionFusion(regions, whole_start=0.3)], state)
        attach = diffusers_backend.attached(unet, controller)
    else:
        controller = Controller([], state)
        attach = diffusers_backend.latent_attached(unet, controller, LatentFusion(regions, whole_start=0.3))

    def run() -> list[float]:
        x, times = latent.clone(), []
        for step in range(steps + 1):  # the first step warms up and is not counted
            state.step = max(0, step - 1)
            start = time.perf_counter()
            with torch.no_grad():
                eps = unet(torch.cat([x, x]), 999 - 50 * step, encoder_hidden_states=torch.cat([uncond, cond])).sample
            e_u, e_c = eps.chunk(2)
            x = x - 0.05 * (e_u + 7.5 * (e_c - e_u))
            if step:
                times.append(time.perf_counter() - start)
        return times

    if attach is None:
        times = run()
    else:
        with attach:
            times = run()
    return {"mode": mode, "step_s": statistics.median(times),
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def regions(args) -> None:
    modes = ["plain", "attention", "latent"]
    results: dict[str, list[dict]] = {m: [] for m in modes}
    for round_ in range(args.rounds):
        for mode in (modes if round_ % 2 == 0 else modes[::-1]):
            out = subprocess.run([sys.executable, "-m", "lib_regedit.bench", "_worker", mode, "--steps", str(args.steps),
                                  "--size", str(args.size), "--threads", str(args.threads)],
                                 check=True, capture_output=True, text=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            results[mode].append(result)
            print(f"round {round_ + 1} {mode:9s} {result['step_s']:.3f} s/step  peak RSS {result['rss_mb']:.0f} MB",
                  flush=True)
    step = {m: statistics.median(r["step_s"] for r in results[m]) for m in modes}
    rss = {m: statistics.median(r["rss_mb"] for r in results[m]) for m in modes}
    print(f"SD1.5 UNet (random weights), {args.size}x{args.size}, {len(REGIONS)} regions + whole prompt, CFG batch 2, "
          f"{args.steps} steps x {args.rounds} rounds, {args.threads} thread(s)")
    print(f"latent mode vs plain: ratio_time={step['latent'] / step['plain']:.3f} "
          f"ratio_rss={rss['latent'] / rss['plain']:.3f}")
    print(f"attention mode vs latent mode: ratio_time={step['attention'] / step['latent']:.3f}")
    print(f"attention mode vs plain: ratio_time={step['attention'] / step['plain']:.3f} "
          f"ratio_rss={rss['attention'] / rss['plain']:.3f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lib_regedit.bench")
    sub = parser.add_subparsers(dest="bench", required=True)
    reg = sub.add_parser("regions", help="attention and latent modes against plain sampling")
    reg.add_argument("--steps", type=int, default=4)
    reg.add_argument("--rounds", type=int, default=2)
    reg.add_argument("--size", type=int, default=256)
    reg.add_argument("--threads", type=int, default=1)
    worker = sub.add_parser("_worker")
    worker.add_argument("mode", choices=["plain", "attention", "latent"])
    worker.add_argument("--steps", type=int, default=4)
    worker.add_argument("--size", type=int, default=256)
    worker.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.bench == "_worker":
        print(json.dumps(_worker(args.mode, args.steps, args.size, args.threads)))
    else:
        regions(args)


if __name__ == "__main__":
    main()
