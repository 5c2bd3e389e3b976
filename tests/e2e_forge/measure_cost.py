"""What RegEdit costs in a real WebUI Forge: a plain txt2img against the same with two regions (attention
mode, latent mode, attention mode with layout init), interleaved rounds, median of 3, ``ratio_time`` each.

    FORGE_DIR=... FORGE_PY=... python tests/e2e_forge/measure_cost.py [WORK_FOLDER]

It starts Forge with the e2e harness (the checkpoint it writes: full-size CLIP-L and VAE, cut-down UNet)
at 256x256, 10 steps of DPM++ 2M, and stops it afterwards.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_webui import ForgeWebUI, plain_payload, with_regions  # noqa: E402

DOC = {"prompt": "a landscape", "init": "noise", "regions": [
    {"x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "a blue square"},
    {"x": 0.5, "y": 0.25, "w": 0.5, "h": 0.5, "prompt": "a yellow house"}]}


def main() -> int:
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="regedit-forge-cost-"))
    forge = ForgeWebUI(os.environ["FORGE_DIR"], os.environ["FORGE_PY"], work, ui=False)
    try:
        forge.start()
        base = plain_payload(width=256, height=256, steps=10, sampler_name="DPM++ 2M")
        runs = {"plain": base, "attention": with_regions(base, dict(DOC, mode="attention")),
                "latent": with_regions(base, dict(DOC, mode="latent")),
                "attention + layout init": with_regions(base, dict(DOC, init="layout"))}
        forge.generate("txt2img", base)  # warm-up
        times = {name: [] for name in runs}
        for _ in range(3):
            for name, payload in runs.items():
                started = time.perf_counter()
                forge.generate("txt2img", payload)
                times[name].append(time.perf_counter() - started)
        plain = statistics.median(times["plain"])
        for name, values in times.items():
            median = statistics.median(values)
            print(f"{name}: {median:.2f} s, ratio_time={median / plain:.3f}")
    finally:
        forge.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
