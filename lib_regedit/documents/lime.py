"""The LIME document: settings of a localized instruction edit (LIME, Simsar et al. 2025) and,
optionally, a region of interest drawn by the user instead of the one LIME finds::

    {"version": 4, "clusters": 8, "points": 1, "feature_step": 0.333, "regularise_until": 0.35, "grow": 1,
     "roi": [{"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.3}]}

``true`` or ``{}`` is LIME with its defaults; ``false``, ``null``, ``""`` or ``{"enabled": false}`` is
no LIME. Fields (defaults from LIME and its reference implementation, see ``lib_regedit/lime/options.py``):
``clusters`` (k of k-means, 8), ``points`` (the edit tokens' most attended positions whose clusters
form the RoI, 1), ``feature_step`` (the step whose features find the RoI, a fraction of the run, 1/3),
``regularise_until`` (the fraction of the steps regularised, 0.35; the paper's 0.9), ``grow`` (latent
cells added around the RoI LIME finds, 0: the paper's RoI), ``snap`` (the found RoI snapped to the
image's superpixels and boxed, true; false keeps the paper's k-means segments), ``pick`` (where the
clusters are picked: ``"object"``, the peak inside the superpixel the edit words attend most on
average; ``"peak"``, the paper's peak anywhere), ``maps`` (the edit words' attention maps that pick the
RoI: ``"first"``, the first step's at the finest resolution in the up blocks; ``"feature"``, the
paper's, read with the features), ``segment_cells`` (latent cells per superpixel, 4),
``colour_merge`` (neighbouring superpixels whose mean colours differ by less, of 255 in RGB, are one,
40), ``keep_outside`` (the
source is blended back outside the RoI at every step and its pixels pasted there at the end, true;
false is the paper's method alone), ``roi`` (boxes as fractions of the image, top-left origin; their
union replaces the found RoI), ``version`` (the defaults a document was written against, so a pasted
infotext makes its image again: version 4, the current one, picks with the first step's maps;
version 3 with the paper's, by object on superpixels of 4 cells merged at 40; version 2 regularises
the first 35% of the steps and picks the peak on superpixels of 16 cells merged at 20; version 1, and
LIME infotexts written before versions existed, also regularises the first 90%).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import RegEditError
from ..lime.options import MAPS, MAX_COLOUR_MERGE, PICKS, REFERENCE_REGULARISE_UNTIL, LimeOptions
from .fields import get_bool, get_list, get_number, get_string, load_json_object, reject_unknown

LIME_FIELDS = ("version", "enabled", "clusters", "points", "feature_step", "regularise_until", "grow", "keep_outside",
               "snap", "pick", "maps", "segment_cells", "colour_merge", "roi")
SETTINGS = ("clusters", "points", "feature_step", "regularise_until", "grow", "keep_outside", "snap", "pick",
            "maps", "segment_cells", "colour_merge")
VERSION = 4
# The defaults that changed between document versions; a document keeps those of its version.
_FEATURE_MAPS = {"maps": "feature"}  # before version 4
_PEAK_PICK = {"pick": "peak", "segment_cells": 16, "colour_merge": 20.0, **_FEATURE_MAPS}  # before version 3
VERSION_DEFAULTS = {1: {"regularise_until": REFERENCE_REGULARISE_UNTIL, **_PEAK_PICK},
                    2: {"regularise_until": LimeOptions.regularise_until, **_PEAK_PICK},
                    3: _FEATURE_MAPS,
                    4: {}}
MAX_SEGMENT_CELLS = 1024
MAX_GROW = 16
MAX_ROI_BOXES = 32


@dataclass(frozen=True)
class LimeDocument:
    options: LimeOptions = LimeOptions()
    roi: tuple[tuple[float, float, float, float], ...] = ()
    version: int = VERSION

    def to_dict(self) -> dict:
        """The version first (it says which defaults the rest leaves out), then the settings that differ."""
        defaults, data = asdict(version_defaults(self.version)), {"version": self.version}
        for key in SETTINGS:
            value = getattr(self.options, key)
            if value != defaults[key]:
                data[key] = value
        if self.roi:
            data["roi"] = [dict(zip("xywh", box)) for box in self.roi]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(", ", ": "))


def version_defaults(version: int) -> LimeOptions:
    return replace(LimeOptions(), **VERSION_DEFAULTS[version])


def parse_lime_document(value: Any, field: str = "lime", untagged_version: int = VERSION) -> LimeDocument | None:
    """A LIME document from a dict, a JSON string or a boolean; ``None`` when LIME is off. A document
    without ``version`` is read as ``untagged_version``: the current one, except for infotexts, whose
    untagged documents were written before versions existed (pass 1)."""
    if isinstance(value, bool):
        return LimeDocument() if value else None
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return LimeDocument() if value.strip().lower() == "true" else None
    obj = load_json_object(value, field)
    if obj is None:
        return None
    reject_unknown(obj, LIME_FIELDS, field)
    if not get_bool(obj, "enabled", field, default=True):
        return None
    version = _whole(obj, "version", field, untagged_version, 1, VERSION)
    defaults = version_defaults(version)
    options = LimeOptions(
        clusters=_whole(obj, "clusters", field, defaults.clusters, 1, 64),
        points=_whole(obj, "points", field, defaults.points, 1, 4096),
        feature_step=get_number(obj, "feature_step", field, default=defaults.feature_step, lo=0.0, hi=1.0),
        regularise_until=get_number(obj, "regularise_until", field, default=defaults.regularise_until, lo=0.0, hi=1.0),
        grow=_whole(obj, "grow", field, defaults.grow, 0, MAX_GROW),
        keep_outside=get_bool(obj, "keep_outside", field, default=defaults.keep_outside),
        snap=get_bool(obj, "snap", field, default=defaults.snap),
        pick=get_string(obj, "pick", field, default=defaults.pick, max_chars=16, choices=PICKS),
        maps=get_string(obj, "maps", field, default=defaults.maps, max_chars=16, choices=MAPS),
        segment_cells=_whole(obj, "segment_cells", field, defaults.segment_cells, 1, MAX_SEGMENT_CELLS),
        colour_merge=get_number(obj, "colour_merge", field, default=defaults.colour_merge, lo=0.0, hi=MAX_COLOUR_MERGE),
    )
    boxes = []
    for i, box in enumerate(get_list(obj, "roi", field, max_items=MAX_ROI_BOXES)):
        boxes.append(parse_box(box, f"{field}.roi[{i}]"))
    return LimeDocument(options, tuple(boxes), version)


def _whole(obj: dict, name: str, field: str, default: int, lo: int, hi: int) -> int:
    value = get_number(obj, name, field, default=default, lo=lo, hi=hi)
    if value != int(value):
        raise RegEditError(f"{field}.{name}", f"{value:g} is not a whole number", "write a whole number")
    return int(value)


def parse_box(obj: Any, field: str) -> tuple[float, float, float, float]:
    if not isinstance(obj, dict):
        raise RegEditError(field, f"expected an object, got {type(obj).__name__}",
                           'write {"x": 0.1, "y": 0.1, "w": 0.4, "h": 0.4}')
    reject_unknown(obj, ("x", "y", "w", "h", "prompt"), field)
    x = get_number(obj, "x", field, lo=0.0, hi=1.0, required=True)
    y = get_number(obj, "y", field, lo=0.0, hi=1.0, required=True)
    w = get_number(obj, "w", field, lo=0.0, hi=1.0, lo_open=True, required=True)
    h = get_number(obj, "h", field, lo=0.0, hi=1.0, lo_open=True, required=True)
    if x + w > 1.0 + 1e-6 or y + h > 1.0 + 1e-6:
        raise RegEditError(field, "the box runs past the image's edge", "make x + w and y + h at most 1")
    return (x, y, min(w, 1.0 - x), min(h, 1.0 - y))
