"""RegEdit for the AUTOMATIC1111 WebUI and WebUI Forge: region prompts drawn as boxes, region edit pairs in
txt2img (boxes with an edit role: add, remove, change), and RegionDrag, LIME and a picture's region edit in
img2img (API key: ``regedit``).

This file is the accordion and the mapping of its values to documents; the WebUI adapter
(``lib_regedit/webui/``) runs them. API: ``"alwayson_scripts": {"regedit": {"args": [DOC, enabled, preview,
DRAG, LIME]}}`` with DOC the region document, DRAG the drag document and LIME the LIME document (objects or
JSON strings; LIME may also be ``true``). Through the API a non-empty document enables RegEdit; an empty
one ("" or null) disables it.
"""

from __future__ import annotations

import os
import sys

import gradio as gr

from modules import scripts

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lib_regedit.documents.drag import SETTING_DEFAULTS as DRAG_DEFAULTS  # noqa: E402
from lib_regedit.infotext import DRAG_INFOTEXT_KEY, INFOTEXT_KEY, INVERSION_KEY, LIME_INFOTEXT_KEY  # noqa: E402
from lib_regedit.webui import callbacks, checkpoints, generation, image_tasks  # noqa: E402
from lib_regedit.webui.callbacks import setting  # noqa: E402
from lib_regedit.webui.ui_documents import (DRAG_SETTINGS, LIME_DEFAULTS, LIME_SETTINGS, REGION_SETTINGS,  # noqa: E402
                                            TABLE_HEADERS, TASK_PARTS, TASKS, doc_to_table, drag_settings_to_doc,
                                            from_infotext, lime_settings_to_doc, outside_note, pasted_document,
                                            settings_to_doc, shown_parts, table_to_doc, task_from_infotext)


