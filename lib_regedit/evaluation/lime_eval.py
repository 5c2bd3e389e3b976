"""``python -m lib_regedit eval --lime``: LIME on ShapesWorld edit pairs (2-3 objects, one instruction
about one of them), judged with the detector.

For each case: is the edit right (the target object recoloured, reshaped or gone, in its box), and
is the rest unchanged: the share of pixels outside the target object's box that stay within
``UNCHANGED`` of the source (max over channels, of 255), the SSIM there, and whether every other
object is still detected in its place. ``exact``: the edit right and every other object kept, the
instruction carried out and nothing else (an instruct model that recolours every object is right
but not exact). Columns:

- ``instruct``: the ShapesWorld instruct model alone;
- ``LIME``: with LIME (RoI found from the features), its defaults: the clusters picked at the peak
  inside the most attended object (``pick: "object"``), the found RoI snapped to the object's
  superpixels and boxed, the source kept outside it;
- ``LIME, unsnapped``: the RoI as the feature clusters give it (``snap`` off), the source kept outside;
- ``LIME, paper``: the paper's method: its RoI (the peak anywhere) and the regularisation alone, over
  the reference's window (``pick: "peak"``, ``maps: "feature"``, ``snap`` and ``keep_outside`` off,
  ``regularise_until`` 0.9);
- ``LIME, true box``: the RoI replaced by the object's ground-truth box (the ceiling);
- ``ordinary`` and ``ordinary + LIME``: the text-to-image ShapesWorld model in img2img with the target
  scene's caption as the edit prompt (the localised prompt edit for checkpoints without an image input);
- ``ordinary, drawn box``: the same model with the object's true box as RoI and what the box should
  show as the edit prompt ("a blue circle"; a removal: the blank background's caption), as a user of
  an ordinary checkpoint draws and writes it.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..documents.lime import REFERENCE_REGULARISE_UNTIL
from ..shapesworld.data import BLANK_CAPTION, render
from ..shapesworld.instruct_data import edit_pair
from .detector import detect, to_array
from .metrics import box_mask, match_in_box, ssim

HELD_OUT_SEED = 7  # the instruct model trained on data seed 0
UNCHANGED = 32  # of 255, max over channels
COLUMNS = ("instruct", "LIME", "LIME, unsnapped", "LIME, paper", "LIME, true box", "ordinary", "ordinary + LIME",
           "ordinary, drawn box")


def cases(n: int, seed: int = HELD_OUT_SEED) -> list:
    """The first ``n`` held-out edit pairs whose scene has 2 or 3 objects and whose instruction names
    one of them: a scene with two green circles has no single object "the green circle" (the
    generator picks one of them, which no reading of the instruction can tell)."""
    out, index = [], 0
    while len(out) < n:
        pair = edit_pair(seed, index)
        if 2 <= len(pair.source.objects) <= 3 and not ambiguous(pair):
            out.append(pair)
        index += 1
    return out


def ambiguous(pair) -> bool:
    """Whether another object of the source has the edited object's colour and shape."""
    target = pair.source.objects[pair.index]
    return sum(o.colour == target.colour and o.shape == target.shape for o in pair.source.objects) > 1


def box_prompt(pair) -> str:
    """What the edited object's box should show after the edit: the new object's phrase, or the blank
    background's caption for a removal."""
    return BLANK_CAPTION if pair.edit == "remove" else pair.target.objects[pair.index].phrase


def edit_right(detections, pair) -> bool:
    old = pair.source.objects[pair.index]
    if pair.edit == "remove":
        return match_in_box(detections, old.box, old.colour, old.shape) is None
    new = pair.target.objects[pair.index]
    return match_in_box(detections, new.box, new.colour, new.shape) is not None


def others_kept(detections, pair) -> bool:
    return all(match_in_box(detections, o.box, o.colour, o.shape) is not None
               for i, o in enumerate(pair.source.objects) if i != pair.index)


def outside_scores(source, edited, box) -> tuple[float, float]:
    """(share of pixels outside ``box`` left unchanged, SSIM outside ``box``)."""
    a, b = to_array(source).astype(np.int16), to_array(edited).astype(np.int16)
    outside = ~box_mask(box, *a.shape[:2])
    same = np.abs(a - b).max(-1) <= UNCHANGED
    return float(same[outside].mean()), ssim(source, edited, ~outside, inside=False)


