"""``python -m lib_regedit.evaluation.shapes_eval``: regions of any shape against boxes, on ShapesWorld.

Two sets of held-out two-object layouts, each run with every object given as its box and as its own
outline (a circle as a disc, a triangle as its triangle, a square as its square), with the same
whole prompt, a background region saying the model's blank caption, and the document's defaults
(layout init in txt2img), over the same seeds:

- **overlapping**: a triangle and a circle in one of its empty top corners, whose bounding boxes
  overlap by a third or more of the smaller box while the shapes themselves stay two pixels apart:
  boxes cannot separate them.
- **separable**: the data generator's held-out layouts (``cli.held_out_layouts``), whose boxes do not
  overlap: what shapes must not lose against boxes.

Per object: *containment*, the share of the generated pixels of the object's colour that lie inside
its shape (the shape's touched pixels at 64×64, grown by one pixel for the anti-aliased edge), over
the objects that appear at all; *adherence*, whether a detection of the right colour and kind
(``detector.detect``) has at least half its pixels inside the shape; *found*, whether the colour
appears (pixels of a colour two objects share go to the object whose shape is nearer). Both documents
are scored against the shape, the object's true outline.

    python -m lib_regedit.evaluation.shapes_eval [--model PATH] [--layouts 8] [--seeds 1,2,3] [--steps 20]
        [--json out.json] [--images DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..shapesworld.data import BLANK_CAPTION, COLOURS, caption_for, draw_shape
from .cli import held_out_layouts, load
from .detector import colour_labels, detect

OVERLAP_SEED = 38  # the overlapping layouts' generator seed (the training data is seed 0, held-out layouts 7)
MIN_OVERLAP = 1 / 3  # of the smaller box's area
GAP = 2 / 64  # the least distance between the two shapes, as a fraction of the image
EDGE_PIXELS = 1  # the shape area grows by this many pixels when scoring (anti-aliased edges)


def outline(shape: str, box) -> dict:
    """The region shape of an object drawn as ``data.draw_shape`` draws it in ``box``."""
    x, y, w, h = box
    if shape == "circle":
        return {"type": "mask", "strokes": [{"points": [[x + w / 2, y + h / 2]], "radius": w / 2}]}
    if shape == "triangle":
        return {"type": "polygon", "points": [[x + w / 2, y], [x + w, y + h], [x, y + h]]}
    return {"type": "polygon", "points": [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]}


# how the objects are drawn: as boxes, as shapes, as shapes with layout init's sketch filling them, and
# as shapes in a version 6 document (layout init's disc inside the shape, not at its box's centre)
VARIANTS = {"boxes": {"shapes": False}, "shapes": {"shapes": True}, "shapes-filled": {"shapes": True, "init_sketch": "ellipse"},
            "shapes-v6": {"shapes": True, "version": 6}}


def document(layout, shapes: bool, init_sketch: str | None = None, version: int | None = None) -> dict:
    phrases = [f"a {c} {s}" for c, s, _ in layout]
    regions = [({"shape": outline(s, b)} if shapes else dict(zip("xywh", b))) | {"prompt": p}
               for p, (_, s, b) in zip(phrases, layout)]
    regions.append({"x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0, "prompt": BLANK_CAPTION, "role": "background"})
    doc = {"prompt": caption_for(phrases), "regions": regions}
    if init_sketch:
        doc["init_sketch"] = init_sketch
    if version is not None:
        doc["version"] = version
    return doc


def _raster(shape: str, box, size: int) -> np.ndarray:
    image = Image.new("L", (size, size), 0)
    x, y, w, h = box
    draw_shape(ImageDraw.Draw(image), shape, (x * size, y * size, (x + w) * size - 1, (y + h) * size - 1), 255)
    return np.asarray(image) > 127


def overlapping_layouts(n: int, seed: int = OVERLAP_SEED) -> list:
    """``n`` layouts of a triangle and a circle in one of its empty top corners, in two colours, whose
    boxes overlap by at least ``MIN_OVERLAP`` of the smaller one while the shapes stay ``GAP`` apart
    (drawn at random near the corner, kept when they pass)."""
    from scipy.ndimage import binary_dilation

    rng = np.random.default_rng(seed)
    layouts = []
    size = 128
    while len(layouts) < n:
        colours = rng.choice(list(COLOURS), 2, replace=False)
        t = float(rng.uniform(0.4, 0.55))
        c = float(rng.uniform(0.2, 0.3))
        tx, ty = float(rng.uniform(0.02, 0.98 - t)), float(rng.uniform(0.02 + c / 2, 0.98 - t))
        corner = tx if rng.random() < 0.5 else tx + t
        cx, cy = corner + float(rng.uniform(-0.5, 0.5)) * c, ty + float(rng.uniform(-0.5, 0.5)) * c
        boxes = [(tx, ty, t, t), (cx - c / 2, cy - c / 2, c, c)]
        if not all(0.01 <= b[0] and b[0] + b[2] <= 0.99 and 0.01 <= b[1] and b[1] + b[3] <= 0.99 for b in boxes):
            continue
        (ax, ay, aw, ah), (bx, by, bw, bh) = boxes
        inter = max(0.0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0.0, min(ay + ah, by + bh) - max(ay, by))
        if inter < MIN_OVERLAP * min(aw * ah, bw * bh):
            continue
        a, b = (_raster(k, box, size) for k, box in zip(("triangle", "circle"), boxes))
        if (binary_dilation(a, iterations=round(GAP * size)) & b).any():
            continue
        layout = [(str(colours[0]), "triangle", boxes[0]), (str(colours[1]), "circle", boxes[1])]
        layouts.append(layout if rng.random() < 0.5 else layout[::-1])
    return layouts


def shape_area(shape: str, box, size: int) -> np.ndarray:
    """The pixels the object's shape touches at ``size``, grown by ``EDGE_PIXELS``."""
    from scipy.ndimage import binary_dilation

    from ..documents import parse_region_document
    from ..masks import region_mask

    doc = parse_region_document({"prompt": "-", "regions": [{"shape": outline(shape, box), "prompt": "-"}]})
    touched = region_mask(doc.regions[0], size, size, feather=0.0).numpy() > 0
    return binary_dilation(touched, iterations=EDGE_PIXELS)


