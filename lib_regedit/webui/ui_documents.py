"""The accordion's values as documents, and documents back as the accordion's values (infotext paste).

Pure functions of the UI values and the document text: no WebUI import, so they are tested here.
``scripts/regedit.py`` wires them to the Gradio controls.
"""

from __future__ import annotations

import dataclasses
import json

from ..documents import parse_drag_document, parse_region_document
from ..documents.drag import SETTING_DEFAULTS as DRAG_DEFAULTS, VERSION as DRAG_VERSION
from ..documents.fields import load_json_object
from ..documents.lime import LimeDocument, parse_lime_document
from ..errors import RegEditError
from ..infotext import DRAG_INFOTEXT_KEY, INFOTEXT_KEY, LIME_INFOTEXT_KEY
from ..documents.lime import LimeOptions

TABLE_HEADERS = ["prompt", "x", "y", "w", "h"]
# The region settings' controls, in the order ``with_settings`` takes them
REGION_SETTINGS = ("mode", "whole_start", "layout", "init_noise", "kssa", "keywords", "scale", "reweight", "levels",
                   "guided", "eta", "keep_rest")
DRAG_SETTINGS = ("start_t", "end_t", "handle_noise")
LIME_SETTINGS = ("lime_on", "clusters", "points", "feature_step", "until", "grow", "keep_outside", "snap")
# Measured on the bundled model (docs/placement.md); shown when the user unticks layout init.
LAYOUT_OFF_COST = ("Layout init is off: the first image of a new layout is faster, but objects often land outside "
                   "their boxes (on a test model not trained for regions, 0.38 of boxes held their object instead of "
                   "0.84; docs/placement.md).")


def doc_to_table(doc_text: str):
    """The regions as rows (prompt, x, y, w, h); a shape's row shows its bounding box."""
    try:
        obj = load_json_object(doc_text, "regedit") or {}
    except RegEditError:
        obj = {}
    regions = [r for r in obj.get("regions", []) if isinstance(r, dict)]
    boxes = _bounding_boxes(obj, regions)
    rows = [[r.get("prompt", ""), *(boxes[i] if i in boxes else (r.get(k, 0) for k in "xywh"))]
            for i, r in enumerate(regions)]
    return rows or [["", 0.0, 0.0, 0.5, 0.5]]


def _bounding_boxes(obj: dict, regions: list[dict]) -> dict[int, tuple]:
    """Per region with a shape or a colour, its bounding box (x, y, w, h) rounded as the table shows it."""
    if not any(r.get("shape") is not None or r.get("colour") is not None for r in regions):
        return {}
    try:
        document = parse_region_document(dict(obj, prompt=obj.get("prompt") or "-"))
    except RegEditError:
        return {}
    return {i: tuple(round(v, 4) for v in r.box) for i, r in enumerate(document.regions) if r.shape is not None}


def table_to_doc(table, doc_text: str, *settings):
    try:
        obj = load_json_object(doc_text, "regedit") or {}
    except RegEditError:
        obj = {}
    old = [r for r in obj.get("regions", []) if isinstance(r, dict)]
    rows = table.values.tolist() if hasattr(table, "values") else (table or [])
    regions = []
    shown = _bounding_boxes(obj, old)
    for i, row in enumerate(r for r in rows if r and str(r[0]).strip()):
        region = dict(old[i]) if i < len(old) else {}
        box = tuple(float(v) for v in row[1:5])
        if i in shown and all(abs(a - b) < 1e-3 for a, b in zip(box, shown[i])):
            region.update(prompt=str(row[0]))  # a shape whose bounding box was left as shown stays the shape
        else:
            region.pop("shape", None), region.pop("colour", None)  # a box typed over a shape replaces it
            region.update(prompt=str(row[0]), **dict(zip("xywh", box)))
        regions.append(region)
    obj["regions"] = regions
    return with_settings(obj, *settings)


