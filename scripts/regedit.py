"""RegEdit for the AUTOMATIC1111 WebUI: region prompts drawn as boxes, region edit pairs in txt2img
(boxes with an edit role: add, remove, change), and RegionDrag and LIME in img2img (API key: ``regedit``).

Only glue lives here: UI, argument parsing, hook/unhook, infotext and API. The engine is ``lib_regedit``.
API: ``"alwayson_scripts": {"regedit": {"args": [DOC, enabled, preview, DRAG, LIME]}}`` with DOC the
region document, DRAG the drag document and LIME the LIME document (objects or JSON strings; LIME
may also be ``true``). Through the API a non-empty document enables RegEdit; an empty one ("" or
null) disables it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import json
import os
import sys
import time

import gradio as gr
import torch

from modules import devices, processing, script_callbacks, scripts, shared

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lib_regedit.regions import layout_init  # noqa: E402
from lib_regedit.webui import latent_scale as webui_latent_scale, xyz_axes  # noqa: E402
from lib_regedit.documents import parse_drag_document, parse_region_document  # noqa: E402
from lib_regedit.documents.drag import SETTING_DEFAULTS as DRAG_DEFAULTS  # noqa: E402
from lib_regedit.drag import webui_drag  # noqa: E402
from lib_regedit.drag.composite import composite  # noqa: E402
from lib_regedit.drag.region_drag import options_for  # noqa: E402
from lib_regedit.documents.fields import load_json_object  # noqa: E402
from lib_regedit.documents.region import VERSION, VERSION_DEFAULTS  # noqa: E402
from lib_regedit.errors import RegEditError  # noqa: E402
from lib_regedit.documents.lime import LimeDocument, parse_lime_document  # noqa: E402
from lib_regedit.editing.pair_start import edited_start  # noqa: E402
from lib_regedit.editing.webui_pair import WebUIPairSession, pair_batch  # noqa: E402
from lib_regedit.infotext import DRAG_INFOTEXT_KEY, INFOTEXT_KEY, KEYWORDS_KEY, LIME_INFOTEXT_KEY  # noqa: E402
from lib_regedit.infotext import INVERSION_KEY, PAIR_IMAGE_KEY  # noqa: E402
from lib_regedit.editing import webui_real  # noqa: E402
from lib_regedit.editing.webui_real import INVERSIONS  # noqa: E402
from lib_regedit.lime.diffusers_lime import check_instruction  # noqa: E402
from lib_regedit.documents.lime import LimeOptions  # noqa: E402
from lib_regedit.lime.preview import roi_preview  # noqa: E402
from lib_regedit.lime.roi import uncertainty_note  # noqa: E402
from lib_regedit.preview import draw_layout  # noqa: E402
from lib_regedit.regions.prompting import region_lora_tags  # noqa: E402
from lib_regedit.webui.loras import WebUILoras  # noqa: E402
from lib_regedit.webui.session import WebUISession, checkpoint_eps, crossattn  # noqa: E402

# WebUI Forge: no ldm/sgm; each sampling call's UNet is a clone of Forge's UNet patcher, which
# ``process_before_every_sampling`` patches (``lib_regedit/backends/forge_backend.py``)
FORGE = importlib.util.find_spec("modules_forge") is not None
TABLE_HEADERS = ["prompt", "x", "y", "w", "h"]
# Measured on the bundled model (README, "Defaults"); shown when the user unticks layout init.
LAYOUT_OFF_COST = ("Layout init is off: the first image of a new layout is faster, but objects often land outside "
                   "their boxes (on a test model not trained for regions, 0.38 of boxes held their object instead of "
                   "0.84; docs/placement.md).")


def _doc_to_table(doc_text: str):
    try:
        obj = load_json_object(doc_text, "regedit") or {}
    except RegEditError:
        obj = {}
    rows = [[r.get("prompt", ""), r.get("x", 0), r.get("y", 0), r.get("w", 0), r.get("h", 0)]
            for r in obj.get("regions", []) if isinstance(r, dict)]
    return rows or [["", 0.0, 0.0, 0.5, 0.5]]


def _table_to_doc(table, doc_text: str, *settings):
    try:
        obj = load_json_object(doc_text, "regedit") or {}
    except RegEditError:
        obj = {}
    old = [r for r in obj.get("regions", []) if isinstance(r, dict)]
    rows = table.values.tolist() if hasattr(table, "values") else (table or [])
    regions = []
    for i, row in enumerate(r for r in rows if r and str(r[0]).strip()):
        region = dict(old[i]) if i < len(old) else {}
        region.update(prompt=str(row[0]), x=float(row[1]), y=float(row[2]), w=float(row[3]), h=float(row[4]))
        regions.append(region)
    obj["regions"] = regions
    return _with_settings(obj, *settings)


def _with_settings(obj: dict, mode, whole_start, layout, init_noise, kssa, keywords, scale, reweight, levels,
                   guided=False, eta=30.0) -> str:
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
    return json.dumps(obj)


def _settings_to_doc(doc_text: str, *settings):
    try:
        obj = load_json_object(doc_text, "regedit")
    except RegEditError:
        return doc_text
    return doc_text if obj is None else _with_settings(obj, *settings)


def _pasted_document(params, key: str = INFOTEXT_KEY):
    """The infotext's region (or LIME) document for the hidden field. One written before document
    versions existed is tagged ``"version": 1``, so it keeps the defaults it was made with."""
    text = params.get(key)
    try:
        obj = load_json_object(text, key)
    except RegEditError:
        return text  # shown as it is; generating names the problem
    if obj is None or "version" in obj:
        return text
    return json.dumps(dict(obj, version=1))


def _outside_note(layout: bool) -> str:
    """The accordion's line on what covers the area outside the boxes and what layout init does."""
    outside = ("Outside the boxes: the main prompt without the region phrases (add a background region to say "
               "more). ")
    if layout:
        return outside + ("Layout init places each object in its box: it starts from a faint disc in each box, "
                          "keeps most of the seed's noise elsewhere, so every seed still draws its own picture "
                          "(txt2img; the disc is made once per layout, then reused for every seed and batch).")
    return outside + LAYOUT_OFF_COST


UI_SETTINGS = 11  # mode, whole_start, layout, init_noise, kssa, keywords, scale, reweight, levels, guided, eta
# img2img's controls after those, in the order ui() returns them
DRAG_UI = (UI_SETTINGS, UI_SETTINGS + 3)  # start_t, end_t, handle_noise
LIME_UI = (DRAG_UI[1], DRAG_UI[1] + 8)  # on, clusters, points, feature_step, until, grow, keep_outside, snap
INVERSION_UI = LIME_UI[1]  # the picture edit's inversion
# Settings → RegEdit: the accordion's starting values (read when the page is built; Reload UI after a
# change) and previews (read when a generation starts).
SETTING_DEFAULTS = {"mode": "attention", "whole_start": 0.3, "layout_init": True,
                    "init_noise": VERSION_DEFAULTS[VERSION]["init_noise"], "kssa": False}


def _setting(name: str):
    return shared.opts.data.get(f"regedit_default_{name}", SETTING_DEFAULTS[name])