def score(image, layout) -> list[dict]:
    """Per object: found, containment (nan when not found) and adherence. Pixels of a colour two
    objects share go to the object whose shape is nearer."""
    from scipy.ndimage import distance_transform_edt

    labels = colour_labels(image)
    size = labels.shape[0]
    detections = detect(image)
    names = list(COLOURS)
    areas = [shape_area(kind, box, size) for _, kind, box in layout]
    out = []
    for i, (colour, kind, box) in enumerate(layout):
        pixels = labels == names.index(colour)
        rivals = [j for j, (c, _, _) in enumerate(layout) if c == colour and j != i]
        if rivals:
            own = distance_transform_edt(~areas[i])
            for j in rivals:
                pixels &= own <= distance_transform_edt(~areas[j])
        found = bool(pixels.sum() > 0)
        contained = float((pixels & areas[i]).sum() / pixels.sum()) if found else float("nan")
        right = any(d.colour == colour and d.shape == kind and (d.mask & areas[i]).sum() >= 0.5 * d.mask.sum()
                    for d in detections)
        out.append({"kind": kind, "found": found, "containment": contained, "adherence": bool(right)})
    return out


def evaluate(pipe, layouts: dict, seeds, steps: int, cfg: float, image_dir: Path | None = None, log=print,
             variants=("boxes", "shapes")) -> dict:
    from ..api import generate

    size = pipe.unet.config.sample_size * (2 ** (len(pipe.vae.config.block_out_channels) - 1))
    rows: dict = {}
    seconds = {name: 0.0 for name in variants}
    for group, group_layouts in layouts.items():
        for li, layout in enumerate(group_layouts):
            for seed in seeds:
                for drawn in variants:
                    t0 = time.perf_counter()
                    image = generate(pipe, document(layout, **VARIANTS[drawn]), seed=seed, steps=steps,
                                     guidance_scale=cfg, width=size, height=size).image
                    seconds[drawn] += time.perf_counter() - t0
                    rows.setdefault((group, drawn), []).extend(score(image, layout))
                    if image_dir is not None:
                        image_dir.mkdir(parents=True, exist_ok=True)
                        image.save(image_dir / f"{group}{li}_seed{seed}_{drawn}.png")
            log(f"{group} layout {li + 1}/{len(group_layouts)} done")
    summary = {"rows": {}, "seconds": seconds}
    for (group, drawn), objects in rows.items():
        found = [o for o in objects if o["found"]]
        summary["rows"][f"{group}, {drawn}"] = {
            "objects": len(objects), "found": len(found) / len(objects),
            "containment": float(np.mean([o["containment"] for o in found])) if found else float("nan"),
            "adherence": float(np.mean([o["adherence"] for o in objects])),
            "adherence_by_kind": {kind: float(np.mean([o["adherence"] for o in objects if o["kind"] == kind]))
                                  for kind in sorted({o["kind"] for o in objects})}}
    return summary