def evaluate(instruct_pipe, ordinary_pipe=None, *, n: int = 60, steps: int = 20, cfg: float = 7.5,
             image_cfg: float = 1.5, strength: float = 0.75, seed: int = 0, options=None, columns=None,
             skip: int = 0, log=print) -> dict:
    """The summary over cases ``skip + 1`` to ``skip + n`` (the later ones took no part in choosing
    LIME's defaults: see docs/lime.md)."""
    from ..lime import lime_edit

    rows = {c: [] for c in COLUMNS if (ordinary_pipe is not None or not c.startswith("ordinary"))
            and (columns is None or c in columns)}
    for i, pair in enumerate(cases(skip + n)[skip:]):
        source = render(pair.source)
        box = pair.source.objects[pair.index].box
        h, w = source.size[1], source.size[0]
        true_box = torch.from_numpy(box_mask(box, h, w))
        runs = {"instruct": (instruct_pipe, pair.instruction, dict(lime=False)),
                "LIME": (instruct_pipe, pair.instruction, dict(lime=True)),
                "LIME, unsnapped": (instruct_pipe, pair.instruction, dict(lime={"snap": False})),
                "LIME, paper": (instruct_pipe, pair.instruction,
                                dict(lime={"keep_outside": False, "snap": False, "pick": "peak", "maps": "feature",
                                          "regularise_until": REFERENCE_REGULARISE_UNTIL})),
                "LIME, true box": (instruct_pipe, pair.instruction, dict(lime=True, roi=true_box))}
        if ordinary_pipe is not None:
            runs["ordinary"] = (ordinary_pipe, pair.target.caption, dict(lime=False, strength=strength))
            runs["ordinary + LIME"] = (ordinary_pipe, pair.target.caption, dict(lime=True, strength=strength))
            runs["ordinary, drawn box"] = (ordinary_pipe, box_prompt(pair),
                                           dict(lime=True, roi=true_box, strength=strength))
        for column, (pipe, text, kw) in runs.items():
            if columns is not None and column not in columns:
                continue
            started = time.perf_counter()
            kw = {"options": options, **kw}
            result = lime_edit(pipe, source, text, seed=seed, steps=steps, guidance_scale=cfg,
                               image_guidance_scale=image_cfg, progress=False, **kw)
            seconds = time.perf_counter() - started
            dets = detect(result.image)
            unchanged, ssim_out = outside_scores(source, result.image, box)
            right, kept = edit_right(dets, pair), others_kept(dets, pair)
            rows[column].append({"edit": pair.edit, "right": right, "kept": kept, "exact": right and kept,
                                 "unchanged": unchanged, "ssim_out": ssim_out, "seconds": seconds,
                                 "uncertain": None if result.found is None else result.found.uncertain})
        log(f"case {skip + i + 1}/{skip + n} ({pair.edit}: {pair.instruction}): " + ", ".join(
            f"{c} {'right' if r[-1]['right'] else 'wrong'}/{r[-1]['unchanged']:.3f}" for c, r in rows.items()))
    return summarise(rows)


def summarise(rows: dict) -> dict:
    summary = {}
    for column, results in rows.items():
        entry = {"n": len(results)}
        for name in ("right", "kept", "exact", "unchanged", "ssim_out", "seconds"):
            entry[name] = float(np.mean([r[name] for r in results]))
        for kind in ("recolour", "reshape", "remove"):
            sub = [r for r in results if r["edit"] == kind]
            if sub:
                entry[f"right_{kind}"] = f"{sum(r['right'] for r in sub)}/{len(sub)}"
        found = [r for r in results if r.get("uncertain") is not None]
        if found:  # the uncertain-region note: how often it came, and how many wrong edits it warned of
            wrong = [r for r in found if not r["right"]]
            entry["uncertain"] = (f"{sum(r['uncertain'] for r in found)} "
                                  f"({sum(r['uncertain'] for r in wrong)}/{len(wrong)} wrong)")
        summary[column] = entry
    base = summary.get("instruct", {}).get("seconds")
    for entry in summary.values():
        entry["time_vs_instruct"] = entry["seconds"] / base if base else float("nan")
    return summary


def format_table(summary: dict) -> str:
    head = (f"{'':19} {'edit right':>10} {'others kept':>11} {'exact':>6} {'unchanged out':>13} {'SSIM out':>8} "
            f"{'time':>6}  recolour reshape remove  uncertain (of the wrong)")
    lines = [head]
    for column, e in summary.items():
        lines.append(f"{column:19} {e['right']:10.3f} {e['kept']:11.3f} {e['exact']:6.3f} {e['unchanged']:13.3f} "
                     f"{e['ssim_out']:8.3f} "
                     f"{e['time_vs_instruct']:5.2f}x  {e.get('right_recolour', '-'):>8} {e.get('right_reshape', '-'):>7} "
                     f"{e.get('right_remove', '-'):>6}  {e.get('uncertain', '-')}")
    return "\n".join(lines)
