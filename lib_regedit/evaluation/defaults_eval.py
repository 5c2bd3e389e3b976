"""``python -m lib_regedit.evaluation.defaults_eval``: the region defaults, chosen by measurement.

What a new user meets: a whole prompt, one box per object, and no background region. Each candidate
setting of what covers the area outside the boxes (``background_prompt``), layout init and its noise
share, and the whole prompt's start (T_total) runs on the same layouts and seeds, and prints per-box
adherence (the right colour and shape inside each box), beside "single": one-box documents ("a red
circle" in a box) whose image holds exactly one right object, inside its box, so a default that
fills boxes by drawing objects everywhere does not win. docs/regions.md's defaults table comes from here.

    python -m lib_regedit.evaluation.defaults_eval [--model PATH] [--held-out 8] [--scheduler dpmpp2m]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..shapesworld.data import BLANK_CAPTION, COLOURS, SHAPES
from . import metrics
from .cli import LAYOUTS, held_out_layouts, load, region_document
from .detector import detect

# name -> document fields over a document with only "prompt" and "regions" (version 2 defaults).
CANDIDATES = {
    "old defaults (v1: whole prompt, noise)": {"version": 1},
    "whole prompt + layout init": {"background_prompt": "whole", "init": "layout"},
    "rest of prompt, noise": {"background_prompt": "rest", "init": "noise"},
    "empty prompt, noise": {"background_prompt": "empty", "init": "noise"},
    "rest of prompt + layout init": {"background_prompt": "rest", "init": "layout"},
    "rest + layout, T_total 0.5": {"init": "layout", "whole_prompt_start": 0.5},
    "rest + layout, T_total 1.0 (never)": {"init": "layout", "whole_prompt_start": 1.0},
    "rest + layout, init_noise 0.1": {"init": "layout", "init_noise": 0.1},
    "rest + layout, init_noise 0.4": {"init": "layout", "init_noise": 0.4},
    "new defaults": {},
    "reference: 'a blank background' region, noise": {"background": BLANK_CAPTION, "init": "noise"},
}

SCHEDULERS = {"ddim": "DDIMScheduler", "dpmpp2m": "DPMSolverMultistepScheduler",
              "euler_a": "EulerAncestralDiscreteScheduler"}


def candidate_document(layout, fields: dict) -> dict:
    fields = dict(fields)
    doc = region_document(layout, background=fields.pop("background", None))
    doc.pop("negative_prompt")
    doc.update(fields)
    return doc


SINGLE_BOXES = [(0.05, 0.3, 0.4, 0.4), (0.55, 0.3, 0.4, 0.4), (0.3, 0.05, 0.4, 0.4), (0.3, 0.55, 0.4, 0.4)]


def single_layouts() -> list:
    """12 one-object layouts (every colour and shape), the box moving round the image."""
    objects = [(c, s) for c in COLOURS for s in SHAPES]
    return [[(c, s, SINGLE_BOXES[i % len(SINGLE_BOXES)])] for i, (c, s) in enumerate(objects)]


def single_ok(detections, layout) -> bool:
    """Exactly one object of the right colour and shape, and it is in its box."""
    colour, shape, box = layout[0]
    right = [d for d in detections if d.colour == colour and d.shape == shape]
    return len(right) == 1 and metrics.box_adherence(right, box, colour, shape)


def measure(pipe, candidates: dict, layouts, seeds, steps: int, cfg: float, singles=None, single_seeds=(),
            log=print) -> dict:
    from ..api import generate

    out = {}
    for name, fields in candidates.items():
        t0 = time.time()
        hits, boxes, single_hits, single_n = 0, 0, 0, 0
        for layout in layouts:
            doc = candidate_document(layout, fields)
            for seed in seeds:
                dets = detect(generate(pipe, doc, seed=seed, steps=steps, guidance_scale=cfg).image)
                for colour, shape, box in layout:
                    hits += metrics.box_adherence(dets, box, colour, shape)
                    boxes += 1
        for layout in singles or []:
            doc = candidate_document(layout, fields)
            for seed in single_seeds:
                dets = detect(generate(pipe, doc, seed=seed, steps=steps, guidance_scale=cfg).image)
                single_hits += single_ok(dets, layout)
                single_n += 1
        out[name] = {"adherence": hits / boxes, "boxes": boxes, "single": single_hits, "single_n": single_n}
        log(f"{name}: {hits / boxes:.3f} of {boxes} boxes, single {single_hits}/{single_n} "
            f"({time.time() - t0:.0f}s)")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lib_regedit.evaluation.defaults_eval", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="diffusers folder (default: the bundled ShapesWorld)")
    p.add_argument("--held-out", type=int, default=0, metavar="N", help="N held-out layouts instead of the fixed 8")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--single-seeds", default="0,1", help="seeds for the one-box documents ('' to skip them)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=7.5)
    p.add_argument("--scheduler", choices=sorted(SCHEDULERS), default="ddim")
    p.add_argument("--only", default=None, help="comma-separated candidate numbers (1-based) to run")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    pipe = load(args.model)
    if args.scheduler != "ddim":
        import diffusers

        pipe.scheduler = getattr(diffusers, SCHEDULERS[args.scheduler]).from_config(pipe.scheduler.config)
    names = list(CANDIDATES)
    if args.only:
        names = [names[int(i) - 1] for i in args.only.split(",")]
    single_seeds = [int(s) for s in args.single_seeds.split(",") if s.strip()]
    results = measure(pipe, {n: CANDIDATES[n] for n in names},
                      held_out_layouts(args.held_out) if args.held_out else LAYOUTS,
                      [int(s) for s in args.seeds.split(",")], args.steps, args.cfg,
                      single_layouts() if single_seeds else None, single_seeds,
                      log=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"{'candidate':48s} adherence  boxes  single")
    for name, r in results.items():
        single = f"{r['single']}/{r['single_n']}" if r["single_n"] else "-"
        print(f"{name:48s} {r['adherence']:9.3f}  {r['boxes']:5d}  {single}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
