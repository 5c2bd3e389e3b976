"""Region prompts in ComfyUI against a plain KSampler and against ComfyUI's own area conditioning, side by
side in one run, on the full SD 1.5 architecture with random weights (``comfy_models.py``).

    cd /path/to/ComfyUI && venv/bin/python /path/to/sd-webui-regedit/tests/e2e_comfyui/bench_regions.py

- plain: KSampler with the whole prompt;
- RegEdit: the Regions node (4 boxes, each with its prompt, and the whole prompt) patching the MODEL,
  the same KSampler;
- area conditioning: ComfyUI's ConditioningSetArea for each box's prompt, ConditioningCombine with the
  whole prompt (one model pass per area), the same KSampler.

256x256, 4 steps, euler, CFG 7.5, batch 1, rounds interleaved; prints each method's median wall seconds
and ``ratio_time`` against plain, and the same for the process's CPU seconds (``ratio_cpu``), which other
work on a shared machine disturbs less (run it with OMP_NUM_THREADS=1 there).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BOXES = [(0.0, 0.0, 0.5, 0.5, "a red circle"), (0.5, 0.0, 0.5, 0.5, "a blue square"),
         (0.0, 0.5, 0.5, 0.5, "a green triangle"), (0.5, 0.5, 0.5, 0.5, "a yellow star")]
WHOLE = "a red circle, a blue square, a green triangle and a yellow star"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comfyui", default=os.getcwd(), help="the ComfyUI checkout (default: the current folder)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    sys.argv = [sys.argv[0], "--cpu"]
    sys.path[:0] = [str(Path(args.comfyui).resolve()), str(HERE.parents[1]), str(HERE)]
    import comfy.options

    comfy.options.enable_args_parsing()
    import torch
    import nodes
    from comfy_models import sd15
    from comfyui.nodes import Regions

    with torch.inference_mode():
        model, clip = sd15(full=True)
        encode = nodes.CLIPTextEncode().encode
        positive, negative = encode(clip, WHOLE)[0], encode(clip, "")[0]
        document = json.dumps({"prompt": WHOLE, "regions": [
            {"x": x, "y": y, "w": w, "h": h, "prompt": text} for x, y, w, h, text in BOXES]})
        regions = Regions().apply(model, clip, document, "from the document", "from the document",
                                  "from the document")[0]
        area = positive
        for x, y, w, h, text in BOXES:
            box = nodes.ConditioningSetArea().append(encode(clip, text)[0], int(w * args.size), int(h * args.size),
                                                     int(x * args.size), int(y * args.size), 1.0)[0]
            area = nodes.ConditioningCombine().combine(area, box)[0]
        latent = {"samples": torch.zeros(1, 4, args.size // 8, args.size // 8)}
        methods = {"plain": (model, positive), "RegEdit regions": (regions, positive),
                   "ComfyUI area conditioning": (model, area)}
        times = {name: [] for name in methods}

        def run(name):
            m, cond = methods[name]
            wall, cpu = time.perf_counter(), time.process_time()
            nodes.common_ksampler(m, 1, args.steps, 7.5, "euler", "normal", cond, negative, latent)
            return time.perf_counter() - wall, time.process_time() - cpu

        for name in methods:  # warm-up
            run(name)
        for _ in range(args.rounds):
            for name in methods:
                times[name].append(run(name))
    plain = [statistics.median(t[i] for t in times["plain"]) for i in (0, 1)]
    print(f"ComfyUI {args.size}x{args.size}, {args.steps} steps, euler, full SD 1.5 architecture (random weights), "
          f"{args.rounds} rounds interleaved, medians (threads: {torch.get_num_threads()}):")
    for name, values in times.items():
        wall, cpu = (statistics.median(t[i] for t in values) for i in (0, 1))
        print(f"  {name:28s} {wall:7.3f} s  ratio_time={wall / plain[0]:.3f}   cpu {cpu:7.3f} s  "
              f"ratio_cpu={cpu / plain[1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
