"""The LIME document: settings of a localized instruction edit (LIME, Simsar et al. 2025) and,
optionally, a region of interest drawn by the user instead of the one LIME finds::

    {"version": 4, "clusters": 8, "points": 1, "feature_step": 0.333, "regularise_until": 0.35, "grow": 1,
     "roi": [{"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.3}]}

``true`` or ``{}`` is LIME with its defaults; ``false``, ``null``, ``""`` or ``{"enabled": false}`` is
no LIME. Fields (defaults from LIME and its reference implementation, see :class:`LimeOptions`):
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
false is the paper's method alone), ``roi`` (boxes as fractions of the image, top-left origin, or
shapes, ``{"shape": {"type": "polygon", ...}}`` as in ``lib_regedit/documents/shapes.py``; their
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
from .fields import get_bool, get_list, get_number, get_string, load_json_object, reject_unknown
from .shapes import PointBudget, parse_shape

REFERENCE_REGULARISE_UNTIL = 0.9  # the reference implementation's window: the first 27 of 30 steps
PICKS = ("object", "peak")  # how the clusters of the RoI are picked (see ``pick`` below)
MAPS = ("first", "feature")  # which attention maps pick the RoI (see ``maps`` below)
FIRST_MAPS = {"map_step": 0.0, "maps_finest": True, "map_levels": ("up",)}  # the maps "first" reads
MAX_COLOUR_MERGE = 442.0  # the largest RGB distance (255·√3): every neighbour merged


@dataclass(frozen=True)
class LimeOptions:
    """LIME's settings, with the defaults of LIME (Simsar et al. 2025) and its reference implementation
    (instruct-pix2pix, 30 steps): the RoI from features of step 10, the regularisation in the
    cross-attention layers of the two finest resolutions.

    The regularisation's window is ours: the reference regularises the first 27 of 30 steps (0.9), we
    stop after the first 35% (``regularise_until`` 0.35), measured on the ShapesWorld instruct model: with
    the RoI given, the edit was right in 110 of 120 held-out pairs against 99 with 0.9 (0.35 also did no
    worse in the paper's own setting, ``snap`` and ``keep_outside`` off: 96 against 92). Pushing every
    token but the edit words to -inf steers the edit while its layout forms; kept on through the late
    steps, it fights the detail steps and leaves the edit half done (a circle half removed, a recolour
    smeared). With ``keep_outside`` the source outside the RoI is blended back at every step, so the
    late steps need no regularisation to stay local. The paper's window is one setting away.

    ``keep_outside`` is ours, not the paper's: the regularisation only acts inside the RoI, and an
    instruct model that edits more than it is told (ShapesWorld's does) changes the rest of the image all
    the same. With it, the latent outside the RoI is the source's at every step (Blended Latent
    Diffusion, Avrahami et al. 2023; the WebUI's inpainting blend), so the RoI LIME finds bounds the edit,
    and at the end the source's own pixels are pasted back outside the RoI (feathered outward by a quarter
    of a latent cell), as the WebUI's inpainting composites its result: the VAE's round trip no longer
    touches the rest. A drawn RoI (boxes, a mask) is edited in every latent cell it touches and pasted at
    its own pixels.

    ``snap`` is ours too: the found RoI becomes the box around the image's superpixels it mostly covers
    (:mod:`lib_regedit.lime.superpixels`), then is used as a drawn region is. k-means on a small latent's
    features covers part of an object and a strip beside it; the edit needs the whole object and room
    around it. ``segment_cells`` sets the superpixels' size (latent cells per superpixel) and
    ``colour_merge`` how close two neighbours' mean colours must be to make one superpixel.

    ``pick`` is ours: where the clusters are picked. ``"peak"`` is the paper's, the position where the
    edit tokens' attention peaks. ``"object"`` first takes the superpixel (an object's, at most
    :data:`~lib_regedit.lime.roi.MAX_OBJECT_SHARE` of the image) where their attention is highest on
    average, then that peak inside it: a spike of attention on the rim of another object that shares a
    colour or a shape no longer wins over the object the words attend as a whole (measured in
    docs/lime.md). The superpixels are the snap's, made whether or not the RoI is then snapped.

    ``maps`` is ours: which cross-attention maps of the edit words pick the RoI. ``"feature"`` is the
    paper's, read with the features (the feature step, the feature resolutions, ``map_levels``).
    ``"first"`` reads them at the first step, at the finest resolution that has cross-attention (the
    latent's own in SD 1.x and ShapesWorld), in the UNet's up blocks (:data:`FIRST_MAPS`). On the
    ShapesWorld instruct model the words' mean attention over each object's true mask is highest on the
    named object in 577 of 600 edit pairs with those maps, against 557 with the paper's: the words name
    their object most clearly before the noise is shaped into the edit (the sweep is in docs/lime.md).
    """

    clusters: int = 8  # k of k-means on the features
    points: int = 1  # the edit tokens' top-attended positions whose clusters form the RoI
    feature_step: float = 1 / 3  # the step (a fraction of the run) whose features (and "feature" maps) find the RoI
    regularise_until: float = 0.35  # regularise while fewer than this fraction of the steps are done (paper: 0.9)
    feature_downscales: tuple[int, ...] = (2, 4, 8)  # resolutions read for the RoI (latent side / layer side)
    regularise_downscales: tuple[int, ...] = (1, 2)  # resolutions regularised
    map_levels: tuple[str, ...] = ("down", "mid", "up")  # UNet levels whose edit-token maps locate the RoI ("feature")
    max_dim: int = 64  # features with more channels are reduced by PCA to this many before clustering
    grow: int = 0  # ours: the found RoI grown by this many latent cells (0: the paper's RoI)
    keep_outside: bool = True  # outside the RoI, blend the source back at every step, paste it at the end
    snap: bool = True  # ours: the found RoI snapped to the image's superpixels (lib_regedit/lime/superpixels.py)
    pick: str = "object"  # ours: "object" (the most attended superpixel, then its peak) or "peak" (the paper's)
    segment_cells: int = 4  # ours: latent cells per superpixel of the snap and the object pick (about 2x2)
    colour_merge: float = 40.0  # ours: neighbouring superpixels whose mean colours differ by less (RGB, of 255) are one
    maps: str = "first"  # ours: "first" (the first step's maps, finest resolution, up blocks) or "feature" (paper)

    def checked(self) -> "LimeOptions":
        """Itself, or a RegEditError naming the field."""
        for name, lo in (("clusters", 1), ("points", 1), ("max_dim", 2), ("grow", 0), ("segment_cells", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise RegEditError(f"lime.{name}", f"{value!r} is not a whole number of at least {lo}",
                                   f"use an integer >= {lo} (default {getattr(LimeOptions, name)})")
        for name in ("keep_outside", "snap"):
            if not isinstance(getattr(self, name), bool):
                raise RegEditError(f"lime.{name}", f"{getattr(self, name)!r} is not true or false",
                                   f"use true or false (default {str(getattr(LimeOptions, name)).lower()})")
        if self.maps not in MAPS:
            raise RegEditError("lime.maps", f"{self.maps!r} is not a choice of attention maps",
                               f"use one of {', '.join(repr(m) for m in MAPS)} (default {LimeOptions.maps!r})")
        if self.pick not in PICKS:
            raise RegEditError("lime.pick", f"{self.pick!r} is not a way to pick the region",
                               f"use one of {', '.join(repr(p) for p in PICKS)} (default {LimeOptions.pick!r})")
        if isinstance(self.colour_merge, bool) or not isinstance(self.colour_merge, (int, float)) \
                or not 0 <= self.colour_merge <= MAX_COLOUR_MERGE:
            raise RegEditError("lime.colour_merge", f"{self.colour_merge!r} is out of range",
                               f"use a colour distance from 0 to {MAX_COLOUR_MERGE:g} "
                               f"(default {LimeOptions.colour_merge:g})")
        for name in ("feature_step", "regularise_until"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise RegEditError(f"lime.{name}", f"{value!r} is out of range",
                                   f"use a fraction from 0 to 1 (default {getattr(LimeOptions, name):.3g})")
        for name in ("feature_downscales", "regularise_downscales"):
            value = getattr(self, name)
            if not value or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
                raise RegEditError(f"lime.{name}", f"{value!r} is not a list of layer downscales",
                                   "use whole numbers >= 1, e.g. [1, 2] (1 = the latent's resolution)")
        return self

    def capture_maps(self) -> dict:
        """The RoI capture's map arguments (``map_levels``, ``map_step``, ``maps_finest``) for ``maps``."""
        if self.maps == "first":
            return dict(FIRST_MAPS)
        return {"map_levels": self.map_levels, "map_step": None, "maps_finest": False}


LIME_FIELDS = ("version", "enabled", "clusters", "points", "feature_step", "regularise_until", "grow", "keep_outside",
               "snap", "pick", "maps", "segment_cells", "colour_merge", "roi")
SETTINGS = ("clusters", "points", "feature_step", "regularise_until", "grow", "keep_outside", "snap", "pick",
            "maps", "segment_cells", "colour_merge")
VERSION = 4
# the kind of document a LIME field takes, for the messages about one that is not a JSON object
EXAMPLE = '{"clusters": 8, "roi": [{"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.3}]} (or true)'
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
    roi: tuple = ()  # boxes (x, y, w, h) and shapes (documents/shapes.py)
    version: int = VERSION

    def to_dict(self) -> dict:
        """The version first (it says which defaults the rest leaves out), then the settings that differ."""
        defaults, data = asdict(version_defaults(self.version)), {"version": self.version}
        for key in SETTINGS:
            value = getattr(self.options, key)
            if value != defaults[key]:
                data[key] = value
        if self.roi:
            data["roi"] = [dict(zip("xywh", box)) if isinstance(box, tuple) else {"shape": box.to_dict()}
                           for box in self.roi]
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
    obj = load_json_object(value, field, EXAMPLE)
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
    budget = PointBudget()
    for i, box in enumerate(get_list(obj, "roi", field, max_items=MAX_ROI_BOXES)):
        boxes.append(parse_area(box, f"{field}.roi[{i}]", budget))
    return LimeDocument(options, tuple(boxes), version)


def _whole(obj: dict, name: str, field: str, default: int, lo: int, hi: int) -> int:
    value = get_number(obj, name, field, default=default, lo=lo, hi=hi)
    if value != int(value):
        raise RegEditError(f"{field}.{name}", f"{value:g} is not a whole number", "write a whole number")
    return int(value)


def parse_area(obj: Any, field: str, budget: PointBudget):
    """A box (x, y, w, h), or a shape given as ``{"shape": {...}}``."""
    if isinstance(obj, dict) and obj.get("shape") is not None:
        reject_unknown(obj, ("shape", "prompt"), field)
        return parse_shape(obj["shape"], f"{field}.shape", budget)
    return parse_box(obj, field)


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
