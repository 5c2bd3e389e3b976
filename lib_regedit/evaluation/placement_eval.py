"""``python -m lib_regedit.evaluation.placement_eval``: region placement as a user sees it.

Each candidate (a set of document fields over a document holding only the whole prompt and one box
per object, as a new user writes it) and the plain prompt run on the same two-object layouts, drawn
as a user draws boxes (``placement.user_layouts``: loose boxes of any aspect), with every seed and
sampler. Printed per candidate (``placement.py``): both objects in their boxes, per box, shape kept
(against the plain prompt's one-object images of each shape), seed variety (as a share of the plain
prompt's), in-box impurity, and the time against plain. ``--sheet DIR`` saves a seed sweep (one row
per candidate, one column per seed, the first layout and sampler) for looking at.

    python -m lib_regedit.evaluation.placement_eval [--model PATH] [--layouts 6] [--seeds 1,2,3,4,5]
        [--samplers dpmpp2m,euler_a] [--only 1,3] [--sheet docs/images] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import placement
from .cli import load
from .defaults_eval import candidate_document

SAMPLERS = {"ddim": "DDIMScheduler", "dpmpp2m": "DPMSolverMultistepScheduler",
            "euler_a": "EulerAncestralDiscreteScheduler", "unipc": "UniPCMultistepScheduler"}

# name -> document fields over {"prompt", "regions"} (the current version's defaults)
CANDIDATES = {
    "defaults (version 3: a disc, the seed's share 0.25 in the boxes, 0.85 outside)": {},
    "version 2 defaults (an ellipse filling the box, share 0.25 everywhere)": {"version": 2},
    "regions alone (init noise)": {"init": "noise"},
    "a disc, share 0.4 everywhere": {"init_noise": 0.4, "init_noise_outside": None},
    "a disc, the seed's own noise outside the boxes": {"init_noise_outside": 1.0},
    "an ellipse, share 0.25 in the boxes, 0.85 outside": {"init_sketch": "ellipse"},
    "defaults, a 10-pass inversion": {"init_steps": 10},
    "defaults + layout guidance (bounded)": {"guidance": True},
    "version 2 + layout guidance (unbounded)": {"version": 2, "guidance": True},
    "latent mode, defaults": {"mode": "latent"},
    "latent mode, regions alone": {"mode": "latent", "init": "noise"},
    "a disc, share 0.4 in the boxes, 0.85 outside": {"init_noise": 0.4},
}


def use_sampler(pipe, name: str) -> None:
    import diffusers

    pipe.scheduler = getattr(diffusers, SAMPLERS[name]).from_config(pipe.scheduler.config)


def reference(pipe, samplers, steps: int, cfg: float, seeds=(0, 1, 2)) -> dict:
    """The plain prompt's one-object images of every colour and shape: the shape reference."""
    from ..api import generate_plain

    images: dict = {}
    for sampler in samplers:
        use_sampler(pipe, sampler)
        for colour, shape in placement.single_object_prompts():
            images.setdefault((colour, shape), []).extend(
                generate_plain(pipe, f"a {colour} {shape}", seed=s, steps=steps, guidance_scale=cfg).image for s in seeds)
    return placement.shape_reference(images)


def measure(pipe, candidates: dict, layouts, seeds, samplers, steps: int, cfg: float, sheet: Path | None = None,
            log=print) -> dict:
    """``{name: row}`` with "plain" first; the methods interleave per layout, sampler and seed."""
    from ..api import generate, generate_plain

    ref = reference(pipe, samplers, steps, cfg)
    log(f"shape reference (aspect lo-hi, fill lo-hi): {ref}")
    names = ["plain", *candidates]
    scores = {n: placement.PlacementScore() for n in names}
    sweep: dict = {n: [] for n in names}
    for li, layout in enumerate(layouts):
        for sampler in samplers:
            use_sampler(pipe, sampler)
            per_seed: dict = {n: [] for n in names}
            for seed in seeds:
                for name in names:
                    t0 = time.perf_counter()
                    if name == "plain":
                        image = generate_plain(pipe, candidate_document(layout, {})["prompt"], seed=seed, steps=steps,
                                               guidance_scale=cfg).image
                    else:
                        image = generate(pipe, candidate_document(layout, candidates[name]), seed=seed, steps=steps,
                                         guidance_scale=cfg).image
                    scores[name].seconds += time.perf_counter() - t0
                    scores[name].add_image(image, layout, ref)
                    per_seed[name].append(image)
            for name in names:
                scores[name].add_seeds(per_seed[name])
                if li == 0 and sampler == samplers[0]:
                    sweep[name] = per_seed[name]
        log(f"layout {li + 1}/{len(layouts)} done")
    plain = scores["plain"].row()
    rows = {n: scores[n].row(plain["variety"], scores["plain"].seconds) for n in names}
    if sheet is not None:
        save_sweep(sweep, sheet)
    return rows


def save_sweep(sweep: dict, folder: Path) -> None:
    """One PNG per method: its seeds side by side, scaled 3x for looking at."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, images in sweep.items():
        if not images:
            continue
        w, h = images[0].size
        sheet = Image.new("RGB", (w * len(images), h), "white")
        for i, image in enumerate(images):
            sheet.paste(image, (i * w, 0))
        slug = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")[:60]
        sheet.resize((sheet.width * 3, sheet.height * 3), Image.NEAREST).save(folder / f"sweep_{slug}.png")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lib_regedit.evaluation.placement_eval",
                                description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="diffusers folder (default: the bundled ShapesWorld)")
    p.add_argument("--layouts", type=int, default=6)
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--samplers", default="dpmpp2m,euler_a", help=f"comma-separated, of {', '.join(SAMPLERS)}")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=7.5)
    p.add_argument("--only", default=None, help="comma-separated candidate numbers (1-based) to run")
    p.add_argument("--sheet", default=None, help="save the seed sweeps (PNG) into this folder")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    pipe = load(args.model)
    names = list(CANDIDATES)
    if args.only:
        names = [names[int(i) - 1] for i in args.only.split(",")]
    samplers = args.samplers.split(",")
    for s in samplers:
        if s not in SAMPLERS:
            p.error(f"--samplers: {s!r} is not one of {', '.join(SAMPLERS)}")
    rows = measure(pipe, {n: CANDIDATES[n] for n in names}, placement.user_layouts(args.layouts),
                   [int(s) for s in args.seeds.split(",")], samplers, args.steps, args.cfg,
                   Path(args.sheet) if args.sheet else None, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"{args.model or 'bundled ShapesWorld'}; {args.layouts} layouts x seeds {args.seeds} x {args.samplers}, "
          f"{args.steps} steps, CFG {args.cfg}")
    print(placement.table(rows))
    ceiling = placement.variety_ceiling(placement.user_layouts(args.layouts), seeds=len(args.seeds.split(",")))
    print(f"Seed variety's ceiling on these layouts: ShapesWorld's data generator, with the two objects at a random "
          f"size and place inside their boxes, keeps {ceiling['ratio']:.2f} of the variety it has with them anywhere "
          f"(placement.variety_ceiling).")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
