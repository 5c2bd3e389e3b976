"""``python -m lib_regedit.bench layout|guidance``: features whose cost is per generation, not per
UNet call, timed as whole generations side by side.

- ``layout``: layout init adds a VAE encode and one UNet pass per step (batch 1, no CFG) before
  sampling. Regions with ``"init": "layout"`` against ``"init": "noise"``.
- ``guidance``: layout guidance adds up to ``iterations`` forward and backward passes of the
  conditional rows in each guided step. Regions with ``"guidance": true`` (Chen et al.'s defaults)
  against regions alone.

Both run full generations of the same region document (``examples/two_shapes.json``) with and
without the feature, interleaved (the order alternates each round, so machine load hits both
alike), on the bundled ShapesWorld model by default (``--model`` takes any diffusers folder or
single file), and print the ratio of the median times.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "two_shapes.json"


def _compare(args, label: str, variant) -> None:
    """Time ``variant(document)`` against the example document with the feature off."""
    import torch

    from ..api import generate
    from ..documents import parse_region_document
    from ..documents.region import GuidanceOptions
    from ..models import default_model_path, load_pipeline

    torch.set_num_threads(args.threads)
    model = Path(args.model) if args.model else default_model_path()
    pipe = load_pipeline(model)
    pipe.set_progress_bar_config(disable=True)
    base = replace(parse_region_document(EXAMPLE.read_text()), init="noise", guidance=GuidanceOptions())
    docs = {"without": base, "with": variant(base)}
    times: dict = {"without": [], "with": []}
    generate(pipe, docs["with"], seed=0, steps=args.steps)  # warm-up
    for r in range(args.runs):
        order = ("without", "with") if r % 2 == 0 else ("with", "without")
        for name in order:
            t0 = time.perf_counter()
            generate(pipe, docs[name], seed=r, steps=args.steps)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    for name in ("without", "with"):
        print(f"{name:7s} {label}: {med[name]:.3f} s per generation (median of {args.runs}, interleaved)")
    print(f"{model.name}, {args.steps} steps, {len(base.object_regions)} regions, CFG batch 2, {args.threads} thread(s)")
    print(f"regions + {label} vs regions: ratio_time={med['with'] / med['without']:.3f}")


def layout(args) -> None:
    _compare(args, "layout init", lambda doc: replace(doc, init="layout"))


def guidance(args) -> None:
    from ..documents.region import GuidanceOptions

    _compare(args, "layout guidance", lambda doc: replace(doc, guidance=GuidanceOptions(enabled=True)))