def _on_ui_settings() -> None:
    section = ("regedit", "RegEdit")
    slider = {"minimum": 0.0, "maximum": 1.0, "step": 0.05}
    options = {
        "regedit_default_mode": shared.OptionInfo(SETTING_DEFAULTS["mode"], "Fusion mode a new page starts with", gr.Radio,
                                                  {"choices": ["attention", "latent"]}, section=section),
        "regedit_default_whole_start": shared.OptionInfo(SETTING_DEFAULTS["whole_start"], "Whole prompt joins after (fraction of steps), to start with",
                                                         gr.Slider, slider, section=section),
        "regedit_default_layout_init": shared.OptionInfo(SETTING_DEFAULTS["layout_init"], "Layout init ticked to start with (txt2img)",
                                                         section=section),
        "regedit_default_init_noise": shared.OptionInfo(SETTING_DEFAULTS["init_noise"], "Layout init seed noise share, to start with", gr.Slider,
                                                        slider, section=section),
        "regedit_default_kssa": shared.OptionInfo(SETTING_DEFAULTS["kssa"], "Keyword selection + KSSA ticked to start with",
                                                  section=section),
        "regedit_always_preview": shared.OptionInfo(False, "Always add the preview images (layout; keyword maps)",
                                                    section=section),
        "regedit_segmenter": shared.OptionInfo("", "Segmenter folder for multi-region guidance of edit pairs (a CLIPSeg "
                                               "model saved with save_pretrained; empty: the bundled ShapesWorld one)",
                                               section=section),
        "regedit_inversion_cache_mb": shared.OptionInfo(512, "Inversion cache for region edits of a picture (MB; a "
                                                        "second edit of the same picture skips its inversion)",
                                                        gr.Slider, {"minimum": 0, "maximum": 8192, "step": 64},
                                                        section=section),
    }
    for key, info in options.items():
        if key.startswith("regedit_default"):
            info = info.needs_reload_ui()
        shared.opts.add_option(key, info)


def _drag_settings_to_doc(drag_text: str, start_t, end_t, handle_noise):
    """The drag sliders written into the drag document (the panel keeps keys it does not draw)."""
    try:
        obj = load_json_object(drag_text, "drag") or {"version": 1, "pairs": []}
    except RegEditError:
        return drag_text
    values = {"start_t": float(start_t), "end_t": float(end_t), "handle_noise": float(handle_noise)}
    obj = {k: v for k, v in obj.items() if k not in values}
    obj.update({k: v for k, v in values.items() if v != DRAG_DEFAULTS[k]})
    return json.dumps(obj)


LIME_DEFAULTS = LimeOptions()


