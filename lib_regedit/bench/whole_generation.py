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


def _pipeline(args):
    """The model path and its pipeline, on ``args.threads`` threads, progress bars off; with ``--sd15
    SIZE`` the full SD 1.5 architecture with random weights (``drag_bench.sd15_pipeline``)."""
    import torch

    from ..models import default_model_path, load_pipeline

    torch.set_num_threads(args.threads)
    if getattr(args, "sd15", None):
        from .drag_bench import sd15_pipeline

        return Path(f"SD 1.5 architecture (random weights), {args.sd15}x{args.sd15}"), sd15_pipeline(args.sd15)
    model = Path(args.model) if args.model else default_model_path()
    pipe = load_pipeline(model)
    pipe.set_progress_bar_config(disable=True)
    return model, pipe


def _compare(args, label: str, variant) -> None:
    """Time ``variant(document)`` against the example document with the feature off."""
    from ..api import generate
    from ..documents import parse_region_document
    from ..documents.region import GuidanceOptions

    model, pipe = _pipeline(args)
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


def defaults(args) -> None:
    """The defaults a new user gets (the example document as it is) against a plain image of the
    same prompt, and regions alone beside them. Layout init's inversion does not depend on the seed,
    so it runs once per layout: "cold" empties the cache before each generation (a new layout),
    "warm" is every later seed, batch or call of that layout. Prints ``ratio_time`` against plain."""
    from ..regions import layout_init
    from ..api import generate, generate_plain
    from ..documents import parse_region_document

    model, pipe = _pipeline(args)
    doc = parse_region_document(EXAMPLE.read_text())
    size = {"width": args.sd15, "height": args.sd15} if getattr(args, "sd15", None) else {}
    runs = {
        "plain": lambda seed: generate_plain(pipe, doc.prompt, seed=seed, steps=args.steps, **size),
        "regions alone": lambda seed: generate(pipe, replace(doc, init="noise"), seed=seed, steps=args.steps, **size),
        "defaults, cold": lambda seed: (layout_init.LAYOUTS.clear(),
                                        generate(pipe, doc, seed=seed, steps=args.steps, **size)),
        "defaults, warm": lambda seed: generate(pipe, doc, seed=seed, steps=args.steps, **size),
    }
    for run in runs.values():
        run(0)  # warm-up
    times: dict = {name: [] for name in runs}
    names = list(runs)
    for r in range(args.runs):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotated: load hits every one alike
            t0 = time.perf_counter()
            runs[name](r + 1)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{model.name}, {args.steps} steps, {len(doc.object_regions)} regions, document version {doc.version} "
          f"(init {doc.init}, sketch {doc.init_sketch}, seed share {doc.init_noise}, outside the boxes {doc.init_noise_outside}), CFG batch 2, {args.threads} thread(s)")
    for name in names:
        print(f"{name:15s} {med[name]:.3f} s per generation (median of {args.runs}, interleaved), "
              f"ratio_time={med[name] / med['plain']:.3f}")