def format_table(summary: dict) -> str:
    lines = ["| layouts, regions as | objects | found | containment | adherence |", "|---|---|---|---|---|"]
    for name, r in summary["rows"].items():
        lines.append(f"| {name} | {r['objects']} | {r['found']:.2f} | {r['containment']:.3f} | {r['adherence']:.3f} |")
    kinds = sorted({k for r in summary["rows"].values() for k in r.get("adherence_by_kind", {})})
    if kinds:
        lines += ["", "| layouts, regions as | " + " | ".join(f"adherence, {k}s" for k in kinds) + " |",
                  "|---|" + "---|" * len(kinds)]
        for name, r in summary["rows"].items():
            by_kind = r.get("adherence_by_kind", {})
            lines.append(f"| {name} | " + " | ".join(f"{by_kind[k]:.3f}" if k in by_kind else "-" for k in kinds) + " |")
    s = summary["seconds"]
    if s.get("boxes") and s.get("shapes"):
        lines.append(f"time, shapes against boxes (whole generations, layout init included): "
                     f"ratio_time={s['shapes'] / s['boxes']:.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lib_regedit.evaluation.shapes_eval", description=__doc__.split("\n")[0])
    p.add_argument("--model", help="diffusers folder (default: the bundled ShapesWorld model)")
    p.add_argument("--layouts", type=int, default=8, help="layouts per set (overlapping, separable)")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=7.5)
    p.add_argument("--variants", default="boxes,shapes",
                   help=f"comma-separated, of: {', '.join(VARIANTS)} (shapes-filled: layout init's sketch fills the "
                        "shapes; shapes-v6: a version 6 document, its disc inside each shape)")
    p.add_argument("--sets", default="overlapping,separable", help="comma-separated: overlapping, separable")
    p.add_argument("--json", help="also write the summary here")
    p.add_argument("--images", help="save every image into this folder")
    args = p.parse_args(argv)
    pipe = load(args.model)
    sets = {"overlapping": overlapping_layouts, "separable": held_out_layouts}
    layouts = {name: sets[name](args.layouts) for name in args.sets.split(",")}
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant {unknown[0]!r}; use {', '.join(VARIANTS)}")
    summary = evaluate(pipe, layouts, [int(s) for s in args.seeds.split(",")], args.steps, args.cfg,
                       Path(args.images) if args.images else None, log=lambda m: print(m, file=sys.stderr),
                       variants=variants)
    print(format_table(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
