"""``python -m lib_regedit.evaluation.kssa_eval``: keyword selection + KSSA against regions alone on
ShapesWorld, with every region's prompt padded with quality words (MRGD §3.2's setting: long
community prompts where most words say nothing about the object).

Prints per-box adherence (right colour and shape inside each box) for regions alone and regions with
KSSA, over the eval layouts and seeds, and the keywords selected for a sample of regions.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import metrics
from .cli import LAYOUTS, load, region_document
from .detector import detect

QUALITY = "masterpiece, best quality, highly detailed, sharp focus, award winning, 8k, "


def padded_document(layout, kssa: dict | None) -> dict:
    doc = region_document(layout)
    for region in doc["regions"]:
        if region.get("role") != "background":
            region["prompt"] = QUALITY + region["prompt"]
    if kssa is not None:
        doc["kssa"] = kssa
    return doc


def evaluate(pipe, *, seeds, steps, cfg, layouts, kssa: dict, log=print) -> dict:
    from ..api import generate

    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    scores = {"regions": [], "regions+kssa": []}
    samples = []
    t0 = time.time()
    for li, layout in enumerate(layouts):
        for seed in seeds:
            for name, options in (("regions", None), ("regions+kssa", kssa)):
                result = generate(pipe, padded_document(layout, options), seed=seed, steps=steps, guidance_scale=cfg,
                                  width=size, height=size)
                dets = detect(result.image)
                scores[name] += [metrics.box_adherence(dets, box, c, s) for c, s, box in layout]
                if options is not None and seed == seeds[0]:
                    samples.append((layout, result.extras.get("keywords")))
        log(f"layout {li + 1}/{len(layouts)} done ({time.time() - t0:.0f}s)")
    return {"adherence": {k: sum(v) / len(v) for k, v in scores.items()}, "boxes": len(scores["regions"]),
            "samples": samples}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lib_regedit.evaluation.kssa_eval", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=7.5)
    p.add_argument("--layouts", type=int, default=len(LAYOUTS))
    p.add_argument("--keywords", type=int, default=3, help="N; ShapesWorld prompts have 2-3 object words")
    p.add_argument("--scale", type=float, default=1.5)
    p.add_argument("--reweight", default="logit", choices=["logit", "softmax"])
    p.add_argument("--levels", default="down")
    args = p.parse_args(argv)
    kssa = {"enabled": True, "keywords": args.keywords, "scale": args.scale, "reweight": args.reweight,
            "levels": args.levels.split(",")}
    pipe = load(args.model)
    out = evaluate(pipe, seeds=[int(s) for s in args.seeds.split(",")], steps=args.steps, cfg=args.cfg,
                   layouts=LAYOUTS[:args.layouts], kssa=kssa, log=lambda m: print(m, file=sys.stderr))
    print(f"region prompts padded with: {QUALITY!r}; KSSA {kssa}")
    print(f"boxes: {out['boxes']}")
    for name, value in out["adherence"].items():
        print(f"{name:14s} per-box adherence {value:.3f}")
    print(f"KSSA gain: {out['adherence']['regions+kssa'] - out['adherence']['regions']:+.3f}")
    for layout, keywords in out["samples"][:4]:
        print("keywords:", "; ".join(f"{c} {s}: {', '.join(k)}" for (c, s, _), k in zip(layout, keywords or [])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