class RegEditScript(scripts.Script):
    def title(self):
        return "RegEdit"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        tab = "img2img" if is_img2img else "txt2img"
        # First what a user came for: Enable, (img2img: the task), the canvas with its boxes and their
        # prompts, one line on what the defaults do; the expert settings folded under Advanced.
        with gr.Accordion("RegEdit", open=False, elem_id=f"regedit_{tab}"):
            enabled = gr.Checkbox(False, label="Enable RegEdit" if is_img2img else "Enable region prompts",
                                  elem_id=f"regedit_enable_{tab}")
            task = None
            if is_img2img:
                task = gr.Radio(list(TASKS), value=TASKS[0], label="Task", elem_id=f"regedit_task_{tab}",
                                info="Generate runs the task shown here, and only it")
            shown = dict(zip(TASK_PARTS, shown_parts(task.value if task else TASKS[0])))
            parts = {}
            with gr.Column(visible=shown["regions"], elem_id=f"regedit_regions_{tab}") as parts["regions"]:
                gr.HTML("", elem_id=f"regedit_canvas_{tab}")
                note = gr.Markdown(outside_note(setting("layout_init"), is_img2img), elem_id=f"regedit_note_{tab}")
            if is_img2img:
                with gr.Column(visible=shown["drag"], elem_id=f"regedit_drag_task_{tab}") as parts["drag"]:
                    gr.Markdown("Draw a handle region and where it should go (its target); Generate moves it, in "
                                "about the time of one generation. The sampler and CFG are not used: RegionDrag "
                                "inverts the image and denoises it again (Lu et al. 2024).",
                                elem_id=f"regedit_drag_note_{tab}")
                    gr.HTML("", elem_id=f"regedit_drag_canvas_{tab}")
                with gr.Column(visible=shown["lime"], elem_id=f"regedit_lime_task_{tab}") as parts["lime"]:
                    gr.Markdown("The prompt is the instruction (\"make the red circle blue\") with an instruct-pix2pix "
                                "checkpoint, or the edit prompt (what the image should show) with an ordinary one. "
                                "LIME finds the region the instruction is about and keeps the edit's attention "
                                "there (Simsar et al. 2025). Boxes drawn here, or an inpaint mask, replace the "
                                "region it finds; *Advanced → preview* shows the region.",
                                elem_id=f"regedit_lime_note_{tab}")
                    gr.HTML("", elem_id=f"regedit_canvas_lime_{tab}")
                with gr.Column(visible=shown["edit"], elem_id=f"regedit_edit_task_{tab}") as parts["edit"]:
                    gr.Markdown("Draw boxes and give each an edit role (add, remove, change), each box's prompt "
                                "describing the picture as it is: Generate inverts the picture with those prompts "
                                "and shows its reconstruction and the edit (MRGD). The sampler is not used (the "
                                "edit follows its DDIM inversion back); a second edit of the same picture and "
                                "prompts reuses the inversion.", elem_id=f"regedit_invert_note_{tab}")
                    gr.HTML("", elem_id=f"regedit_canvas_edit_{tab}")
                    inversion = gr.Radio(["negative", "nulltext", "ddim"], value="negative",
                                         label="Inversion: negative prompt (fast), null-text (slow, closest "
                                               "reconstruction) or plain DDIM",
                                         elem_id=f"regedit_inversion_{tab}")
            with gr.Accordion("Advanced", open=False, elem_id=f"regedit_advanced_{tab}"):
                preview = gr.Checkbox(False, label="Add preview images (layout; keyword maps with KSSA; LIME's region)"
                                      if is_img2img else "Add preview images (layout; keyword maps with KSSA)",
                                      elem_id=f"regedit_preview_{tab}", visible=shown["preview"])
                parts["preview"] = preview
                with gr.Column(visible=shown["region_settings"], elem_id=f"regedit_region_settings_{tab}") \
                        as parts["region_settings"]:
                    with gr.Row():
                        mode = gr.Radio(["attention", "latent"], value=setting("mode"), label="Fusion mode",
                                        info="attention: one UNet pass; latent: MultiDiffusion, a pass per region")
                        whole_start = gr.Slider(0.0, 1.0, value=setting("whole_start"), step=0.05,
                                                label="Whole prompt joins after (fraction of steps)",
                                                elem_id=f"regedit_whole_{tab}")
                    with gr.Row(visible=not is_img2img):  # txt2img's: img2img starts from the picture
                        layout = gr.Checkbox(setting("layout_init"), label="Layout init (txt2img)",
                                             elem_id=f"regedit_layout_{tab}",
                                             info="start from the DDIM inversion of a sketch of the boxes "
                                                  "(Sun et al. 2024, spatial-aware latent initialisation)")
                        init_noise = gr.Slider(0.0, 1.0, value=setting("init_noise"), step=0.05,
                                               label="Layout init: seed noise share")
                    with gr.Row():
                        kssa = gr.Checkbox(setting("kssa"), label="Keyword selection + KSSA", elem_id=f"regedit_kssa_{tab}",
                                           info="entropy picks each region's object words; self-attention leans on them")
                        keywords = gr.Slider(1, 75, value=15, step=1, label="Keywords per region (N)")
                        scale = gr.Slider(1.0, 3.0, value=1.5, step=0.05, label="KSSA scale")
                    with gr.Row():
                        reweight = gr.Radio(["logit", "softmax"], value="logit", label="KSSA reweighting",
                                            info="logit: pre-softmax ×scale (paper); softmax: post-softmax, renormalised")
                        levels = gr.CheckboxGroup(["down", "mid", "up"], value=["down"], label="KSSA layers")
                    with gr.Row(visible=not is_img2img):
                        guided = gr.Checkbox(False, label="Layout guidance (txt2img)", elem_id=f"regedit_guidance_{tab}",
                                             info="gradient steps on the latent pull each region's words into its box "
                                                  "in the first steps (Chen et al. 2023); costs a forward and backward "
                                                  "pass per step")
                        eta = gr.Slider(1.0, 100.0, value=30.0, step=1.0, label="Layout guidance strength (η)",
                                        elem_id=f"regedit_guidance_scale_{tab}")
                    keep_rest = gr.Checkbox(True, label="Edits keep the rest of the image", elem_id=f"regedit_keep_{tab}",
                                            info="outside the edited boxes the edit is the source, pixel for pixel "
                                                 "(off: MRGD's attention control alone)")
                    with gr.Accordion("Regions as a table", open=False):
                        table = gr.Dataframe(headers=TABLE_HEADERS, datatype=["str", "number", "number", "number", "number"],
                                             value=[["", 0.0, 0.0, 0.5, 0.5]], row_count=(1, "dynamic"),
                                             col_count=(5, "fixed"), interactive=True, elem_id=f"regedit_table_{tab}")
                        with gr.Row():
                            apply = gr.Button("Table → regions", elem_id=f"regedit_apply_{tab}")
                            load = gr.Button("Regions → table", elem_id=f"regedit_load_{tab}")
                if is_img2img:
                    with gr.Column(visible=shown["drag_settings"]) as parts["drag_settings"], gr.Row():
                        start_t = gr.Slider(0.05, 1.0, value=DRAG_DEFAULTS["start_t"], step=0.05,
                                            label="Drag: invert to (fraction of the steps)",
                                            elem_id=f"regedit_drag_start_{tab}")
                        end_t = gr.Slider(0.0, 1.0, value=DRAG_DEFAULTS["end_t"], step=0.05,
                                          label="Drag: copy-paste until (fraction of the timesteps)",
                                          elem_id=f"regedit_drag_end_{tab}")
                        handle_noise = gr.Slider(0.0, 1.0, value=DRAG_DEFAULTS["handle_noise"], step=0.05,
                                                 label="Drag: handle noise (1 moves, lower may leave a copy)",
                                                 elem_id=f"regedit_drag_noise_{tab}")
                    with gr.Column(visible=shown["lime_settings"]) as parts["lime_settings"]:
                        with gr.Row():
                            clusters = gr.Slider(2, 16, value=LIME_DEFAULTS.clusters, step=1, label="LIME: clusters (k)",
                                                 elem_id=f"regedit_lime_clusters_{tab}")
                            points = gr.Slider(1, 64, value=LIME_DEFAULTS.points, step=1,
                                               label="LIME: most attended points that pick clusters")
                            feature_step = gr.Slider(0.05, 0.95, value=round(LIME_DEFAULTS.feature_step, 2), step=0.01,
                                                     label="LIME: region found at (fraction of the steps)")
                        with gr.Row():
                            until = gr.Slider(0.0, 1.0, value=LIME_DEFAULTS.regularise_until, step=0.05,
                                              label="LIME: regularise until (fraction of the steps)")
                            grow = gr.Slider(0, 4, value=LIME_DEFAULTS.grow, step=1,
                                             label="LIME: grow the found region (latent cells)",
                                             elem_id=f"regedit_lime_grow_{tab}")
                        with gr.Row():
                            keep_outside = gr.Checkbox(LIME_DEFAULTS.keep_outside, label="LIME: keep the rest of the image",
                                                       elem_id=f"regedit_lime_keep_{tab}",
                                                       info="blend the source back outside the region at every step and "
                                                            "paste its pixels there at the end (off: the paper's "
                                                            "attention regularisation alone)")
                            snap = gr.Checkbox(LIME_DEFAULTS.snap, label="LIME: snap the found region to the object",
                                               elem_id=f"regedit_lime_snap_{tab}",
                                               info="the image's superpixels the found region mostly covers, boxed "
                                                    "(off: the paper's feature clusters as they are)")
            with gr.Group(elem_classes=["regedit-hidden"]):
                doc = gr.Textbox("", label="Region document (JSON)", elem_id=f"regedit_doc_{tab}", lines=1)
                drag_doc = gr.Textbox("", label="Drag document (JSON)", elem_id=f"regedit_drag_{tab}", lines=1)
                lime_doc = gr.Textbox("", label="LIME document (JSON)", elem_id=f"regedit_lime_{tab}", lines=1)
                if is_img2img:  # LIME is on where its task is chosen (a pasted LIME infotext chooses it)
                    lime_on = gr.Checkbox(False, label="LIME", elem_id=f"regedit_lime_enable_{tab}")
        settings = [mode, whole_start, layout, init_noise, kssa, keywords, scale, reweight, levels, guided, eta, keep_rest]
        apply.click(table_to_doc, inputs=[table, doc, *settings], outputs=[doc])
        load.click(doc_to_table, inputs=[doc], outputs=[table])
        for control in (mode, layout, kssa, reweight, levels, guided, keep_rest):
            control.change(settings_to_doc, inputs=[doc, *settings], outputs=[doc])
        if not is_img2img:
            layout.change(outside_note, inputs=[layout], outputs=[note])
        for control in (whole_start, init_noise, keywords, scale, eta):
            control.release(settings_to_doc, inputs=[doc, *settings], outputs=[doc])
        self.infotext_fields = [
            (doc, pasted_document),
            (enabled, lambda params: INFOTEXT_KEY in params or DRAG_INFOTEXT_KEY in params or LIME_INFOTEXT_KEY in params),
            (mode, from_infotext(lambda d: d.mode)),
            (whole_start, from_infotext(lambda d: d.whole_prompt_start)),
            (layout, from_infotext(lambda d: d.init != "noise")),
            (init_noise, from_infotext(lambda d: d.init_noise)),
            (kssa, from_infotext(lambda d: d.kssa.enabled)),
            (keywords, from_infotext(lambda d: d.kssa.keywords)),
            (scale, from_infotext(lambda d: d.kssa.scale)),
            (reweight, from_infotext(lambda d: d.kssa.reweight)),
            (levels, from_infotext(lambda d: list(d.kssa.levels))),
            (guided, from_infotext(lambda d: d.guidance.enabled)),
            (eta, from_infotext(lambda d: d.guidance.scale)),
            (keep_rest, from_infotext(lambda d: d.keeps_outside(picture=is_img2img))),
            (drag_doc, lambda params: pasted_document(params, DRAG_INFOTEXT_KEY)),
            (lime_doc, lambda params: pasted_document(params, LIME_INFOTEXT_KEY)),
        ]
        self.paste_field_names = [INFOTEXT_KEY, DRAG_INFOTEXT_KEY, LIME_INFOTEXT_KEY]
        self._names = ("doc", "enabled", "preview", "drag_doc", "lime_doc", *REGION_SETTINGS)
        if not is_img2img:
            return [doc, enabled, preview, drag_doc, lime_doc, *settings]

        drag_settings = [start_t, end_t, handle_noise]
        for control in drag_settings:
            control.change(drag_settings_to_doc, inputs=[drag_doc, *drag_settings], outputs=[drag_doc])
        lime_settings = [lime_on, clusters, points, feature_step, until, grow, keep_outside, snap]
        for control in lime_settings:
            control.change(lime_settings_to_doc, inputs=[lime_doc, *lime_settings], outputs=[lime_doc])
        task.change(lambda chosen: [gr.update(visible=v) for v in shown_parts(chosen)] + [chosen == "LIME"],
                    inputs=[task], outputs=[*(parts[name] for name in TASK_PARTS), lime_on])
        self.infotext_fields += [
            *((control, from_infotext(lambda d, name=name: getattr(d, name), DRAG_INFOTEXT_KEY))
              for control, name in zip(drag_settings, ("start_t", "end_t", "handle_noise"))),
            (lime_on, lambda params: LIME_INFOTEXT_KEY in params),
            (clusters, from_infotext(lambda d: d.options.clusters, LIME_INFOTEXT_KEY)),
            (points, from_infotext(lambda d: d.options.points, LIME_INFOTEXT_KEY)),
            (feature_step, from_infotext(lambda d: d.options.feature_step, LIME_INFOTEXT_KEY)),
            (until, from_infotext(lambda d: d.options.regularise_until, LIME_INFOTEXT_KEY)),
            (grow, from_infotext(lambda d: d.options.grow, LIME_INFOTEXT_KEY)),
            (keep_outside, from_infotext(lambda d: d.options.keep_outside, LIME_INFOTEXT_KEY)),
            (snap, from_infotext(lambda d: d.options.snap, LIME_INFOTEXT_KEY)),
            (inversion, lambda params: params.get(INVERSION_KEY)),
            (task, task_from_infotext),
        ]
        # After the five API arguments, the controls' values: a generation from the page runs what the
        # page shows (process reads them; the API's documents are not touched by them).
        self._names += (*DRAG_SETTINGS, *LIME_SETTINGS, "inversion", "task")
        return [doc, enabled, preview, drag_doc, lime_doc, *settings, *drag_settings, *lime_settings, inversion, task]

    def process(self, p, *args):
        generation.process(p, dict(zip(self._names, args)))  # the values by name, the API's five first

    def process_before_every_sampling(self, p, *args, **kwargs):
        checkpoints.before_every_sampling(p)  # WebUI Forge calls it for each sampling call

    def postprocess_image(self, p, pp, *args):
        image_tasks.paste_outside(p, pp)

    def postprocess(self, p, processed, *args):
        generation.postprocess(p, processed)


callbacks.install()
