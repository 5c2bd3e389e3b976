"""``python -m lib_regedit.bench regions|kssa``: region prompting against plain sampling, and keyword
selection + KSSA against regions alone.

The full SD 1.5 UNet architecture (diffusers' default UNet2DConditionModel config: 320/640/1280/1280
channels, cross-attention dim 768) with random weights, at 256×256 (a 32×32 latent), classifier-free
guidance (batch 2), 4 regions plus the whole prompt. Each mode runs in its own worker process, so its
peak resident memory is its own; the workers run one after another, in rounds, and the medians of the
per-step times are compared. The last line is ``ratio_time=X ratio_rss=Y`` for attention mode
against plain (goal: ≤ 1.15 and ≤ 1.10). ``kssa`` runs regions with keyword selection and KSSA
(MRGD §3.2 defaults: N = 15, ×1.5 in the down blocks, maps at latent/4, refreshed every 5 steps)
against regions alone; its last line is ``ratio_time=X`` (goal: ≤ 1.10).
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
    from ..attention.effects.keyword_selection import KeywordSelection, RegionKeywords
    from ..attention.effects.kssa import KeywordSelfAttention
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
    elif mode == "kssa":
        # each region prompt: 8 quality words then 4 object words, 12 word tokens at positions 1..12
        words = [(i + 1, f"w{i}") for i in range(12)]
        selection = KeywordSelection([RegionKeywords(i, box, c, words) for i, (box, c) in enumerate(zip(REGIONS, contexts))],
                                     n=15, refresh_every=5, downscale=4)
        kssa = KeywordSelfAttention(selection, scale=1.5, levels=("down",))
        controller = Controller([kssa, RegionFusion(regions, whole_start=0.3), selection], state)
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
    applied = {"kssa_applied": kssa.applied, "keyword_refreshes": selection.refreshes} if mode == "kssa" else {}
    return {"mode": mode, **applied, "step_s": statistics.median(times),
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _compare(modes: list[str], args) -> tuple[dict, dict]:
    results: dict[str, list[dict]] = {m: [] for m in modes}
    for round_ in range(args.rounds):
        for mode in (modes if round_ % 2 == 0 else modes[::-1]):
            out = subprocess.run([sys.executable, "-m", "lib_regedit.bench", "_worker", mode, "--steps", str(args.steps),
                                  "--size", str(args.size), "--threads", str(args.threads)],
                                 check=True, capture_output=True, text=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            results[mode].append(result)
            extra = f"  (KSSA applied {result['kssa_applied']}x, {result['keyword_refreshes']} selections)" \
                if "kssa_applied" in result else ""
            print(f"round {round_ + 1} {mode:9s} {result['step_s']:.3f} s/step  peak RSS {result['rss_mb']:.0f} MB{extra}",
                  flush=True)
    step = {m: statistics.median(r["step_s"] for r in results[m]) for m in modes}
    rss = {m: statistics.median(r["rss_mb"] for r in results[m]) for m in modes}
    return step, rss


def regions(args) -> None:
    step, rss = _compare(["plain", "attention", "latent"], args)
    print(f"SD1.5 UNet (random weights), {args.size}x{args.size}, {len(REGIONS)} regions + whole prompt, CFG batch 2, "
          f"{args.steps} steps x {args.rounds} rounds, {args.threads} thread(s)")
    print(f"latent mode vs plain: ratio_time={step['latent'] / step['plain']:.3f} "
          f"ratio_rss={rss['latent'] / rss['plain']:.3f}")
    print(f"attention mode vs latent mode: ratio_time={step['attention'] / step['latent']:.3f}")
    print(f"attention mode vs plain: ratio_time={step['attention'] / step['plain']:.3f} "
          f"ratio_rss={rss['attention'] / rss['plain']:.3f}")


def kssa(args) -> None:
    step, rss = _compare(["attention", "kssa"], args)
    print(f"SD1.5 UNet (random weights), {args.size}x{args.size}, {len(REGIONS)} regions + whole prompt, CFG batch 2, "
          f"{args.steps} steps x {args.rounds} rounds, {args.threads} thread(s)")
    print(f"regions + keyword selection + KSSA vs regions alone: ratio_time={step['kssa'] / step['attention']:.3f} "
          f"ratio_rss={rss['kssa'] / rss['attention']:.3f}")
    print(f"ratio_time={step['kssa'] / step['attention']:.3f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lib_regedit.bench")
    sub = parser.add_subparsers(dest="bench", required=True)
    reg = sub.add_parser("regions", help="attention and latent modes against plain sampling")
    reg.add_argument("--steps", type=int, default=4)
    reg.add_argument("--rounds", type=int, default=2)
    reg.add_argument("--size", type=int, default=256)
    reg.add_argument("--threads", type=int, default=1)
    ks = sub.add_parser("kssa", help="keyword selection + KSSA against regions alone")
    ks.add_argument("--steps", type=int, default=6)
    ks.add_argument("--rounds", type=int, default=2)
    ks.add_argument("--size", type=int, default=256)
    ks.add_argument("--threads", type=int, default=1)
    worker = sub.add_parser("_worker")
    worker.add_argument("mode", choices=["plain", "attention", "latent", "kssa"])
    worker.add_argument("--steps", type=int, default=4)
    worker.add_argument("--size", type=int, default=256)
    worker.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.bench == "_worker":
        print(json.dumps(_worker(args.mode, args.steps, args.size, args.threads)))
    elif args.bench == "kssa":
        kssa(args)
    else:
        regions(args)


if __name__ == "__main__":
    main()
