"""``python -m lib_regedit eval --drag``: RegionDrag on ShapesWorld images whose ground truth is exact.

Each case is a scene rendered by the data generator from a seed training never saw (the held-out
seed). Its first object is dragged by its region, as a quad around its box (``polygon``) or as one
brush stroke over it (``mask``), to a target: the same box moved by an offset that keeps it inside
the image and off the other objects. The drag runs with RegionDrag's evaluation setting (handle
noise 1.0) and the scene's caption as the prompt.

Scores per column:

- **success**: the detector finds an object of the dragged colour and shape whose centroid is within
  5% of the side from where the source's centroid lands after the move, and none of them is left in
  the handle area that the target does not cover;
- **SSIM outside** handle ∪ target (the rest of the image should not move);
- **seconds** per drag.

Columns: ours; ours without mutual self-attention; ours with the reference implementation's
copy-paste at every step (its ``end_t`` compares a timestep with a step index); ours with the handle
noise of RegionDrag's interface (0.6) instead of its evaluation's (1.0).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np

from ..drag.mapping import dense_mapping
from ..drag.region_drag import DragOptions
from ..masks import grown_box
from ..shapesworld.data import render, scene_for
from . import metrics
from .cli import HELD_OUT_SEED
from .detector import detect

OFFSETS = [(0.45, 0.0), (-0.45, 0.0), (0.0, 0.45), (0.0, -0.45), (0.4, 0.4), (-0.4, -0.4), (0.4, -0.4),
           (-0.4, 0.4), (0.3, 0.0), (-0.3, 0.0), (0.0, 0.3), (0.0, -0.3)]
PAD = 0.03  # the handle region reaches this far beyond the object's box
COLUMNS = {"ours": {}, "no mutual self-attention": {"mutual_self_attention": False},
           "copy-paste every step (reference)": {"copy_paste_every_step": True},
           "handle noise 0.6 (interface)": {"handle_noise": 0.6}}
EVAL_OPTIONS = DragOptions(handle_noise=1.0)  # RegionDrag's evaluation setting (and our default)


def _overlaps(a, b) -> bool:
    return not (a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1])


def _padded(box):
    return grown_box(*box, PAD)


def _region(box, kind: str) -> dict:
    x, y, w, h = box
    if kind == "polygon":
        return {"type": "polygon", "points": [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]}
    # one horizontal stroke whose round brush covers the box: radius half the height (fraction of width)
    radius = h / 2
    cy = y + h / 2
    return {"type": "mask", "strokes": [{"points": [[x + radius, cy], [max(x + radius, x + w - radius), cy]],
                                         "radius": radius}]}


def cases(n: int, seed: int = HELD_OUT_SEED) -> list[dict]:
    """``n`` drag cases, alternating polygon and brush regions."""
    out, index = [], 2000
    while len(out) < n:
        scene = scene_for(seed, index)
        index += 1
        obj = scene.objects[0]
        handle = _padded(obj.box)
        others = [_padded(o.box) for o in scene.objects[1:]]
        for dx, dy in OFFSETS:
            target = (handle[0] + dx, handle[1] + dy, handle[2], handle[3])
            if target[0] < 0 or target[1] < 0 or target[0] + target[2] > 1 or target[1] + target[3] > 1:
                continue
            if _overlaps(target, handle) or any(_overlaps(target, o) for o in others):
                continue
            kind = "polygon" if len(out) % 2 == 0 else "mask"
            out.append({"scene": scene, "object": obj, "offset": (dx, dy), "kind": kind, "handle": handle,
                        "target": target, "document": {"pairs": [{"handle": _region(handle, kind),
                                                                   "target": _region(target, kind)}]}})
            break
    return out


def expected_centroid(case) -> tuple[float, float]:
    """Where the dragged shape's centroid belongs: its centroid in the source image (a triangle's lies
    below its box centre), moved by the offset."""
    obj, (dx, dy) = case["object"], case["offset"]
    bx, by = obj.box[0] + obj.box[2] / 2, obj.box[1] + obj.box[3] / 2
    found = [d for d in detect(render(case["scene"])) if d.colour == obj.colour and d.shape == obj.shape]
    if found:
        bx, by = min((d.centroid for d in found), key=lambda c: math.hypot(c[0] - bx, c[1] - by))
    return bx + dx, by + dy


def success(image, case) -> bool:
    obj = case["object"]
    cx, cy = expected_centroid(case)
    found = [d for d in detect(image) if d.colour == obj.colour and d.shape == obj.shape]
    arrived = any(math.hypot(d.centroid[0] - cx, d.centroid[1] - cy) <= 0.05 for d in found)
    left = any(_inside(d.centroid, case["handle"]) and not _inside(d.centroid, case["target"]) for d in found)
    return arrived and not left


def _inside(point, box) -> bool:
    return box[0] <= point[0] <= box[0] + box[2] and box[1] <= point[1] <= box[1] + box[3]


def evaluate(pipe, n: int = 16, seed: int = 0, columns=None, log=print) -> dict:
    from ..documents import parse_drag_document
    from ..drag.diffusers_drag import drag

    columns = columns or COLUMNS
    rows = {name: {"success": [], "ssim_outside": [], "seconds": []} for name in columns}
    for i, case in enumerate(cases(n)):
        source = render(case["scene"])
        document = parse_drag_document(case["document"])
        m = dense_mapping(document, source.height, source.width)
        outside = ~(m.handles | m.targets)
        for name, fields in columns.items():
            t0 = time.perf_counter()
            out = drag(pipe, source, document, prompt=case["scene"].caption, seed=seed,
                       options=replace(EVAL_OPTIONS, **fields), progress=False).image
            rows[name]["seconds"].append(time.perf_counter() - t0)
            rows[name]["success"].append(success(out, case))
            rows[name]["ssim_outside"].append(metrics.ssim(source, out, outside))
        log(f"drag case {i + 1}/{n} ({case['kind']}) done")
    return {name: {k: float(np.mean(v)) for k, v in r.items()} | {"cases": len(r["success"])}
            for name, r in rows.items()}


def format_table(summary: dict) -> str:
    lines = ["column                              cases  success  SSIM_outside  seconds"]
    for name, r in summary.items():
        lines.append(f"{name:34s}  {r['cases']:5d}  {r['success']:7.3f}  {r['ssim_outside']:12.3f}  {r['seconds']:7.2f}")
    return "\n".join(lines)
