"""RegEdit's settings as X/Y/Z plot axes, kept free of the WebUI so they are tested here.

``webui/callbacks.py`` registers one axis per :data:`AXES` entry with the WebUI's ``xyz_grid`` script.
An axis writes its value into the generation's overrides (``p._regedit_xyz``); when the generation
starts, :func:`apply_overrides` writes them into the region or drag document, which validates them
as always, and the infotext carries them. :func:`check_values` runs before the grid starts, so an
out-of-range value is refused with one message instead of failing in the middle of the grid.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RegEditError
from ..documents.lime import MAPS, PICKS


@dataclass(frozen=True)
class Axis:
    label: str
    document: str  # "regions", "drag" or "lime"
    key: str  # the document field ("feather": every region's; "kssa.scale": inside the kssa object)
    type: type
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] | None = None


ON_OFF = ("on", "off")  # a switch (the WebUI's axis turns each value into the axis type: str, not bool)

AXES = (
    Axis("[RegEdit] Fusion mode", "regions", "mode", str, choices=("attention", "latent")),
    Axis("[RegEdit] Whole prompt start", "regions", "whole_prompt_start", float, 0.0, 1.0),
    Axis("[RegEdit] Whole prompt weight", "regions", "whole_prompt_weight", float, 0.0, 10.0),
    Axis("[RegEdit] Feather", "regions", "feather", float, 0.0, 0.5),
    Axis("[RegEdit] Init", "regions", "init", str, choices=("auto", "noise", "layout")),
    Axis("[RegEdit] Init noise", "regions", "init_noise", float, 0.0, 1.0),
    Axis("[RegEdit] Init noise outside", "regions", "init_noise_outside", float, 0.0, 1.0),
    Axis("[RegEdit] Init sketch", "regions", "init_sketch", str, choices=("disc", "ellipse")),
    Axis("[RegEdit] Background prompt", "regions", "background_prompt", str,
         choices=("rest", "whole", "empty", "negative")),
    Axis("[RegEdit] KSSA", "regions", "kssa.enabled", str, choices=ON_OFF),
    Axis("[RegEdit] KSSA scale", "regions", "kssa.scale", float, 0.0, 10.0),
    Axis("[RegEdit] Layout guidance", "regions", "guidance.enabled", str, choices=ON_OFF),
    Axis("[RegEdit] Layout guidance scale", "regions", "guidance.scale", float, 0.0, 10000.0),
    Axis("[RegEdit] Layout guidance until", "regions", "guidance.until", float, 0.0, 1.0),
    Axis("[RegEdit] Drag start", "drag", "start_t", float, 0.0, 1.0),
    Axis("[RegEdit] Drag end", "drag", "end_t", float, 0.0, 1.0),
    Axis("[RegEdit] Drag handle noise", "drag", "handle_noise", float, 0.0, 1.0),
    Axis("[RegEdit] LIME clusters", "lime", "clusters", int, 1, 64),
    Axis("[RegEdit] LIME points", "lime", "points", int, 1, 4096),
    Axis("[RegEdit] LIME feature step", "lime", "feature_step", float, 0.0, 1.0),
    Axis("[RegEdit] LIME regularise until", "lime", "regularise_until", float, 0.0, 1.0),
    Axis("[RegEdit] LIME grow", "lime", "grow", int, 0, 16),
    Axis("[RegEdit] LIME snap", "lime", "snap", str, choices=ON_OFF),
    Axis("[RegEdit] LIME pick", "lime", "pick", str, choices=PICKS),
    Axis("[RegEdit] LIME maps", "lime", "maps", str, choices=MAPS),
)


OPEN_AT_ZERO = frozenset({"kssa.scale", "guidance.scale", "guidance.until"})  # 0 is refused by the document


def check_values(axis: Axis, values) -> None:
    """Every value of an axis, before the grid starts."""
    for value in values:
        if axis.choices is not None:
            if value not in axis.choices:
                raise RegEditError(axis.label, f"{value!r} is not a choice", f"use one of {', '.join(axis.choices)}")
        elif not (axis.lo <= float(value) <= axis.hi) or (axis.key in OPEN_AT_ZERO and float(value) == 0) \
                or (axis.type is int and float(value) != int(float(value))):
            raise RegEditError(axis.label, f"{value} is out of range", f"use values from {axis.lo:g} to {axis.hi:g}")


def apply_overrides(obj: dict | None, overrides: dict, document: str) -> dict | None:
    """``obj`` (a region, drag or LIME document as a dict) with the overrides of that document written in."""
    if obj is None:
        return None
    out = dict(obj)
    for axis in AXES:
        if axis.document != document or axis.label not in overrides:
            continue
        value = overrides[axis.label]
        if axis.key == "feather":
            out["regions"] = [dict(r, feather=float(value)) if isinstance(r, dict) else r
                              for r in out.get("regions", [])]
        elif "." in axis.key:  # inside an options object (kssa, guidance): a number turns it on
            group, name = axis.key.split(".", 1)
            options = out.get(group)
            options = dict(options) if isinstance(options, dict) else {"enabled": bool(options)} \
                if options is not None else {}
            options[name] = (value == "on") if name == "enabled" else float(value)
            if name != "enabled":
                options.setdefault("enabled", True)
            out[group] = options
        elif axis.choices == ON_OFF:
            out[axis.key] = value == "on"
        else:
            out[axis.key] = float(value) if axis.type is float else int(value) if axis.type is int else value
    return out
