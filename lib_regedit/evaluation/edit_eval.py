"""``python -m lib_regedit eval --edit``: region editing (MRGD) on ShapesWorld edit pairs.

Each layout (the eval layouts, and with ``--held-out`` ones from the data generator) gives four edit
cases: change one object's colour, change another's kind, remove one, add one in a free box. Each
case is a region document with edit roles, run with each seed by every method:

- ``regenerate``: plain region prompts, the source document and the target document generated
  apart with the same seed (MultiDiffusion fusion: what editing means without this feature);
- ``prompt-to-prompt``: the whole prompts only, prompt-to-prompt's map injection (no regions);
- ``MRGD (keep off)``: the pair with prompt-to-prompt per region (MRGD Eq. 5) alone, no guidance
  (``edit.keep_outside`` false: what version 3 documents do);
- ``ours``: the defaults, that pair keeping the source outside the edited boxes
  (``lib_regedit/editing/keep_outside.py``);
- ``ours + guidance``: with multi-region guidance (MRGD Eq. 2-4), when a segmenter is given.

Figures (MRGD §4.1): SSIM-i, SSIM of I^T against I^S over the inherent regions' boxes; SSIM-e, over
the edited box's neighbourhood (the box grown by ``RING`` of the image, minus the box); ``edit
right``, the detector finds the target's object in the edited box (add, change) or no object there
(remove); ``kept``, every inherent object is still found in its box in I^T when it was in I^S;
``seam`` and ``leftover`` (``traces.py``) over the edited box in I^T: how far its background's mean
colour is from the background beyond the area the edit may change (the box grown by the keep margin
and feather), and for a removal the share of the box still in the removed object's colour.
"""

from __future__ import annotations

import time

import numpy as np

from ..masks import grown_box
from ..shapesworld.data import COLOURS as COLOUR_RGB
from ..shapesworld.data import SHAPES, caption_for
from .cli import LAYOUTS, held_out_layouts
from .detector import detect, to_array
from .metrics import box_mask, match_in_box, ssim
from .traces import leftover, seam

KINDS = ("change colour", "change kind", "remove", "add")
METHODS = ("regenerate", "prompt-to-prompt", "MRGD (keep off)", "ours", "ours + guidance")
RING = 0.1
COLOURS = tuple(COLOUR_RGB)
FREE_BOXES = [(0.05, 0.05, 0.32, 0.32), (0.63, 0.05, 0.32, 0.32), (0.05, 0.63, 0.32, 0.32),
              (0.63, 0.63, 0.32, 0.32), (0.34, 0.34, 0.32, 0.32), (0.05, 0.34, 0.32, 0.32),
              (0.63, 0.34, 0.32, 0.32), (0.34, 0.05, 0.32, 0.32), (0.34, 0.63, 0.32, 0.32)]


def _overlap(a, b) -> bool:
    return not (a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1])


def _region(colour, shape, box, **extra) -> dict:
    return {"x": box[0], "y": box[1], "w": box[2], "h": box[3], "prompt": f"a {colour} {shape}", **extra}


def edit_cases(layout, index: int) -> list[dict]:
    """The four edit cases of one layout: dicts with the document, the kind, the edited box and what
    the target should hold there (colour, shape; None for a removal)."""
    out = []
    n = len(layout)
    used = {c for c, _, _ in layout}
    # change colour: object index % n takes a colour the layout does not use
    i = index % n
    c, s, box = layout[i]
    new_colour = next(x for x in COLOURS[COLOURS.index(c) + 1:] + COLOURS[:COLOURS.index(c)] if x not in used and x != c)
    regions = [_region(*o) for o in layout]
    regions[i] = _region(c, s, box, edit="change", target_prompt=f"a {new_colour} {s}")
    out.append({"kind": "change colour", "regions": regions, "box": box, "want": (new_colour, s), "edited": i})
    # change kind: the next object takes another shape
    j = (index + 1) % n
    c, s, box = layout[j]
    new_shape = SHAPES[(SHAPES.index(s) + 1) % len(SHAPES)]
    regions = [_region(*o) for o in layout]
    regions[j] = _region(c, s, box, edit="change", target_prompt=f"a {c} {new_shape}")
    out.append({"kind": "change kind", "regions": regions, "box": box, "want": (c, new_shape), "edited": j})
    # remove: the last object (a 2-object layout keeps one)
    k = n - 1
    regions = [_region(*o) for o in layout]
    regions[k] = dict(regions[k], edit="remove")
    out.append({"kind": "remove", "regions": regions, "box": layout[k][2], "want": None, "edited": k,
                "removed_colour": layout[k][0]})
    # add: an object in the first free box
    free = next((b for b in FREE_BOXES if not any(_overlap(b, o[2]) for o in layout)), None)
    if free is not None:
        colour = next(x for x in COLOURS if x not in used) if len(used) < len(COLOURS) else COLOURS[index % 4]
        shape = SHAPES[index % len(SHAPES)]
        regions = [_region(*o) for o in layout] + [_region(colour, shape, free, edit="add")]
        out.append({"kind": "add", "regions": regions, "box": free, "want": (colour, shape), "edited": None})
    for case in out:
        source_phrases = [r["prompt"] for r in case["regions"] if r.get("edit") != "add"]
        case["document"] = {"prompt": caption_for(source_phrases), "regions": case["regions"]}
        case["inherent"] = [o for m, o in enumerate(layout) if m != case["edited"]]
    return out


def ring_mask(box, h: int, w: int, ring: float = RING) -> np.ndarray:
    return box_mask(grown_box(*box, ring), h, w) & ~box_mask(box, h, w)


