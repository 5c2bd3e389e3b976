"""``python -m lib_regedit.bench layout``: the cost of layout init, whole generations side by side.

Layout init adds a VAE encode and one UNet pass per step (batch 1, no CFG) before sampling, so its
cost is per generation, not per UNet call. This bench runs full generations of the same region
document with ``"init": "noise"`` and ``"init": "layout"``, interleaved (the order alternates each
round, so machine load hits both alike), on the bundled ShapesWorld model by default (``--model``
takes any diffusers folder or single file), and prints the ratio of the median times.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "two_shapes.json"


def layout(args) -> None:
    import torch

    from ..api import generate
    from ..documents import parse_region_document
    from ..models import default_model_path, load_pipeline

    torch.set_num_threads(args.threads)
    model = Path(args.model) if args.model else default_model_path()
    pipe = load_pipeline(model)
    pipe.set_progress_bar_config(disable=True)
    base = parse_region_document(EXAMPLE.read_text())
    docs = {init: replace(base, init=init) for init in ("noise", "layout")}
    times: dict = {"noise": [], "layout": []}
    generate(pipe, docs["layout"], seed=0, steps=args.steps)  # warm-up
    for r in range(args.runs):
        order = ("noise", "layout") if r % 2 == 0 else ("layout", "noise")
        for init in order:
            t0 = time.perf_counter()
            generate(pipe, docs[init], seed=r, steps=args.steps)
            times[init].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    for init in ("noise", "layout"):
        print(f"init {init:6s} {med[init]:.3f} s per generation (median of {args.runs}, interleaved)")
    print(f"{model.name}, {args.steps} steps, {len(base.object_regions)} regions, CFG batch 2, {args.threads} thread(s)")
    print(f"regions + layout init vs regions: ratio_time={med['layout'] / med['noise']:.3f}")
