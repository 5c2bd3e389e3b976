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
- **seam** over the vacated area, the handle (with the dragged object's own pixels, which a brush
  handle may not cover) minus the target: the largest channel difference between its background's
  mean colour and the background's around it, over 255 (``traces.seam``, object pixels and their
  anti-aliased edge left out); a patch the eye finds scores about 0.02 and up;
- **leftover**: the share of the vacated area that still has the dragged object's colour
  (``traces.leftover``), and **leftovers**: the share of cases with any such pixel;
- **seconds** per drag.

Columns: ours (drag document version 2: the handle filled from its surroundings, the composite
blended seamlessly, brush handles grown to the object); RegionDrag's original (version 1: handle
noise, feathered paste, the brush as painted); ours without each of the two version-2 settings; ours
without mutual self-attention; ours with the reference implementation's copy-paste at every step (its
``end_t`` compares a timestep with a step index); ours with the handle noise of RegionDrag's interface
(0.6) instead of its evaluation's (1.0).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np

from ..drag.mapping import dense_mapping
from ..drag.region_drag import DragOptions
from ..masks import box_mask, grown_box
from ..shapesworld.data import COLOURS, render, scene_for
from . import metrics
from .cli import HELD_OUT_SEED
from .detector import detect

OFFSETS = [(0.45, 0.0), (-0.45, 0.0), (0.0, 0.45), (0.0, -0.45), (0.4, 0.4), (-0.4, -0.4), (0.4, -0.4),
           (-0.4, 0.4), (0.3, 0.0), (-0.3, 0.0), (0.0, 0.3), (0.0, -0.3)]
PAD = 0.03  # the handle region reaches this far beyond the object's box
ORIGINAL = {"match_surroundings": False, "grow_handles": False}  # drag document version 1
COLUMNS = {"ours": {}, "original (version 1)": ORIGINAL,
           "no match_surroundings": {"match_surroundings": False}, "no grow_handles": {"grow_handles": False},
           "no mutual self-attention": {"mutual_self_attention": False},
           "copy-paste every step (reference)": {"copy_paste_every_step": True},
           "handle noise 0.6 (interface)": {"handle_noise": 0.6}}
FIGURES = ("success", "ssim_outside", "seam", "leftover", "leftovers", "seconds")
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


def vacated(case, source) -> tuple[np.ndarray, np.ndarray]:
    """(the vacated area, everything the drag may change), bool at ``source``'s size: the handle as
    drawn with the dragged object's pixels (and their anti-aliased edge) added, minus the target; the
    handle, the target and the vacated area together. The same for every column."""
    from ..documents import parse_drag_document
    from .detector import colour_labels
    from .traces import grow

    m = dense_mapping(parse_drag_document(case["document"]), source.height, source.width)
    obj = case["object"]
    own = box_mask(*_padded(obj.box), source.height, source.width).numpy() > 0.5
    pixels = grow((colour_labels(source) == list(COLOURS).index(obj.colour)) & own, 1) & own
    area = (m.handles | pixels) & ~m.targets
    return area, area | m.handles | m.targets


def evaluate(pipe, n: int = 16, seed: int = 0, columns=None, image_dir=None, log=print) -> dict:
    """``image_dir``: where to save each case's source and every column's result side by side."""
    from ..documents import parse_drag_document
    from ..drag.diffusers_drag import drag
    from .traces import leftover, seam

    columns = columns or COLUMNS
    rows = {name: {k: [] for k in FIGURES} for name in columns}
    for i, case in enumerate(cases(n)):
        source = render(case["scene"])
        document = parse_drag_document(case["document"])
        m = dense_mapping(document, source.height, source.width)
        outside = ~(m.handles | m.targets)
        fill, changed = vacated(case, source)
        results = []
        for name, fields in columns.items():
            t0 = time.perf_counter()
            out = drag(pipe, source, document, prompt=case["scene"].caption, seed=seed,
                       options=replace(EVAL_OPTIONS, **fields), progress=False).image
            row = rows[name]
            row["seconds"].append(time.perf_counter() - t0)
            row["success"].append(success(out, case))
            row["ssim_outside"].append(metrics.ssim(source, out, outside))
            row["seam"].append(seam(out, fill, changed, edge=1))
            row["leftover"].append(leftover(out, fill, case["object"].colour))
            row["leftovers"].append(row["leftover"][-1] > 0)
            results.append(out)
        if image_dir is not None:
            _save_strip(image_dir, f"drag_{i:02d}_{case['kind']}.png", [source] + results)
        log(f"drag case {i + 1}/{n} ({case['kind']}) done")
    return {name: {k: float(np.nanmean(v)) for k, v in r.items()}
            | {"cases": len(r["success"]), "seam_max": float(np.nanmax(r["seam"]))} for name, r in rows.items()}


def _save_strip(folder, name: str, images) -> None:
    from pathlib import Path

    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    w, h = images[0].size
    strip = Image.new("RGB", (w * len(images), h))
    for k, image in enumerate(images):
        strip.paste(image, (w * k, 0))
    strip.save(folder / name)


def format_table(summary: dict) -> str:
    """Seam in 255ths, mean and worst case (the goal: at most 6), leftover as a share of the vacated area."""
    lines = ["column                              cases  success  SSIM_outside  seam/255 (max)  leftover  leftovers  "
             "seconds"]
    for name, r in summary.items():
        lines.append(f"{name:34s}  {r['cases']:5d}  {r['success']:7.3f}  {r['ssim_outside']:12.3f}  "
                     f"{r['seam'] * 255:8.1f} ({r['seam_max'] * 255:4.1f})  {r['leftover']:8.4f}  {r['leftovers']:9.3f}  "
                     f"{r['seconds']:7.2f}")
    return "\n".join(lines)