def with_settings(obj: dict, mode, whole_start, layout, init_noise, kssa, keywords, scale, reweight, levels,
                   guided=False, eta=30.0, keep_rest=True) -> str:
    obj = dict(obj)
    obj.setdefault("prompt", "")
    obj.setdefault("regions", [])
    obj["mode"] = mode
    obj["whole_prompt_start"] = float(whole_start)
    obj["init"] = "auto" if layout else "noise"
    obj["init_noise"] = float(init_noise)
    obj["kssa"] = {"enabled": bool(kssa), "keywords": int(keywords), "scale": float(scale), "reweight": reweight,
                   "levels": list(levels) or ["down"]}
    guidance = obj.get("guidance")  # the document's other guidance fields (until, iterations, ...) stay
    guidance = dict(guidance) if isinstance(guidance, dict) else {}
    guidance.update(enabled=bool(guided), scale=float(eta))
    obj["guidance"] = guidance
    if has_edit_roles(obj) and isinstance(obj.get("edit", {}), dict):  # "keep the rest" speaks for edits only
        edit = dict(obj.get("edit") or {})
        edit.pop("keep_outside", None)
        if not keep_rest or not _keeps_by_default(obj):
            edit["keep_outside"] = bool(keep_rest)
        obj["edit"] = edit
    return json.dumps(obj)


def _keeps_by_default(obj: dict) -> bool:
    """Whether the document's version keeps an edit pair's rest unless told (``RegionDocument.keeps_outside``)."""
    from ..documents.region import PAIRS_KEEP_FROM, VERSION

    version = obj.get("version", VERSION)
    return not isinstance(version, (int, float)) or version >= PAIRS_KEEP_FROM


def settings_to_doc(doc_text: str, *settings):
    try:
        obj = load_json_object(doc_text, "regedit")
    except RegEditError:
        return doc_text
    return doc_text if obj is None else with_settings(obj, *settings)


def pasted_document(params, key: str = INFOTEXT_KEY):
    """The infotext's region, drag or LIME document for the hidden field. One written before document
    versions existed is tagged ``"version": 1``, so it keeps the defaults it was made with."""
    text = params.get(key)
    try:
        obj = load_json_object(text, key)
    except RegEditError:
        return text  # shown as it is; generating names the problem
    if obj is None or "version" in obj:
        return text
    return json.dumps(dict(obj, version=1))


def outside_note(layout: bool, img2img: bool = False) -> str:
    """The accordion's line on what covers the area outside the boxes and what layout init does (txt2img:
    img2img starts from the picture, so its line is only the first sentence)."""
    outside = ("Outside the boxes: the main prompt without the region phrases (add a background region to say "
               "more). ")
    if img2img:
        return outside.strip()
    if layout:
        return outside + ("Layout init places each object in its box: it starts from a faint disc in each box, "
                          "keeps most of the seed's noise elsewhere, so every seed still draws its own picture "
                          "(txt2img; the disc is made once per layout, then reused for every seed and batch).")
    return outside + LAYOUT_OFF_COST



def drag_settings_to_doc(drag_text: str, start_t, end_t, handle_noise):
    """The drag sliders written into the drag document (the panel keeps keys it does not draw)."""
    try:
        obj = load_json_object(drag_text, "drag") or {"version": DRAG_VERSION, "pairs": []}
    except RegEditError:
        return drag_text
    values = {"start_t": float(start_t), "end_t": float(end_t), "handle_noise": float(handle_noise)}
    obj = {k: v for k, v in obj.items() if k not in values}
    obj.update({k: v for k, v in values.items() if v != DRAG_DEFAULTS[k]})
    return json.dumps(obj)


LIME_DEFAULTS = LimeOptions()


def lime_settings_to_doc(lime_text: str, enabled, clusters, points, feature_step, until, grow, keep_outside,
                          snap=LIME_DEFAULTS.snap):
    """The LIME controls written into the LIME document (its drawn RoI boxes kept)."""
    try:
        old = parse_lime_document(lime_text)
    except RegEditError:
        old = None
    if not enabled:
        return ""
    # the settings without a control (pick, maps, segment_cells, colour_merge) and the version stay the document's
    options = dataclasses.replace(old.options if old is not None else LIME_DEFAULTS, clusters=int(clusters),
                                  points=int(points), feature_step=float(feature_step), regularise_until=float(until),
                                  grow=int(grow), keep_outside=bool(keep_outside), snap=bool(snap))
    if old is None:
        return LimeDocument(options).to_json()
    return LimeDocument(options, old.roi, old.version).to_json()


# How a pasted infotext entry is read: region, drag and LIME documents written before versions existed keep
# version 1.
PASTED = {INFOTEXT_KEY: lambda value: parse_region_document(value, untagged_version=1),
           DRAG_INFOTEXT_KEY: lambda value: parse_drag_document(value, untagged_version=1),
           LIME_INFOTEXT_KEY: lambda value: parse_lime_document(value, untagged_version=1)}


def has_edit_roles(obj: dict) -> bool:
    """Whether a document object has a box with an edit role (a pair)."""
    regions = obj.get("regions")
    return isinstance(regions, list) and any(isinstance(r, dict) and r.get("edit") not in (None, "", "inherent")
                                             for r in regions)


