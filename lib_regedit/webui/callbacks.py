"""RegEdit's WebUI-wide hooks: Settings → RegEdit, the X/Y/Z plot's axes, the CFG denoiser's step and the
latent scale of the loaded checkpoint. :func:`install` registers them once, from ``scripts/regedit.py``.
"""

from __future__ import annotations

from ..documents.region import VERSION, VERSION_DEFAULTS
from ..errors import RegEditError
from . import generation, latent_scale, xyz_axes

# Settings → RegEdit: the accordion's starting values (read when the page is built; Reload UI after a
# change) and previews (read when a generation starts).
SETTING_DEFAULTS = {"mode": "attention", "whole_start": 0.3, "layout_init": True,
                    "init_noise": VERSION_DEFAULTS[VERSION]["init_noise"], "kssa": False}


def setting(name: str):
    from modules import shared

    return shared.opts.data.get(f"regedit_default_{name}", SETTING_DEFAULTS[name])


def _on_ui_settings() -> None:
    import gradio as gr
    from modules import shared

    section = ("regedit", "RegEdit")
    slider = {"minimum": 0.0, "maximum": 1.0, "step": 0.05}
    option = shared.OptionInfo
    options = {
        "regedit_default_mode": option(SETTING_DEFAULTS["mode"], "Fusion mode a new page starts with", gr.Radio,
                                       {"choices": ["attention", "latent"]}, section=section),
        "regedit_default_whole_start": option(SETTING_DEFAULTS["whole_start"], "Whole prompt joins after (fraction "
                                              "of steps), to start with", gr.Slider, slider, section=section),
        "regedit_default_layout_init": option(SETTING_DEFAULTS["layout_init"], "Layout init ticked to start with "
                                              "(txt2img)", section=section),
        "regedit_default_init_noise": option(SETTING_DEFAULTS["init_noise"], "Layout init seed noise share, to start "
                                             "with", gr.Slider, slider, section=section),
        "regedit_default_kssa": option(SETTING_DEFAULTS["kssa"], "Keyword selection + KSSA ticked to start with",
                                       section=section),
        "regedit_always_preview": option(False, "Always add the preview images (layout; keyword maps)", section=section),
        "regedit_segmenter": option("", "Segmenter folder for multi-region guidance of edit pairs (a CLIPSeg model "
                                    "saved with save_pretrained; empty: the bundled ShapesWorld one)", section=section),
        "regedit_inversion_cache_mb": option(512, "Inversion cache for region edits of a picture (MB; a second edit "
                                             "of the same picture skips its inversion)", gr.Slider,
                                             {"minimum": 0, "maximum": 8192, "step": 64}, section=section),
    }
    for key, info in options.items():
        if key.startswith("regedit_default"):
            info = info.needs_reload_ui()
        shared.opts.add_option(key, info)


def _register_xyz_axes() -> None:
    """RegEdit's settings as axes of the WebUI's X/Y/Z plot (``webui/xyz_axes.py``), once."""
    from modules import scripts

    xyz = next((d.module for d in scripts.scripts_data if d.script_class.__module__ == "xyz_grid.py"), None)
    if xyz is None or any(str(getattr(o, "label", "")).startswith("[RegEdit]") for o in xyz.axis_options):
        return
    for axis in xyz_axes.AXES:
        xyz.axis_options.append(xyz.AxisOption(axis.label, axis.type, _xyz_apply(axis), confirm=_xyz_confirm(axis),
                                               choices=(lambda a=axis: list(a.choices)) if axis.choices else None))


def _xyz_apply(axis):
    def apply(p, value, values):
        p._regedit_xyz = dict(generation.xyz_overrides(p), **{axis.label: value})  # each cell has its own copy of p
    return apply


def _xyz_confirm(axis):
    def confirm(p, values):
        try:
            xyz_axes.check_values(axis, values)
        except RegEditError as exc:
            raise RuntimeError(str(exc)) from None  # xyz_grid shows a RuntimeError before the grid starts
    return confirm


def install() -> None:
    from modules import processing, script_callbacks

    script_callbacks.on_before_ui(_register_xyz_axes)
    script_callbacks.on_ui_settings(_on_ui_settings)
    script_callbacks.on_cfg_denoiser(generation.on_cfg_denoiser)
    script_callbacks.on_cfg_after_cfg(generation.on_cfg_after_cfg)
    script_callbacks.on_model_loaded(lambda sd_model: latent_scale.sync(processing, sd_model))
    script_callbacks.on_script_unloaded(lambda: latent_scale.reset(processing))