def score(source, target, case) -> dict:
    a, b = to_array(source), to_array(target)
    h, w = a.shape[:2]
    inherent = np.zeros((h, w), dtype=bool)
    for _, _, box in case["inherent"]:
        inherent |= box_mask(box, h, w)
    ssim_i = ssim(a, b, inherent) if inherent.any() else float("nan")
    ssim_e = ssim(a, b, ring_mask(case["box"], h, w))
    det_s, det_t = detect(source), detect(target)
    if case["want"] is None:
        inside = box_mask(case["box"], h, w)
        right = not any((d.mask & inside).sum() >= 0.5 * d.mask.sum() for d in det_t)
    else:
        right = match_in_box(det_t, case["box"], *case["want"]) is not None
    kept = all(match_in_box(det_t, box, c, s) is not None for c, s, box in case["inherent"]
               if match_in_box(det_s, box, c, s) is not None)
    from ..editing.keep_outside import KEEP_FEATHER, KEEP_MARGIN

    fill = box_mask(case["box"], h, w)
    changed = box_mask(grown_box(*case["box"], KEEP_MARGIN + KEEP_FEATHER), h, w)
    removed = case["kind"] == "remove"
    return {"ssim_i": ssim_i, "ssim_e": ssim_e, "right": right, "kept": kept, "seam": seam(target, fill, changed),
            "leftover": leftover(target, fill, case["removed_colour"]) if removed else float("nan")}


def run_method(pipe, method: str, document: dict, seed: int, steps: int, cfg: float, segmenter=None):
    from ..api import generate
    from ..editing.diffusers_edit import edit_pair, parse_pair
    from ..editing.pair_documents import split_pair

    if method == "regenerate":
        pair = split_pair(parse_pair(document))
        return (generate(pipe, pair.source, seed=seed, steps=steps, guidance_scale=cfg).image,
                generate(pipe, pair.target, seed=seed, steps=steps, guidance_scale=cfg).image)
    if method == "ours + guidance":
        document = dict(document, edit={"guidance": True})
    if method == "MRGD (keep off)":
        document = dict(document, edit={"keep_outside": False})
    result = edit_pair(pipe, document, seed=seed, steps=steps, guidance_scale=cfg,
                       method="p2p" if method == "prompt-to-prompt" else "regions",
                       segmenter=segmenter if method == "ours + guidance" else None)
    return result.source, result.target


def evaluate(pipe, *, layouts=None, seeds=(0, 1), steps: int = 20, cfg: float = 7.5, segmenter=None,
             methods=None, image_dir=None, log=print) -> dict:
    layouts = layouts or LAYOUTS
    methods = [m for m in (methods or METHODS) if m != "ours + guidance" or segmenter is not None]
    rows = {m: {k: [] for k in KINDS} for m in methods}
    seconds = {m: 0.0 for m in methods}
    for li, layout in enumerate(layouts):
        for case in edit_cases(layout, li):
            for seed in seeds:
                for method in methods:
                    t0 = time.perf_counter()
                    source, target = run_method(pipe, method, case["document"], seed, steps, cfg, segmenter)
                    seconds[method] += time.perf_counter() - t0
                    rows[method][case["kind"]].append(score(source, target, case))
                    if image_dir is not None:
                        from PIL import Image

                        image_dir.mkdir(parents=True, exist_ok=True)
                        pair = Image.new("RGB", (source.width * 2, source.height))
                        pair.paste(source, (0, 0))
                        pair.paste(target, (source.width, 0))
                        name = f"{li:02d}_{case['kind'].replace(' ', '-')}_s{seed}_{method.replace(' ', '')}.png"
                        pair.save(image_dir / name)
        log(f"layout {li + 1}/{len(layouts)} done")
    return summarise(rows, seconds)


def _mean(values) -> float:
    values = [v for v in values if v == v]
    return float(np.mean(values)) if values else float("nan")


def summarise(rows: dict, seconds: dict) -> dict:
    out = {}
    for method, by_kind in rows.items():
        every = [r for kind in by_kind.values() for r in kind]
        entry = {"all": _stats(every), "seconds_per_pair": seconds[method] / max(1, len(every))}
        for kind, rs in by_kind.items():
            if rs:
                entry[kind] = _stats(rs)
        out[method] = entry
    return out


def _stats(rs) -> dict:
    return {"n": len(rs), "ssim_i": _mean([r["ssim_i"] for r in rs]), "ssim_e": _mean([r["ssim_e"] for r in rs]),
            "right": _mean([float(r["right"]) for r in rs]), "kept": _mean([float(r["kept"]) for r in rs]),
            "seam": _mean([r["seam"] for r in rs]), "seam_max": _max([r["seam"] for r in rs]),
            "leftover": _mean([r["leftover"] for r in rs])}


def _max(values) -> float:
    values = [v for v in values if v == v]
    return float(np.max(values)) if values else float("nan")


def format_table(summary: dict) -> str:
    lines = ["method              kind            n   SSIM-i  SSIM-e  edit right  kept   seam (max)       leftover  "
             "s/pair"]
    for method, entry in summary.items():
        for kind in ("all", *KINDS):
            if kind not in entry:
                continue
            s = entry[kind]
            lines.append(f"{method:19s} {kind:14s} {s['n']:3d}   {s['ssim_i']:.3f}   {s['ssim_e']:.3f}   "
                         f"{s['right']:.3f}      {s['kept']:.3f}  {255 * s['seam']:5.1f} ({255 * s['seam_max']:5.1f})"
                         f"/255  {s['leftover']:8.3f}"
                         + (f"  {entry['seconds_per_pair']:.2f}" if kind == "all" else ""))
    return "\n".join(lines)


def layouts_for(held_out: int) -> list:
    return held_out_layouts(held_out) if held_out else LAYOUTS