def _lime_settings_to_doc(lime_text: str, enabled, clusters, points, feature_step, until, grow, keep_outside,
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


# How a pasted infotext entry is read: region and LIME documents written before versions existed keep version 1.
_PASTED = {INFOTEXT_KEY: lambda value: parse_region_document(value, untagged_version=1),
           DRAG_INFOTEXT_KEY: parse_drag_document,
           LIME_INFOTEXT_KEY: lambda value: parse_lime_document(value, untagged_version=1)}


def _edits(obj: dict) -> bool:
    """Whether a document object has a box with an edit role (a pair)."""
    regions = obj.get("regions")
    return isinstance(regions, list) and any(isinstance(r, dict) and r.get("edit") not in (None, "", "inherent")
                                             for r in regions)


def _from_infotext(read, key: str = INFOTEXT_KEY):
    """An infotext paste function: reads one setting out of the pasted region (or drag) document."""
    def paste(params):
        try:
            doc = _PASTED[key](params.get(key))
        except RegEditError:
            return gr.update()
        return gr.update() if doc is None else read(doc)
    return paste


class RegEditScript(scripts.Script):
    def title(self):
        return "RegEdit"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        tab = "img2img" if is_img2img else "txt2img"
        with gr.Accordion("RegEdit", open=False, elem_id=f"regedit_{tab}"):
            with gr.Row():
                enabled = gr.Checkbox(False, label="Enable region prompts and drag" if is_img2img else "Enable region prompts",
                                      elem_id=f"regedit_enable_{tab}")
                preview = gr.Checkbox(False, label="Add preview images (layout; keyword maps with KSSA)",
                                      elem_id=f"regedit_preview_{tab}")
            with gr.Row():
                mode = gr.Radio(["attention", "latent"], value=_setting("mode"), label="Fusion mode",
                                info="attention: one UNet pass; latent: MultiDiffusion, a pass per region")
                whole_start = gr.Slider(0.0, 1.0, value=_setting("whole_start"), step=0.05,
                                        label="Whole prompt joins after (fraction of steps)", elem_id=f"regedit_whole_{tab}")
            with gr.Row():
                layout = gr.Checkbox(_setting("layout_init"), label="Layout init (txt2img)", elem_id=f"regedit_layout_{tab}",
                                     info="start from the DDIM inversion of a sketch of the boxes "
                                          "(Sun et al. 2024, spatial-aware latent initialisation)")
                init_noise = gr.Slider(0.0, 1.0, value=_setting("init_noise"), step=0.05, label="Layout init: seed noise share")
            with gr.Row():
                kssa = gr.Checkbox(_setting("kssa"), label="Keyword selection + KSSA", elem_id=f"regedit_kssa_{tab}",
                                   info="entropy picks each region's object words; self-attention leans on them")
                keywords = gr.Slider(1, 75, value=15, step=1, label="Keywords per region (N)")
                scale = gr.Slider(1.0, 3.0, value=1.5, step=0.05, label="KSSA scale")
            with gr.Row():
                reweight = gr.Radio(["logit", "softmax"], value="logit", label="KSSA reweighting",
                                    info="logit: pre-softmax ×scale (paper); softmax: post-softmax, renormalised")
                levels = gr.CheckboxGroup(["down", "mid", "up"], value=["down"], label="KSSA layers")
            with gr.Row():
                guided = gr.Checkbox(False, label="Layout guidance (txt2img)", elem_id=f"regedit_guidance_{tab}",
                                     info="gradient steps on the latent pull each region's words into its box in the "
                                          "first steps (Chen et al. 2023); costs a forward and backward pass per step")
                eta = gr.Slider(1.0, 100.0, value=30.0, step=1.0, label="Layout guidance strength (η)",
                                elem_id=f"regedit_guidance_scale_{tab}")
            note = gr.Markdown(_outside_note(_setting("layout_init")), elem_id=f"regedit_note_{tab}")
            gr.HTML("", elem_id=f"regedit_canvas_{tab}")
            with gr.Accordion("Regions as a table", open=False):
                table = gr.Dataframe(headers=TABLE_HEADERS, datatype=["str", "number", "number", "number", "number"],
                                     value=[["", 0.0, 0.0, 0.5, 0.5]], row_count=(1, "dynamic"), col_count=(5, "fixed"),
                                     interactive=True, elem_id=f"regedit_table_{tab}")
                with gr.Row():
                    apply = gr.Button("Table → regions", elem_id=f"regedit_apply_{tab}")
                    load = gr.Button("Regions → table", elem_id=f"regedit_load_{tab}")
            with gr.Group(elem_classes=["regedit-hidden"]):
                doc = gr.Textbox("", label="Region document (JSON)", elem_id=f"regedit_doc_{tab}", lines=1)
                drag_doc = gr.Textbox("", label="Drag document (JSON)", elem_id=f"regedit_drag_{tab}", lines=1)
                lime_doc = gr.Textbox("", label="LIME document (JSON)", elem_id=f"regedit_lime_{tab}", lines=1)
            if is_img2img:
                with gr.Accordion("Drag regions (RegionDrag)", open=False):
                    gr.Markdown("Draw a handle region and where it should go (its target); Generate moves it, in "
                                "about the time of one generation. The sampler and CFG are not used: RegionDrag "
                                "inverts the image and denoises it again (Lu et al. 2024).",
                                elem_id=f"regedit_drag_note_{tab}")
                    gr.HTML("", elem_id=f"regedit_drag_canvas_{tab}")
                    with gr.Row():
                        start_t = gr.Slider(0.05, 1.0, value=DRAG_DEFAULTS["start_t"], step=0.05,
                                            label="Drag: invert to (fraction of the steps)",
                                            elem_id=f"regedit_drag_start_{tab}")
                        end_t = gr.Slider(0.0, 1.0, value=DRAG_DEFAULTS["end_t"], step=0.05,
                                          label="Drag: copy-paste until (fraction of the timesteps)",
                                          elem_id=f"regedit_drag_end_{tab}")
                        handle_noise = gr.Slider(0.0, 1.0, value=DRAG_DEFAULTS["handle_noise"], step=0.05,
                                                 label="Drag: handle noise (1 moves, lower may leave a copy)",
                                                 elem_id=f"regedit_drag_noise_{tab}")
                drag_settings = [start_t, end_t, handle_noise]
                self._drag_settings = drag_settings
                for control in drag_settings:
                    control.change(_drag_settings_to_doc, inputs=[drag_doc, *drag_settings], outputs=[drag_doc])
                self._drag_fields = [(control, _from_infotext(lambda d, name=name: getattr(d, name), DRAG_INFOTEXT_KEY))
                                     for control, name in zip(drag_settings, ("start_t", "end_t", "handle_noise"))]
                with gr.Accordion("LIME: instruction edit in a found region", open=False):
                    gr.Markdown("The prompt is the instruction (\"make the red circle blue\") with an instruct-pix2pix "
                                "checkpoint, or the edit prompt (what the image should show) with an ordinary one. "
                                "LIME finds the region the instruction is about and keeps the edit's attention "
                                "there (Simsar et al. 2025); boxes on the region canvas, or an inpaint mask, "
                                "replace the region it finds. Tick the preview to see the region.",
                                elem_id=f"regedit_lime_note_{tab}")
                    with gr.Row():
                        lime_on = gr.Checkbox(False, label="LIME", elem_id=f"regedit_lime_enable_{tab}")
                        clusters = gr.Slider(2, 16, value=LIME_DEFAULTS.clusters, step=1, label="LIME: clusters (k)",
                                             elem_id=f"regedit_lime_clusters_{tab}")
                        points = gr.Slider(1, 64, value=LIME_DEFAULTS.points, step=1,
                                           label="LIME: most attended points that pick clusters")
                    with gr.Row():
                        feature_step = gr.Slider(0.05, 0.95, value=round(LIME_DEFAULTS.feature_step, 2), step=0.01,
                                                 label="LIME: region found at (fraction of the steps)")
                        until = gr.Slider(0.0, 1.0, value=LIME_DEFAULTS.regularise_until, step=0.05,
                                          label="LIME: regularise until (fraction of the steps)")
                        grow = gr.Slider(0, 4, value=LIME_DEFAULTS.grow, step=1,
                                         label="LIME: grow the found region (latent cells)",
                                         elem_id=f"regedit_lime_grow_{tab}")
                        keep_outside = gr.Checkbox(LIME_DEFAULTS.keep_outside, label="LIME: keep the rest of the image",
                                                   elem_id=f"regedit_lime_keep_{tab}",
                                                   info="blend the source back outside the region at every step and "
                                                        "paste its pixels there at the end (off: the paper's "
                                                        "attention regularisation alone)")
                        snap = gr.Checkbox(LIME_DEFAULTS.snap, label="LIME: snap the found region to the object",
                                           elem_id=f"regedit_lime_snap_{tab}",
                                           info="the image's superpixels the found region mostly covers, boxed "
                                                "(off: the paper's feature clusters as they are)")
                with gr.Accordion("Edit a picture by regions", open=False):
                    gr.Markdown("Give boxes an edit role (add, remove, change) on the region canvas, each box's "
                                "prompt describing the picture as it is: Generate inverts the picture with those "
                                "prompts and shows its reconstruction and the edit (MRGD). The sampler is not "
                                "used (the edit follows its DDIM inversion back); a second edit of the same "
                                "picture and prompts reuses the inversion.", elem_id=f"regedit_invert_note_{tab}")
                    inversion = gr.Radio(["negative", "nulltext", "ddim"], value="negative",
                                         label="Inversion: negative prompt (fast), null-text (slow, closest "
                                               "reconstruction) or plain DDIM",
                                         elem_id=f"regedit_inversion_{tab}")
                self._inversion = inversion
                lime_settings = [lime_on, clusters, points, feature_step, until, grow, keep_outside, snap]
                self._lime_settings = lime_settings
                for control in lime_settings:
                    control.change(_lime_settings_to_doc, inputs=[lime_doc, *lime_settings], outputs=[lime_doc])
                self._lime_fields = [
                    (lime_on, lambda params: LIME_INFOTEXT_KEY in params),
                    (clusters, _from_infotext(lambda d: d.options.clusters, LIME_INFOTEXT_KEY)),
                    (points, _from_infotext(lambda d: d.options.points, LIME_INFOTEXT_KEY)),
                    (feature_step, _from_infotext(lambda d: d.options.feature_step, LIME_INFOTEXT_KEY)),
                    (until, _from_infotext(lambda d: d.options.regularise_until, LIME_INFOTEXT_KEY)),
                    (grow, _from_infotext(lambda d: d.options.grow, LIME_INFOTEXT_KEY)),
                    (keep_outside, _from_infotext(lambda d: d.options.keep_outside, LIME_INFOTEXT_KEY)),
                    (snap, _from_infotext(lambda d: d.options.snap, LIME_INFOTEXT_KEY)),
                ]
        settings = [mode, whole_start, layout, init_noise, kssa, keywords, scale, reweight, levels, guided, eta]
        apply.click(_table_to_doc, inputs=[table, doc, *settings], outputs=[doc])
        load.click(_doc_to_table, inputs=[doc], outputs=[table])
        for control in (mode, layout, kssa, reweight, levels, guided):
            control.change(_settings_to_doc, inputs=[doc, *settings], outputs=[doc])
        layout.change(_outside_note, inputs=[layout], outputs=[note])
        for control in (whole_start, init_noise, keywords, scale, eta):
            control.release(_settings_to_doc, inputs=[doc, *settings], outputs=[doc])
        self.infotext_fields = [
            (doc, _pasted_document),
            (enabled, lambda params: INFOTEXT_KEY in params or DRAG_INFOTEXT_KEY in params or LIME_INFOTEXT_KEY in params),
            (mode, _from_infotext(lambda d: d.mode)),
            (whole_start, _from_infotext(lambda d: d.whole_prompt_start)),
            (layout, _from_infotext(lambda d: d.init != "noise")),
            (init_noise, _from_infotext(lambda d: d.init_noise)),
            (kssa, _from_infotext(lambda d: d.kssa.enabled)),
            (keywords, _from_infotext(lambda d: d.kssa.keywords)),
            (scale, _from_infotext(lambda d: d.kssa.scale)),
            (reweight, _from_infotext(lambda d: d.kssa.reweight)),
            (levels, _from_infotext(lambda d: list(d.kssa.levels))),
            (guided, _from_infotext(lambda d: d.guidance.enabled)),
            (eta, _from_infotext(lambda d: d.guidance.scale)),
        ]
        self.infotext_fields.append((drag_doc, DRAG_INFOTEXT_KEY))
        self.infotext_fields.append((lime_doc, lambda params: _pasted_document(params, LIME_INFOTEXT_KEY)))
        if is_img2img:
            self.infotext_fields.extend(self._drag_fields + self._lime_fields)
            self.infotext_fields.append((self._inversion, lambda params: params.get(INVERSION_KEY)))
        self.paste_field_names = [INFOTEXT_KEY, DRAG_INFOTEXT_KEY, LIME_INFOTEXT_KEY]
        # After the five API arguments, the controls' values: a generation from the page runs what the
        # page shows (process reads them; the API's documents are not touched by them).
        extra = [*self._drag_settings, *self._lime_settings, self._inversion] if is_img2img else []
        return [doc, enabled, preview, drag_doc, lime_doc, *settings, *extra]

    def process(self, p, doc=None, enabled=False, preview=False, drag_doc=None, lime_doc=None, *ui_values):
        p._regedit = None
        p._regedit_layout = None
        p._regedit_drag = None
        p._regedit_lime = None
        p._regedit_picture_edit = None
        # before the WebUI makes this generation's noise: a model switched by override_settings or
        # taken from the checkpoint cache fires no on_model_loaded
        webui_latent_scale.sync(processing, shared.sd_model)
        from_page = not getattr(p, "is_api", False) and len(ui_values) >= UI_SETTINGS
        active = bool(enabled) or bool(getattr(p, "is_api", False))
        if from_page and len(ui_values) >= DRAG_UI[1]:
            drag_doc = _drag_settings_to_doc(drag_doc, *ui_values[DRAG_UI[0]:DRAG_UI[1]])
        if from_page and len(ui_values) >= LIME_UI[1]:
            lime_doc = _lime_settings_to_doc(lime_doc, *ui_values[LIME_UI[0]:LIME_UI[1]])
            active = active or bool(ui_values[LIME_UI[0]])  # the LIME checkbox alone turns it on
        if active and _start_drag(p, drag_doc):
            return
        if active and _start_lime(p, lime_doc, doc, bool(preview)):
            return
        if not active or doc in (None, "") or (isinstance(doc, str) and not doc.strip()):
            return
        try:
            obj = load_json_object(doc, "regedit")
            if obj is not None and from_page:  # what the page shows runs
                obj = json.loads(_with_settings(obj, *ui_values[:UI_SETTINGS]))
                if len(ui_values) > INVERSION_UI and ui_values[INVERSION_UI] and _edits(obj) \
                        and isinstance(obj.get("edit", {}), dict):  # img2img's inversion, for a picture's edit
                    obj["edit"] = {**obj.get("edit", {}), "inversion": ui_values[INVERSION_UI]}
            obj = xyz_axes.apply_overrides(obj, _xyz_overrides(p), "regions")
            if obj is None:
                return
            obj = dict(obj)
            # the WebUI's prompt boxes are r_total's prompts (the rows' own conditioning); a document's
            # negative_prompt is still validated, then replaced by the negative prompt box
            obj["prompt"] = p.prompt if isinstance(p.prompt, str) else str(p.prompt)
            document = parse_region_document(obj)
            if document is not None:
                negative = p.negative_prompt if isinstance(p.negative_prompt, str) else ""
                document = dataclasses.replace(document, negative_prompt=negative)
        except RegEditError as exc:
            _fail_sampling(p, exc)
            return
        except Exception as exc:  # noqa: BLE001 - anything unreadable fails this generation, with a message
            _fail_sampling(p, RegEditError("regedit", f"the document could not be read ({type(exc).__name__})",
                                           'send a JSON object such as {"prompt": "...", "regions": [...]}'))
            return
        if document is None or not document.regions:
            return
        p._regedit_preview = bool(preview) or bool(shared.opts.data.get("regedit_always_preview", False))
        if document.is_pair:
            _start_pair(p, document)
            return
        loras = _region_loras()
        if loras is not None:
            try:  # names and files checked now: sampling has not started
                region_lora_tags(document, loras)
            except RegEditError as exc:
                _fail_sampling(p, exc)
                return
        p._regedit = WebUISession(document, _encoder(), _tokenizer(), loras=loras)
        p.extra_generation_params[INFOTEXT_KEY] = document.to_json()
        _wrap_sample(p)

    def process_before_every_sampling(self, p, *args, **kwargs):
        """WebUI Forge (AUTOMATIC1111 calls it too, but has no ``forge_objects``): Forge rebuilt
        ``forge_objects`` for this sampling call (the first pass, hires fix's second), so the session goes
        into a clone of its UNet patcher now."""
        session = getattr(p, "_regedit", None)
        controller = getattr(p, "_regedit_forge_controller", None)  # LIME's pass
        forge_objects = getattr(p.sd_model, "forge_objects", None)
        if (session is None and controller is None) or forge_objects is None:
            return
        from backend.attention import attention_function  # Forge's own, where no effect acts

        from lib_regedit.backends import forge_backend

        forge_objects.unet = session.forge_unet(forge_objects.unet, attention_function) if session is not None \
            else forge_backend.patched(forge_objects.unet, controller, None, attention_function)

    def postprocess_image(self, p, pp, *args):
        drag = getattr(p, "_regedit_drag", None)
        if drag is not None and getattr(p, "init_images", None):
            pp.image = composite(_init_image(p), pp.image, drag)
        edit = getattr(p, "_regedit_picture_edit", None)
        if edit is not None and getattr(p, "batch_index", 0) % 2 == 1:  # the edit of each (reconstruction, edit)
            from lib_regedit.editing.real_edit import paste_outside

            pp.image = paste_outside(_init_image(p), pp.image, edit)
        lime = getattr(p, "_regedit_lime", None)
        if lime is not None and getattr(p, "init_images", None):
            pp.image = lime.paste_outside(_init_image(p), pp.image)

    def postprocess(self, p, processed, *args):
        lime = getattr(p, "_regedit_lime", None)
        if lime is not None:
            try:
                if lime.roi is not None and getattr(p, "_regedit_preview", False) and processed.images:
                    processed.images.append(roi_preview(_init_image(p), lime.roi if lime.pixel_roi is None
                                                        else lime.pixel_roi > 0.5))
                    processed.infotexts.append(processed.infotexts[0] if processed.infotexts else "")
            finally:
                _remove_leftovers()
                p._regedit_lime = None
        session = getattr(p, "_regedit", None)
        if session is None:
            return
        try:
            if getattr(p, "_regedit_preview", False) and processed.images:
                info = processed.infotexts[0] if processed.infotexts else ""
                processed.images.append(draw_layout(processed.images[0], session.document))
                processed.infotexts.append(info)
                keyword_maps = session.keyword_preview(processed.images[0])
                if keyword_maps is not None:
                    processed.images.append(keyword_maps)
                    processed.infotexts.append(info)
        finally:
            _remove_leftovers()
            p._regedit = None


def _remove_leftovers() -> None:
    """Any ldm adapter a crashed generation left on the UNet (Forge's patched UNet is a clone it drops)."""
    if not FORGE:
        from lib_regedit.backends.ldm_backend import remove_leftovers

        remove_leftovers(shared.sd_model.model.diffusion_model)


def _not_in_forge(field: str, what: str) -> RegEditError:
    return RegEditError(field, f"{what} does not run in WebUI Forge: its gradient runs through the UNet, whose "
                               "weights Forge holds as inference tensors",
                        "use AUTOMATIC1111's WebUI v1.10, the Python API or the command line for it (region "
                        "prompts, layout init, keywords, KSSA, RegionDrag, LIME and region edits run in Forge)")


def _start_pair(p, document) -> None:
    """An edit pair (MRGD): each image of the batch becomes a source and a target (``lib_regedit/editing/
    webui_pair.py``), in the gallery side by side, each infotext saying which it is."""
    if getattr(p, "init_images", None):
        _start_real_edit(p, document)
        return
    segmenter = None
    if document.edit.guidance.enabled and FORGE:
        _fail_sampling(p, _not_in_forge("edit.guidance", "multi-region guidance"))
        return
    if document.edit.guidance.enabled:
        try:
            segmenter = _segmenter()
        except RegEditError as exc:
            _fail_sampling(p, RegEditError("edit.guidance", f"needs a segmenter: {exc.problem}",
                                           f"set Settings → RegEdit → Segmenter folder: {exc.fix}; or turn "
                                           "guidance off"))
            return
    batch = pair_batch(document, p.batch_size, p.all_prompts, p.all_negative_prompts, p.all_seeds, p.all_subseeds,
                       getattr(p, "all_hr_prompts", None), getattr(p, "all_hr_negative_prompts", None))
    p.batch_size = batch.batch_size
    p.all_prompts, p.all_negative_prompts = batch.prompts, batch.negative_prompts
    p.all_seeds, p.all_subseeds = batch.seeds, batch.subseeds
    if batch.hr_prompts is not None:
        p.all_hr_prompts, p.all_hr_negative_prompts = batch.hr_prompts, batch.hr_negative_prompts
    p._regedit = WebUIPairSession(document, _encoder(), _tokenizer(), batch.batch_size // 2,
                                  source_prompt=batch.prompts[0], target_prompt=batch.prompts[1])
    if segmenter is not None:
        model = shared.sd_model
        p._regedit.enable_guidance(segmenter, _differentiable_decoder(model), model.alphas_cumprod)
    p.extra_generation_params[INFOTEXT_KEY] = document.to_json()
    p.extra_generation_params[PAIR_IMAGE_KEY] = batch.roles
    _wrap_sample(p)


def _start_real_edit(p, document) -> None:
    """A region edit of the img2img picture (MRGD with inversion, ``lib_regedit/editing/webui_real.py``):
    each image becomes (the reconstruction, the edit), in the gallery side by side."""
    problem = None
    if getattr(p, "image_mask", None) is not None:
        problem = RegEditError("regions", "an inpainting mask is set; a region edit changes its boxes itself",
                               "clear the mask (use the img2img tab, not inpaint)")
    elif FORGE and document.edit.inversion == "nulltext":
        problem = RegEditError("edit.inversion", "null-text inversion optimises through the UNet, and WebUI Forge "
                                                 "holds its weights as inference tensors, which cannot be differentiated",
                               'use "negative" (the default) or "ddim" in Forge, or null-text in AUTOMATIC1111\'s '
                               "WebUI v1.10, the Python API or the command line")
    elif _needs_image_conditioning(shared.sd_model):
        problem = RegEditError("regions", "this checkpoint is an inpainting or instruct-pix2pix model, which region "
                                          "editing of a picture does not support",
                               "load an ordinary SD 1.x or SDXL checkpoint")
    if problem is not None:
        _fail_sampling(p, problem)
        return
    batch = pair_batch(document, p.batch_size, p.all_prompts, p.all_negative_prompts, p.all_seeds, p.all_subseeds)
    p.batch_size = batch.batch_size
    p.all_prompts, p.all_negative_prompts = batch.prompts, batch.negative_prompts
    p.all_seeds, p.all_subseeds = batch.seeds, batch.subseeds
    p.extra_generation_params[INFOTEXT_KEY] = document.to_json()
    p.extra_generation_params[PAIR_IMAGE_KEY] = batch.roles
    p.extra_generation_params[INVERSION_KEY] = document.edit.inversion
    p._regedit_picture_edit = document
    INVERSIONS.resize(int(shared.opts.data.get("regedit_inversion_cache_mb", 512)) << 20)
    original = p.sample

    @functools.wraps(original)
    def sample(conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        try:
            return _real_edit_sample(p, document, prompts)
        except RegEditError as exc:
            exc.status_code = 422
            raise

    p.sample = sample


def _real_edit_sample(p, document, prompts):
    from modules import prompt_parser

    from lib_regedit.inversion.image_input import check_regions_cover

    model = shared.sd_model
    check_regions_cover(document, p.width, p.height, max(1, p.width // p.init_latent.shape[-1]))
    if document.edit.guidance.enabled:
        _note(p, "multi-region guidance does not run on a picture in the WebUI yet; the edit was made without it")
    if p.sampler_name != "DDIM":
        _note(p, f"a picture's edit follows its DDIM inversion back, so it was sampled with DDIM, not {p.sampler_name}")

    def encode(text, negative):
        with torch.no_grad(), devices.autocast():
            return model.get_learned_conditioning(prompt_parser.SdConditioning(
                [text], is_negative_prompt=negative, width=p.width, height=p.height))

    rows = p.init_latent.shape[0]
    picture = _init_image(p)
    z0 = _init_means(p, model, rows=1)  # every row is the same picture: its one inversion serves them
    shared.state.textinfo = "RegEdit: inverting"
    shared.state.sampling_step = 0
    shared.state.sampling_steps = p.steps * (3 if document.edit.inversion == "nulltext" else 2)

    def progress(done, total, phase):
        shared.state.textinfo = f"RegEdit: {phase}"
        shared.state.sampling_step += 1

    def cancel():
        return bool(shared.state.interrupted or shared.state.skipped)

    checkpoint = getattr(model, "sd_checkpoint_info", None)
    model_id = getattr(checkpoint, "sha256", None) or getattr(checkpoint, "filename", None) or type(model).__name__
    z, inversion, cached, notes = webui_real.edit_latent(
        model, document, z0, picture, str(model_id), encode, _tokenizer(), source_prompt=prompts[0],
        target_prompt=prompts[1], negative_prompt=p.all_negative_prompts[0], steps=p.steps,
        guidance_scale=p.cfg_scale, seed=int(p.all_seeds[0]), progress=progress, cancel=cancel,
        access=_forge_access(model) if FORGE else None)
    for note in notes:
        _note(p, note)
    return z.repeat(rows // 2, 1, 1, 1).to(p.init_latent.device, p.init_latent.dtype)


_SEGMENTERS: dict = {}  # folder -> (mtime, Segmenter): loading a CLIPSeg once per folder, not per generation


def _segmenter():
    """The segmenter of multi-region guidance: the folder in Settings → RegEdit, or the bundled one."""
    from lib_regedit.editing.segmenter import load_segmenter
    from lib_regedit.models import default_segmenter_path

    folder = str(shared.opts.data.get("regedit_segmenter", "") or "").strip() or str(default_segmenter_path())
    config = os.path.join(folder, "config.json")
    stamp = os.path.getmtime(config) if os.path.exists(config) else None
    cached = _SEGMENTERS.get(folder)
    if cached is None or cached[0] != stamp:
        _SEGMENTERS.clear()
        _SEGMENTERS[folder] = (stamp, load_segmenter(folder))
    return _SEGMENTERS[folder][1]


def _differentiable_decoder(model):
    """Latents (scaled) -> images in [0, 1], with gradients: the WebUI's ``decode_first_stage`` runs
    under ``no_grad``, so the VAE's own decode is called."""
    vae = model.first_stage_model

    def decode(z):
        images = vae.decode(z.to(devices.dtype_vae) / model.scale_factor)
        return ((images.float() + 1) / 2).clamp(0, 1)
    return decode


def _start_drag(p, drag_doc) -> bool:
    """RegionDrag in img2img when the drag document has pairs: check it and the checkpoint, then
    replace the sampling. Returns whether a drag (or its error) took this generation."""
    try:
        document = parse_drag_document(xyz_axes.apply_overrides(load_json_object(drag_doc, "drag"), _xyz_overrides(p),
                                                                "drag"), field="drag")
    except RegEditError as exc:
        _fail_sampling(p, exc)
        return True
    if document is None or not document.pairs:
        return False
    problem = None
    if not getattr(p, "init_images", None):
        problem = RegEditError("drag", "dragging moves part of an image, and this generation has none",
                               "use the img2img tab with an image (the API: /sdapi/v1/img2img with init_images)")
    elif _needs_image_conditioning(shared.sd_model):
        problem = RegEditError("drag", "this checkpoint is an inpainting or instruct-pix2pix model, which "
                                       "RegionDrag does not support", "load an ordinary SD 1.x or SDXL checkpoint")
    elif getattr(p, "image_mask", None) is not None:
        problem = RegEditError("drag", "an inpainting mask is set; a drag edits the regions it moves",
                               "clear the mask, or use the img2img tab without one")
    if problem is not None:
        _fail_sampling(p, problem)
        return True
    p._regedit_drag = document
    p.extra_generation_params[DRAG_INFOTEXT_KEY] = document.to_json()
    original = p.sample

    @functools.wraps(original)
    def sample(conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        return _drag_sample(p, document, seeds, prompts)

    p.sample = sample
    return True


def _start_lime(p, lime_doc, region_doc, preview: bool) -> bool:
    """LIME in img2img when the LIME document is on: check it and the prompt, then run the sampling
    twice (``lib_regedit.lime.webui_lime``). Returns whether LIME (or its error) took this generation."""
    from lib_regedit.lime.webui_lime import LimeSession

    try:
        document = parse_lime_document(lime_doc)
        if document is None:
            return False
        document = parse_lime_document(xyz_axes.apply_overrides(document.to_dict(), _xyz_overrides(p), "lime"))
        if not getattr(p, "init_images", None):
            raise RegEditError("lime", "LIME edits an image, and this generation has none",
                               "use the img2img tab with an image (the API: /sdapi/v1/img2img with init_images)")
        check_instruction(p.prompt if isinstance(p.prompt, str) else "", "prompt", lime=True)
        document.options.checked()
        if not document.roi:  # boxes drawn on the region canvas replace the region LIME finds
            boxes = _drawn_boxes(region_doc)
            document = dataclasses.replace(document, roi=boxes) if boxes else document
    except RegEditError as exc:
        _fail_sampling(p, exc)
        return True
    p._regedit_preview = preview or bool(shared.opts.data.get("regedit_always_preview", False))
    p.extra_generation_params[LIME_INFOTEXT_KEY] = document.to_json()
    original = p.sample

    @functools.wraps(original)
    def sample(conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        if not hasattr(p, "_regedit_lime_user_nmask"):  # before a first batch's RoI blend sets one
            p._regedit_lime_user_nmask = getattr(p, "nmask", None)
        nmask = p._regedit_lime_user_nmask  # an inpaint mask at the latent's resolution, (C, h, w): 1 where it edits
        mask = nmask.reshape(-1, *nmask.shape[-2:])[0].float().cpu() > 0.5 \
            if isinstance(nmask, torch.Tensor) and nmask.ndim >= 2 else None
        try:
            session = LimeSession(document, _tokenizer()(prompts[0]), tuple(p.init_latent.shape[-2:]), mask,
                                  _init_image(p))
        except RegEditError as exc:
            exc.status_code = 422
            raise
        p._regedit_lime = session
        # the posterior's mean, not the WebUI's unseeded sample of it: both passes, and a repeat of the
        # seed or a pasted infotext, start from the same latent
        p.init_latent = _init_means(p, shared.sd_model)
        result = session.run(None if FORGE else shared.sd_model.model.diffusion_model,
                             lambda: original(conditioning, unconditional_conditioning, seeds, subseeds,
                                              subseed_strength, prompts), getattr(p, "rng", None),
                             keep_outside=lambda roi: _blend_outside(p, roi),
                             attach=(lambda controller: _forge_controller(p, controller)) if FORGE else None)
        if session.found is not None:
            print(f"RegEdit: LIME found its region in {session.found.seconds:.2f} s of clustering "
                  f"({int(session.roi.sum())} of {session.roi.numel()} latent cells)")
            note = uncertainty_note(session.found, WEBUI_LIME_FIX)
            if note:
                _note(p, note, once=True)
        return result

    p.sample = sample
    return True


WEBUI_LIME_FIX = ("draw a box around the object on the region canvas with LIME on, or paint an inpaint mask; "
                  "tick the preview to see the region")


@contextlib.contextmanager
def _forge_controller(p, controller):
    """WebUI Forge: ``process_before_every_sampling`` gives ``controller`` to the UNet patcher's clone of
    each sampling call made inside the ``with`` block (LIME's two passes)."""
    p._regedit_forge_controller = controller
    try:
        yield
    finally:
        p._regedit_forge_controller = None


def _init_image(p):
    """img2img's first init image at the generation's size, as the WebUI resizes it for sampling."""
    from modules import images

    return images.resize_image(getattr(p, "resize_mode", 0), p.init_images[0], p.width, p.height)


def _blend_outside(p, roi) -> None:
    """The WebUI's inpainting blend with LIME's RoI as the mask: outside it the sampler's prediction
    is the source's latent at every step, and the result is blended once more at the end."""
    channels = p.init_latent.shape[1]
    nmask = roi.float()[None].repeat(channels, 1, 1).to(p.init_latent.device, p.init_latent.dtype)
    p.nmask, p.mask = nmask, 1.0 - nmask


def _drawn_boxes(region_doc) -> tuple:
    """The boxes of the region canvas (their prompts are not needed for LIME), or none."""
    try:
        obj = load_json_object(region_doc, "regedit") or {}
    except RegEditError:
        return ()
    from lib_regedit.documents.lime import parse_box

    boxes = []
    for r in obj.get("regions", []) if isinstance(obj.get("regions"), list) else []:
        if isinstance(r, dict) and r.get("role", "object") == "object":
            try:
                boxes.append(parse_box({k: r.get(k) for k in "xywh"}, "regions"))
            except RegEditError:
                continue
    return tuple(boxes)


def _needs_image_conditioning(model) -> bool:
    if FORGE:  # Forge's engine: a UNet with more than 4 input channels (inpainting, instruct-pix2pix)
        return getattr(model, "is_inpaint", False) is True
    key = getattr(getattr(model, "model", None), "conditioning_key", None)
    return key in ("hybrid", "concat", "crossattn-adm") or getattr(model, "is_sdxl_inpaint", False)


def _drag_sample(p, document, seeds, prompts):
    """img2img's sampling replaced by RegionDrag on ``p.init_latent`` (``lib_regedit.drag.webui_drag``),
    with the WebUI's progress bar and interrupt."""
    from modules import prompt_parser

    model = shared.sd_model
    with torch.no_grad(), devices.autocast():
        conds = [model.get_learned_conditioning(prompt_parser.SdConditioning([prompt], width=p.width, height=p.height))
                 for prompt in prompts]
    rows = p.init_latent.shape[0]
    options = options_for(document, p.steps)
    shared.state.sampling_steps = options.evaluations * rows
    shared.state.sampling_step = 0

    def progress(done, total):
        shared.state.sampling_step += 1

    def should_stop():
        return bool(shared.state.interrupted or shared.state.skipped)

    if FORGE:  # each row's prediction through the patcher clone carrying the drag's mutual self-attention
        access = _forge_access(model)
        vectors = {i: c["vector"] for i, c in enumerate(conds)} if isinstance(conds[0], dict) else None
        forward = access.forward_for(vectors)

        def forge_eps_of_row(i, x, t):
            i = min(i, len(conds) - 1)
            with torch.no_grad():
                return forward(x, t, crossattn(conds[i]), [i]).cpu()

        latents = webui_drag.drag_batch(None, forge_eps_of_row, _init_means(p, model), seeds, document, p.steps,
                                        access.alphas, progress, should_stop, attach=access.attach)
        return latents.to(p.init_latent.device, p.init_latent.dtype)

    def eps_of_row(i, x, t):
        return _model_eps(model, x, t, conds[min(i, len(conds) - 1)])

    latents = webui_drag.drag_batch(model.model.diffusion_model, eps_of_row, _init_means(p, model), seeds, document,
                                    p.steps, model.alphas_cumprod.detach(), progress, should_stop)
    return latents.to(p.init_latent.device, p.init_latent.dtype)


def _forge_access(model):
    """A Forge checkpoint as ``webui_real.ModelAccess``: a picture's inversion and edit, and RegionDrag,
    call Forge's model through a clone of its UNet patcher carrying their effects."""
    from backend import memory_management
    from backend.attention import attention_function

    from lib_regedit.backends import forge_backend, forge_model

    objects = model.forge_objects
    memory_management.load_models_gpu([objects.unet])
    held = {}

    @contextlib.contextmanager
    def attach(controller):
        held["unet"] = forge_backend.patched(objects.unet, controller, None, attention_function)
        try:
            yield
        finally:
            held.pop("unet", None)

    def forward_for(vectors):
        def forward(z, t, context, kinds):
            vector = None if vectors is None else torch.cat([vectors[k] for k in kinds])
            return forge_model.model_eps(model, z, t, context, vector, held.get("unet")).to(z.device)
        return forward

    return webui_real.ModelAccess(forward_for, attach, objects.unet.model.diffusion_model,
                                  forge_model.alphas_cumprod(model))


def _init_means(p, model, rows: int | None = None):
    """The init images' latents as the VAE posterior's mean, for the first ``rows`` rows (all of
    them by default). The WebUI's ``p.init_latent`` samples the posterior with the unseeded global
    RNG; the drag's inversion retraces its input exactly, so a deterministic input makes a drag
    reproducible (and its infotext paste redo it)."""
    from modules import images

    rows = p.init_latent.shape[0] if rows is None else rows
    sources = [images.resize_image(getattr(p, "resize_mode", 0), img, p.width, p.height) for img in p.init_images]
    batch = torch.cat([layout_init.image_to_tensor(sources[min(i, len(sources) - 1)]) for i in range(rows)])
    with torch.no_grad(), devices.autocast():
        means = _posterior_mean(model, batch.to(devices.device, devices.dtype_vae))
    if means.shape != p.init_latent[:rows].shape:  # a VAE the WebUI encodes differently (e.g. TAESD): keep its latent
        return p.init_latent[:rows]
    return means.to(p.init_latent.dtype)


def _model_eps(model, z, t, cond):
    """The checkpoint's noise prediction for latents ``z`` at timestep ``t`` (v-prediction converted)."""
    with torch.no_grad(), devices.autocast():
        return checkpoint_eps(model, z.to(devices.device, devices.dtype_unet), z, t, cond)


def _region_loras():
    """LoRA per region through the built-in Lora extension (``lib_regedit/webui/loras.py``), or None when
    it is not loaded or in WebUI Forge, whose Lora extension differs (region prompts' LoRA tags are then left
    out with a note)."""
    if FORGE:
        return None
    try:
        import networks  # the built-in Lora extension's module
    except ImportError:
        return None
    if not all(hasattr(networks, n) for n in ("load_network", "loaded_networks", "available_network_aliases")):
        return None
    return WebUILoras(networks)


def _encoder():
    def encode(prompt: str):
        with devices.autocast(), torch.no_grad():
            return shared.sd_model.get_learned_conditioning([prompt])
    return encode


def _tokenizer():
    """Word tokens of a prompt as the WebUI encodes it: (position in its 77-token chunks, text)."""
    def tokenize(prompt: str):
        model = shared.sd_model.cond_stage_model
        # SDXL: the conditioner's first CLIP embedder (CLIP-L; OpenCLIP-G has the same token positions);
        # Forge: its text processing engine (SDXL: CLIP-L's)
        candidates = [getattr(shared.sd_model, name, None) for name in ("text_processing_engine",
                                                                         "text_processing_engine_l")]
        candidates += list(getattr(model, "embedders", None) or [model])
        embedder = next((e for e in candidates if hasattr(e, "process_texts") and _embedder_tokenizer(e)), None)
        if embedder is None:
            return []
        tokenizer = _embedder_tokenizer(embedder)
        special = {embedder.id_start, embedder.id_end, embedder.id_pad}
        chunks = embedder.process_texts([prompt])[0][0]
        words = []
        for c, chunk in enumerate(chunks):
            for i, token in enumerate(chunk.tokens):
                if token not in special:
                    words.append((c * len(chunk.tokens) + i, tokenizer.convert_ids_to_tokens(token).replace("</w>", "")))
        return words
    return tokenize


def _embedder_tokenizer(embedder):
    """The Hugging Face tokenizer of a WebUI text embedder (A1111: ``wrapped.tokenizer``; Forge: ``tokenizer``)."""
    return getattr(getattr(embedder, "wrapped", None), "tokenizer", None) or getattr(embedder, "tokenizer", None)


def _wrap_sample(p) -> None:
    original = p.sample

    @functools.wraps(original)
    def sample(*args, **kwargs):
        session = getattr(p, "_regedit", None)
        if session is None:
            return original(*args, **kwargs)
        if session.document.uses_layout_init(from_image=bool(getattr(p, "init_images", None))) \
                or session.document.init == "layout":  # an explicit "layout" in img2img gets the note
            _start_from_layout(p, session.document, session)  # before the UNet is patched: the plain model inverts
        layout = _layout_guidance(p, session)
        started = time.perf_counter()
        # in Forge, process_before_every_sampling patches the UNet patcher's clone instead
        patching = contextlib.nullcontext() if FORGE else session.sampling(shared.sd_model.model.diffusion_model)
        try:
            with patching, _guiding_first_sampler(p, session, layout):
                result = original(*args, **kwargs)
        finally:
            if isinstance(session, WebUIPairSession):
                session.restore_denoisers()
        if layout is not None:
            _note(p, layout.summary(time.perf_counter() - started))
        for note in session.built.notes if session.built else []:
            _note(p, note, once=True)
        guidance = getattr(session, "guidance", None)
        if guidance is not None and guidance.history:
            _note(p, guidance.summary())
        keywords = session.keywords_text()
        if keywords is not None:  # before the images are saved, so the PNG infotext carries it
            p.extra_generation_params[KEYWORDS_KEY] = keywords
        return result

    p.sample = sample


def _layout_guidance(p, session):
    """The document's layout guidance for this txt2img generation (``lib_regedit.webui.layout_guidance``),
    or None with a note where it does not run."""
    document = session.document
    if not document.guidance.enabled:
        return None
    reason = None
    if FORGE:
        reason = ("layout guidance does not run in WebUI Forge (its gradient runs through the UNet, whose weights "
                  "Forge holds as inference tensors); the image was made without it")
    elif isinstance(session, WebUIPairSession):
        reason = "layout guidance does not run in an edit pair; the pair was made without it"
    elif document.mode == "latent":
        reason = "layout guidance runs in attention mode only; it was skipped in latent mode"
    elif getattr(p, "init_images", None):
        reason = "layout guidance applies to txt2img; img2img starts from your image"
    if reason is None:
        guidance = session.layout_guidance(p.steps, shared.sd_model.alphas_cumprod)
        if guidance is not None:
            return guidance
        reason = "layout guidance found no word to bind in the region prompts; nothing was guided"
    if not getattr(p, "_regedit_guidance_noted", False):
        p._regedit_guidance_noted = True
        _note(p, reason)
    return None


@contextlib.contextmanager
def _guiding_first_sampler(p, session, guidance):
    """While the ``with`` block runs, the first sampler the WebUI creates (the txt2img first pass, not
    hires fix's) guides the latent its denoiser receives: ``sd_samplers.create_sampler`` is wrapped and
    restored, and the denoiser's ``forward`` is patched on that instance only."""
    if guidance is None:
        yield
        return
    from modules import sd_samplers

    create = sd_samplers.create_sampler
    patched = []

    def create_sampler(*args, **kwargs):
        sampler = create(*args, **kwargs)
        if not patched:
            _guide_denoiser(sampler.model_wrap_cfg, p, session, guidance)
            patched.append(sampler.model_wrap_cfg)
        return sampler

    sd_samplers.create_sampler = create_sampler
    try:
        yield
    finally:
        sd_samplers.create_sampler = create
        for denoiser in patched:
            denoiser.__dict__.pop("forward", None)


def _guide_denoiser(denoiser, p, session, guidance) -> None:
    """Layout guidance on the latent ``denoiser`` receives, before each guided step's prediction."""
    from modules import prompt_parser, sd_samplers_common
    from modules.sd_samplers_timesteps import CFGDenoiserTimesteps

    original = denoiser.forward
    predicts_noise = isinstance(denoiser, CFGDenoiserTimesteps)

    def forward(x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
        step = int(shared.state.sampling_step)  # the sampler's step (``denoiser.step`` counts model calls)
        if guidance.wants(step):
            if shared.state.interrupted or shared.state.skipped:
                raise sd_samplers_common.InterruptedException
            conds_list, tensor = prompt_parser.reconstruct_multicond_batch(cond, denoiser.step)
            session.on_cfg_denoiser(step, p.steps, tensor, prompt_parser.reconstruct_cond_batch(uncond, denoiser.step))
            first = [conds[0][0] for conds in conds_list]  # each image's first prompt (AND: the first part)

            def model(x_rows, rows):
                index = torch.tensor([first[r] for r in rows], device=x.device)
                text = ({k: v.index_select(0, index) for k, v in tensor.items()} if isinstance(tensor, dict)
                        else tensor.index_select(0, index))
                concat = image_cond[rows[0]:rows[-1] + 1]
                conditioning = ({**text, "c_concat": [concat]} if isinstance(text, dict)
                                else {"c_crossattn": [text], "c_concat": [concat]})
                return denoiser.inner_model(x_rows, sigma[rows[0]:rows[-1] + 1], cond=conditioning)

            guidance.guide(x, sigma, step, predicts_noise, model)
        return original(x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond)

    denoiser.forward = forward


def _start_from_layout(p, document, session=None) -> None:
    """Layout init (``lib_regedit.regions.layout_init``): invert the boxes' sketch now, and mix the seed's
    noise into it when the sampler draws its first noise (``p.rng.next``, seeds and subseeds kept)."""
    if getattr(p, "init_images", None):
        _note(p, "init layout applies to txt2img; img2img starts from your image")
        return
    rng = getattr(p, "rng", None)
    if rng is None:
        return
    inverted = getattr(p, "_regedit_layout", None)  # the same for every batch of this generation
    pair = session.documents if isinstance(session, WebUIPairSession) else None
    sketches = (pair.source, pair.target) if pair is not None else (document,)
    if inverted is None:
        try:
            networks = _active_networks(p)
            inverted = [_invert_layout_sketch(shared.sd_model, d, p.width, p.height, p.steps, networks)
                        for d in sketches]
        except Exception as exc:  # noqa: BLE001 - e.g. an inpainting checkpoint needs image conditioning
            _note(p, f"init layout skipped on this checkpoint ({type(exc).__name__}: {exc})"[:300])
            return
        p._regedit_layout = inverted
    draw = rng.next

    def first_next():
        rng.next = draw  # only the starting noise; hires fix and ancestral samplers draw plain noise
        noise = draw()
        starts = [layout_init.start_for(d, inv, noise) for d, inv in zip(sketches, inverted)]
        start = starts[0]
        if pair is not None:  # a pair's rows are (source, target) per image; the target keeps the source's
            start = start.clone()  # start away from its edited boxes (lib_regedit/editing/pair_start.py)
            start[1::2] = edited_start(starts[0][1::2], starts[1][1::2], document)
        return start.to(noise.device, noise.dtype)

    rng.next = first_next


def _note(p, text: str, once: bool = False) -> None:
    """A note under the image in the UI, and in the console (the API's info has no comments); with
    ``once``, printed once per generation however many batches repeat it."""
    p.comment(f"RegEdit: {text}")
    printed = p.__dict__.setdefault("_regedit_printed", set())
    if not once or text not in printed:
        printed.add(text)
        print(f"RegEdit: {text}")


def _active_networks(p) -> str:
    """The extra networks (LoRAs, ...) the WebUI has applied to the checkpoint's weights for this
    generation: part of layout init's cache key, since they change what the inversion computes."""
    data = getattr(p, "extra_network_data", None) or {}
    return repr(sorted((name, [tuple(getattr(params, "items", ()) or ()) for params in entries])
                       for name, entries in data.items()))


def _invert_layout_sketch(model, document, width: int, height: int, steps: int, networks: str = ""):
    """Layout init's inverted sketch on this checkpoint, cached per layout and model
    (``layout_init.LAYOUTS``)."""
    if FORGE:
        from backend import memory_management

        from lib_regedit.backends import forge_model

        memory_management.load_models_gpu([model.forge_objects.unet])
        alphas = forge_model.alphas_cumprod(model)
        with torch.no_grad():
            eps = forge_model.noise_prediction(model, model.get_learned_conditioning([""]))
    else:
        alphas = model.alphas_cumprod.detach().float().cpu()
        with torch.no_grad(), devices.autocast():
            cond = model.get_learned_conditioning([""])

        def eps(z, t):
            return _model_eps(model, z, t, cond).cpu()

    def encode(pixels):
        if FORGE:  # Forge's VAE patcher places the input itself
            with torch.no_grad():
                return _posterior_mean(model, pixels)
        with torch.no_grad(), devices.autocast():
            return _posterior_mean(model, pixels.to(devices.device, devices.dtype_vae))

    info = getattr(model, "sd_checkpoint_info", None)
    key = (id(model), getattr(info, "filename", None), getattr(model, "sd_model_hash", None), networks)
    return layout_init.inverted_sketch(document, width=width, height=height, steps=steps, encode=encode, eps=eps,
                                       alphas_cumprod=alphas, model_key=key)


def _posterior_mean(model, image):
    """The sketch's scaled latent, deterministic: the mean of the VAE's posterior. sgm's (SDXL)
    ``encode_first_stage`` samples the posterior with the unseeded global RNG, which made layout init
    on SDXL differ between two runs of one seed; the mean is read from the encoder's moments there."""
    if FORGE:
        from backend import memory_management

        from lib_regedit.backends import forge_model

        memory_management.load_models_gpu([model.forge_objects.vae.patcher])
        return forge_model.posterior_mean(model, image)
    vae = model.first_stage_model
    encoder, quant_conv = getattr(vae, "encoder", None), getattr(vae, "quant_conv", None)
    if encoder is not None and isinstance(quant_conv, torch.nn.Module):
        return quant_conv(encoder(image)).chunk(2, dim=1)[0] * model.scale_factor
    posterior = model.encode_first_stage(image)  # ldm returns the posterior, others a tensor
    return posterior if isinstance(posterior, torch.Tensor) else posterior.mode() * model.scale_factor


def _fail_sampling(p, exc: Exception) -> None:
    """Fail this generation with the message (script errors in ``process`` are only logged). The API
    answers 422 (the WebUI's exception handler reads ``status_code``)."""
    exc.status_code = 422

    def sample(*args, **kwargs):
        raise exc

    p.sample = sample


def _on_cfg_denoiser(params):
    p = getattr(params.denoiser, "p", None)
    for session in (getattr(p, "_regedit", None), getattr(p, "_regedit_lime", None)):
        if session is not None:
            session.on_cfg_denoiser(params.sampling_step, params.total_sampling_steps, params.text_cond,
                                    params.text_uncond)
    session = getattr(p, "_regedit", None)
    if isinstance(session, WebUIPairSession) and session.guidance is not None:
        from modules.sd_samplers_timesteps import CFGDenoiserTimesteps

        session.watch_denoiser(params.denoiser, params.x, params.sigma, p.batch_size,
                               predicts_noise=isinstance(params.denoiser, CFGDenoiserTimesteps))


def _xyz_overrides(p) -> dict:
    return getattr(p, "_regedit_xyz", None) or {}


def _register_xyz_axes() -> None:
    """RegEdit's settings as axes of the WebUI's X/Y/Z plot (``lib_regedit.webui.xyz_axes``), once."""
    xyz = next((d.module for d in scripts.scripts_data if d.script_class.__module__ == "xyz_grid.py"), None)
    if xyz is None or any(str(getattr(o, "label", "")).startswith("[RegEdit]") for o in xyz.axis_options):
        return
    for axis in xyz_axes.AXES:
        xyz.axis_options.append(xyz.AxisOption(axis.label, axis.type, _xyz_apply(axis), confirm=_xyz_confirm(axis),
                                               choices=(lambda a=axis: list(a.choices)) if axis.choices else None))


def _xyz_apply(axis):
    def apply(p, value, values):
        p._regedit_xyz = dict(_xyz_overrides(p), **{axis.label: value})  # each cell has its own copy of p
    return apply


def _xyz_confirm(axis):
    def confirm(p, values):
        try:
            xyz_axes.check_values(axis, values)
        except RegEditError as exc:
            raise RuntimeError(str(exc)) from None  # xyz_grid shows a RuntimeError before the grid starts
    return confirm


script_callbacks.on_before_ui(_register_xyz_axes)
script_callbacks.on_ui_settings(_on_ui_settings)
script_callbacks.on_cfg_denoiser(_on_cfg_denoiser)
script_callbacks.on_model_loaded(lambda sd_model: webui_latent_scale.sync(processing, sd_model))
script_callbacks.on_script_unloaded(lambda: webui_latent_scale.reset(processing))