def from_infotext(read, key: str = INFOTEXT_KEY):
    """An infotext paste function: reads one setting out of the pasted region (or drag) document."""
    import gradio as gr  # the WebUI's

    def paste(params):
        try:
            doc = PASTED[key](params.get(key))
        except RegEditError:
            return gr.update()
        return gr.update() if doc is None else read(doc)
    return paste


def drawn_boxes(region_doc) -> tuple:
    """The boxes and shapes of the region canvas (their prompts are not needed for LIME), or none."""
    try:
        obj = load_json_object(region_doc, "regedit") or {}
    except RegEditError:
        return ()
    from ..documents.lime import parse_area
    from ..documents.shapes import PointBudget

    boxes = []
    for r in obj.get("regions", []) if isinstance(obj.get("regions"), list) else []:
        if isinstance(r, dict) and r.get("role", "object") == "object":
            try:
                given = {"shape": r["shape"]} if r.get("shape") is not None else {k: r.get(k) for k in "xywh"}
                boxes.append(parse_area(given, "regions", PointBudget()))
            except RegEditError:
                continue
    return tuple(boxes)


# img2img's task choice, as the page shows it. From the page, the chosen task runs and only it; the API
# sends documents without a task and runs what they hold (a drag with pairs first, then LIME, then the
# region document: a picture's edit when a box has an edit role).
TASKS = ("Regions", "Drag", "LIME", "Edit by regions")
# The accordion's parts each task shows (scripts/regedit.py makes one group of controls per part).
TASK_PARTS = ("regions", "drag", "lime", "edit", "region_settings", "drag_settings", "lime_settings", "preview")
_SHOWN = {"Regions": {"regions", "region_settings", "preview"}, "Drag": {"drag", "drag_settings"},
          "LIME": {"lime", "lime_settings", "preview"}, "Edit by regions": {"edit", "region_settings"}}


def shown_parts(task: str) -> tuple:
    """Whether each of ``TASK_PARTS`` is shown for ``task``."""
    shown = _SHOWN.get(task, _SHOWN["Regions"])
    return tuple(part in shown for part in TASK_PARTS)


def task_documents(task: str, doc, drag_doc, lime_doc):
    """The documents an img2img generation from the page runs for its task: the chosen task's, the
    others set aside (empty). *Regions* runs the boxes as region prompts, their edit roles left out;
    *Drag* the drag pairs; *LIME* its document, with the boxes as its region (``image_tasks.start_lime``);
    *Edit by regions* the boxes with their edit roles. Raises RegEditError, naming the fix, when the task
    has nothing to run. Returns ``(doc, drag_doc, lime_doc)``."""
    if task == "Drag":
        obj = load_json_object(drag_doc, "drag")
        if obj is None or not obj.get("pairs"):
            raise RegEditError("drag", "the Drag task is chosen and no pair is drawn",
                               "draw a handle and its target on the Drag canvas, or untick Enable")
        return "", drag_doc, ""
    if task == "LIME":
        return doc, "", lime_doc
    if task == "Edit by regions":
        obj = load_json_object(doc, "regedit")
        if obj is None or not has_edit_roles(obj):
            raise RegEditError("regions", "the Edit by regions task is chosen and no box has an edit role",
                               "pick add, remove or change in a box's Edit field, or choose the Regions task")
        return doc, "", ""
    return without_edit_roles(doc), "", ""


def without_edit_roles(doc_text):
    """The region document with its boxes' edit roles (and target prompts) left out: region prompts."""
    try:
        obj = load_json_object(doc_text, "regedit")
    except RegEditError:
        return doc_text  # generating names the problem
    if obj is None or not has_edit_roles(obj):
        return doc_text
    regions = [{k: v for k, v in r.items() if k not in ("edit", "target_prompt")} if isinstance(r, dict) else r
               for r in obj["regions"]]
    return json.dumps(dict(obj, regions=regions))


def task_from_infotext(params):
    """The img2img task a pasted infotext was made with (None: leave the choice as it is)."""
    if DRAG_INFOTEXT_KEY in params:
        return "Drag"
    if LIME_INFOTEXT_KEY in params:
        return "LIME"
    if INFOTEXT_KEY not in params:
        return None
    try:
        obj = load_json_object(params[INFOTEXT_KEY], INFOTEXT_KEY) or {}
    except RegEditError:
        return "Regions"
    return "Edit by regions" if has_edit_roles(obj) else "Regions"
