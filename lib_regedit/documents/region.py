"""The region document: boxes with their own prompts.

Boxes are fractions of the image with a top-left origin (``x, y, w, h`` in [0, 1]). The minimal
document is::

    {"prompt": "whole-image prompt", "negative_prompt": "",
     "regions": [{"x": 0.0, "y": 0.1, "w": 0.45, "h": 0.8, "prompt": "a red circle"}]}

Optional fields and defaults (MRGD, seed 001 §3.1 and §4.1: R = {r_bg, r_1..r_n, r_total}, with
r_total joining after T_total steps "to avert unexpected disturbances to the initial layout"):

- document: ``mode`` ("attention": fusion inside cross-attention in one UNet pass; "latent":
  MultiDiffusion itself, one denoiser pass per region), ``whole_prompt_start`` (T_total as a fraction
  of the steps, default 0.3), ``whole_prompt_weight`` (weight of r_total once it joins, default 0.5),
  ``background_weight`` (weight of r_bg outside the boxes, default 1.0).
- region: ``negative_prompt`` (fused into the unconditional rows inside the box), ``weight`` (default
  1.0), ``feather`` (soft edge width as a fraction of the image, default 0.03), ``role`` ("object"
  or "background"; a background region's prompt replaces the whole prompt as r_bg, its box is
  ignored), ``keywords`` (user keywords, always kept by keyword selection); instead of the box, a
  ``shape`` (a polygon or brush strokes, ``documents/shapes.py``) or the ``colour`` that names the
  region in the document's ``mask_image`` (``documents/mask_picture.py``), the region's ``x, y, w, h``
  then being the shape's bounding box (docs/documents.md, *Regions of any shape*).
- ``init`` ("noise": the seed's Gaussian noise; "layout": a spatial-aware initial latent, the DDIM
  inversion of a sketch of the boxes mixed with the seed's noise, Sun et al. 2024, see
  ``lib_regedit/regions/layout_init.py``; "auto", the default: layout where the generation starts from noise
  and the document has an object box, the seed's noise where it starts from an image, img2img),
  ``init_noise`` (the seed noise's share of the variance in layout init), ``init_sketch``
  ("disc": a round mark of where, at each box's centre; "ellipse": an ellipse filling each box),
  ``init_noise_outside`` (the seed's share outside the boxes; unset: ``init_noise`` everywhere,
  1: the seed's own noise there) and ``init_steps`` (the inversion's UNet passes; 0: one per sampling step).
  Their defaults depend on the version (``VERSION_DEFAULTS``).
- ``background_prompt``: what the background r_bg says when no region has the background role
  ("rest": the whole prompt without the region phrases, the default; "whole"; "empty"; "negative";
  see ``lib_regedit/regions/background.py``).
- ``version``: the defaults a document was written against. Version 7 (the current one) has the
  defaults above, chosen by measurement (``docs/placement.md``), and layout init's disc sketch marks
  a region with a shape at its bounding box's centre, cut to the shape, where that box overlaps no
  other object's (``docs/regions.md``);
  version 6 has the same defaults with the disc inside the shape, and an edit pair's added region
  starts from its sketch with a seed-noise share of 0.1 (``edit.add_init_noise``,
  ``docs/region-editing.md``); version 5 has the same defaults without that, and from version 5 a
  picture's region edit gives back, inside its edit area, the pixels it changed by only a few levels
  (``docs/picture-editing.md``); version 4 has the same defaults without that. From version 4 an edit pair keeps the source
  outside its edited regions (``edit.keep_outside``, ``docs/region-editing.md``); version 3 has the
  same generation defaults, with MRGD's pair (attention control alone outside the edits). Version 2 documents keep layout
  init's ellipse over the whole image (share 0.25) and unbounded layout guidance; version 1
  documents, and infotexts written before version 2 existed (read with ``untagged_version=1``),
  keep the oldest defaults: the whole prompt fills the background and ``init`` is "noise". A
  document without ``prompt`` uses its object regions' prompts joined with " and ".
- ``kssa``: keyword selection and keyword-selected self-attention (MRGD §3.2), ``true`` or an object
  ``{"enabled", "keywords" (N, 15), "scale" (1.5), "reweight" ("logit" | "softmax"), "levels"
  (["down"]), "refresh" (steps between selections, 5), "downscale" (map resolution = latent / 4)}``.
- ``guidance``: layout guidance, backward guidance on each region's cross-attention maps (Chen et al.
  2023, the attention guidance of seed 003; see ``lib_regedit/regions/layout_guidance.py``), ``true`` or an
  object ``{"enabled", "scale" (eta, 30), "until" (fraction of the steps guided, 0.2), "iterations"
  (per step, 5), "threshold" (stop a step's iterations below this loss, 0.2), "levels" (["down",
  "up"]), "downscale" (map resolution = latent / 4), "max_shift" (a step's updates together move
  the latent at most this share of its RMS, 0.05 from version 3; null: unbounded)}``.
- Edit pairs (MRGD region editing): a region's ``edit`` role ("inherent", "add", "remove",
  "change" with its ``target_prompt``), the document's ``target_prompt`` and ``edit`` options; see
  ``lib_regedit/documents/edit.py``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from typing import Any

from ..errors import RegEditError
from .edit import EDIT_ROLES, EditOptions, parse_edit_options
from .fields import get_bool, get_list, get_number, get_string, load_json_object, reject_unknown
from .mask_picture import (ColourArea, MaskPicture, check_colour_present, normalise_colour, parse_mask_picture,
                           size_notes)
from .shapes import PointBudget, Shape, parse_shape

MAX_REGIONS = 32
MAX_PROMPT_CHARS = 4000
BOX_TOLERANCE = 1e-6
MODES = ("attention", "latent")
INITS = ("auto", "noise", "layout")
BACKGROUND_SOURCES = ("rest", "whole", "empty", "negative")  # background_prompt (lib_regedit/regions/background.py)
VERSION = 7
# The defaults that changed between document versions; a document keeps those of its version.
_V2_LAYOUT = {"init_sketch": "ellipse", "init_noise_outside": None, "init_steps": 0, "init_noise": 0.25}
VERSION_DEFAULTS = {
    1: {"init": "noise", "background_prompt": "whole", **_V2_LAYOUT},
    2: {"init": "auto", "background_prompt": "rest", **_V2_LAYOUT},
    3: {"init": "auto", "background_prompt": "rest", "init_sketch": "disc", "init_noise_outside": 0.85, "init_steps": 0,
        "init_noise": 0.25},
}
VERSION_DEFAULTS[4] = VERSION_DEFAULTS[3]  # version 4 changed an edit pair's default only (``keeps_outside``)
VERSION_DEFAULTS[5] = VERSION_DEFAULTS[4]  # version 5 changed a picture's edit only (``real_edit.paste_outside``)
VERSION_DEFAULTS[6] = VERSION_DEFAULTS[5]  # version 6 changed an edit pair's added regions only (``added_init_noise``)
VERSION_DEFAULTS[7] = VERSION_DEFAULTS[6]  # version 7 changed where layout init's sketch marks a shape (``shape_disc``)
PAIRS_KEEP_FROM = 4  # the first version whose generated pairs keep the source outside their edits
UNCHANGED_RESTORED_FROM = 5  # the first version whose picture edits give back the pixels they barely changed
SHAPE_DISC_AT_BOX_FROM = 7  # the first version whose layout-init sketch marks a shape at its box's centre
ADDED_INIT_NOISE_FROM = 6  # the first version whose pairs start an added region with ``ADDED_INIT_NOISE``
ADDED_INIT_NOISE = 0.1  # the seed noise's share in an added region's start (pair_start.py)
GUIDANCE_MAX_SHIFT = {1: None, 2: None, 3: 0.05, 4: 0.05, 5: 0.05, 6: 0.05, 7: 0.05}  # layout guidance's bound (unbounded before version 3)
ROLES = ("object", "background")

DOCUMENT_FIELDS = ("version", "prompt", "negative_prompt", "regions", "mode", "whole_prompt_start",
                   "whole_prompt_weight", "background_weight", "kssa", "init", "init_noise", "init_sketch",
                   "init_noise_outside", "init_steps", "guidance", "background_prompt", "target_prompt", "edit",
                   "mask_image")
KSSA_FIELDS = ("enabled", "keywords", "scale", "reweight", "levels", "refresh", "downscale")
GUIDANCE_FIELDS = ("enabled", "scale", "until", "iterations", "threshold", "levels", "downscale", "max_shift")
SKETCHES = ("ellipse", "disc")
MAX_INIT_STEPS = 1000
LEVELS = ("down", "mid", "up")


@dataclass(frozen=True)
class KssaOptions:
    """Keyword selection and keyword-selected self-attention (MRGD §3.2). Defaults from the paper:
    N = 15 keywords, logits of keyword positions × 1.5 in the down blocks; maps read at a quarter of
    the latent size ("16×16" for SD's 64×64 latent), refreshed every ``refresh`` steps."""

    enabled: bool = False
    keywords: int = 15
    scale: float = 1.5
    reweight: str = "logit"
    levels: tuple[str, ...] = ("down",)
    refresh: int = 5
    downscale: int = 4


@dataclass(frozen=True)
class GuidanceOptions:
    """Layout guidance (Chen et al. 2023, backward guidance; used with layout init by seed 003).
    Defaults from Chen et al.: eta = 30, up to 5 iterations per step while the loss is above 0.2, in
    the first 10 of 50 steps (``until`` 0.2). Maps are read at a quarter of the latent size, in the
    down and up blocks, as keyword selection reads them."""

    enabled: bool = False
    scale: float = 30.0
    until: float = 0.2
    iterations: int = 5
    threshold: float = 0.2
    levels: tuple[str, ...] = ("down", "up")
    downscale: int = 4
    max_shift: float | None = GUIDANCE_MAX_SHIFT[VERSION]


REGION_FIELDS = ("x", "y", "w", "h", "prompt", "negative_prompt", "weight", "feather", "role", "keywords",
                 "edit", "target_prompt", "shape", "colour")
BOX_FIELDS = ("x", "y", "w", "h")
SAME_BOX_IOU = 0.9  # two edited regions this alike are one box edited twice


@dataclass(frozen=True)
class Region:
    x: float
    y: float
    w: float
    h: float
    prompt: str
    negative_prompt: str = ""
    weight: float = 1.0
    feather: float = 0.03
    role: str = "object"
    keywords: tuple[str, ...] = ()
    edit: str = "inherent"
    target_prompt: str = ""
    shape: Shape | ColourArea | None = None  # None: the box; else x, y, w, h are the shape's bounding box

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x, y, w, h): the box, or the shape's bounding box."""
        return self.x, self.y, self.w, self.h

    @property
    def is_background(self) -> bool:
        return self.role == "background"

    @property
    def is_edited(self) -> bool:
        return self.edit != "inherent"


@dataclass(frozen=True)
class RegionDocument:
    prompt: str
    regions: tuple[Region, ...]
    negative_prompt: str = ""
    mode: str = "attention"
    whole_prompt_start: float = 0.3
    whole_prompt_weight: float = 0.5
    background_weight: float = 1.0
    kssa: KssaOptions = KssaOptions()
    init: str = VERSION_DEFAULTS[VERSION]["init"]
    init_noise: float = VERSION_DEFAULTS[VERSION]["init_noise"]
    init_sketch: str = VERSION_DEFAULTS[VERSION]["init_sketch"]
    init_noise_outside: float | None = VERSION_DEFAULTS[VERSION]["init_noise_outside"]
    init_steps: int = VERSION_DEFAULTS[VERSION]["init_steps"]
    guidance: GuidanceOptions = GuidanceOptions()
    background_prompt: str = VERSION_DEFAULTS[VERSION]["background_prompt"]
    version: int = VERSION
    target_prompt: str = ""
    edit: EditOptions = EditOptions()

    @property
    def is_pair(self) -> bool:
        """Whether this document describes an edit pair (a source and a target image)."""
        return any(r.is_edited for r in self.regions)

    def uses_layout_init(self, from_image: bool = False) -> bool:
        """Whether this generation starts from layout init: ``"layout"``, or ``"auto"`` when it starts
        from noise (not img2img, ``from_image``) and there is an object box to sketch."""
        if self.init == "layout":
            return True
        return self.init == "auto" and not from_image and bool(self.object_regions)

    def keeps_outside(self, picture: bool) -> bool:
        """Whether an edit pair's target keeps the source outside the edited regions
        (``edit.keep_outside``; unset: on for a picture's edit, and for a generated pair from version 4)."""
        if self.edit.keep_outside is not None:
            return self.edit.keep_outside
        return picture or self.version >= PAIRS_KEEP_FROM

    def shape_disc(self) -> str:
        """Where layout init's disc sketch marks a region with a shape: ``"box"`` from version 7, at its
        bounding box's centre as a box's, cut to the shape (unless that box overlaps another object's);
        ``"inner"`` before, the largest disc inside the shape (``regions/layout_init.py``)."""
        return "box" if self.version >= SHAPE_DISC_AT_BOX_FROM else "inner"

    def added_init_noise(self) -> float | None:
        """The seed noise's share in an edit pair's added regions' start with layout init
        (``edit.add_init_noise``; unset: 0.1 from version 6 where the pair keeps the source outside its
        edits), or None where an added region starts as the rest of the target does, with the
        document's ``init_noise`` (MRGD's pair, ``keep_outside`` false, stays MRGD's)."""
        if self.edit.add_init_noise is not None:
            return self.edit.add_init_noise
        if self.version < ADDED_INIT_NOISE_FROM or not self.keeps_outside(picture=False):
            return None
        return ADDED_INIT_NOISE

    @property
    def mask_picture(self) -> MaskPicture | None:
        """The mask picture the regions' colours name, if any."""
        return next((r.shape.picture for r in self.regions if isinstance(r.shape, ColourArea)), None)

    def notes(self, width: int | None = None, height: int | None = None) -> list[str]:
        """What the user should know about the document's shapes: a mask picture's colours that no
        region names, and its scaling to a ``width`` x ``height`` image."""
        picture = self.mask_picture
        if picture is None:
            return []
        notes = list(picture.notes)
        if width and height:
            notes += size_notes(picture, width, height)
        return notes

    @property
    def object_regions(self) -> tuple[Region, ...]:
        return tuple(r for r in self.regions if not r.is_background)

    @property
    def background(self) -> Region | None:
        return next((r for r in self.regions if r.is_background), None)

    def to_dict(self) -> dict:
        data = asdict(replace(self, regions=()))
        data["regions"] = [_region_dict(r) for r in self.regions]
        picture = self.mask_picture
        if picture is not None:
            data["mask_image"] = picture  # parses back as it is; to_json writes its encoding
        data["kssa"] = dict(asdict(self.kssa), levels=list(self.kssa.levels))
        data["guidance"] = dict(asdict(self.guidance), levels=list(self.guidance.levels))
        data["edit"] = self.edit.to_dict(full=True)
        if not self.is_pair and not self.target_prompt and self.edit == EditOptions():
            del data["edit"], data["target_prompt"]  # a one-image document says nothing about edits
        return data

    def to_json(self, full: bool = False) -> str:
        """JSON for the infotext and the hidden field, leaving out fields at their defaults unless
        ``full``; it parses back to an equal document."""
        data = self.to_dict()
        if "mask_image" in data:
            data["mask_image"] = data["mask_image"].to_dict()
        if not full:
            data = _drop_defaults(data, RegionDocument("", (), version=self.version,
                                                       guidance=GuidanceOptions(max_shift=GUIDANCE_MAX_SHIFT[self.version]),
                                                       **VERSION_DEFAULTS[self.version]))
            data["regions"] = [_drop_defaults(r, Region(0, 0, 1, 1, ""),
                                              keep=() if "shape" in r or "colour" in r else BOX_FIELDS)
                               for r in data["regions"]]
            if "kssa" in data:
                data["kssa"] = _drop_defaults(data["kssa"], KssaOptions())
            if "guidance" in data:
                data["guidance"] = _drop_defaults(data["guidance"],
                                                  GuidanceOptions(max_shift=GUIDANCE_MAX_SHIFT[self.version]))
            if "edit" in data:
                data["edit"] = self.edit.to_dict()
        data = {"version": data.pop("version"), **data}  # first: it says which defaults the rest leaves out
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _drop_defaults(data: dict, default, keep=BOX_FIELDS) -> dict:
    keep = {"version", "prompt", "regions", "enabled", "shape", "colour", "mask_image", *keep}
    return {k: v for k, v in data.items() if k in keep or v != _plain(getattr(default, k))}


def _plain(value):
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, (KssaOptions, GuidanceOptions)):
        return dict(asdict(value), levels=list(value.levels))
    if isinstance(value, EditOptions):
        return value.to_dict(full=True)
    return value


def _region_dict(region: Region) -> dict:
    data = {f.name: getattr(region, f.name) for f in fields(Region)}
    data["keywords"] = list(region.keywords)
    shape = data.pop("shape")
    if isinstance(shape, ColourArea):
        data = {"colour": shape.colour, **{k: v for k, v in data.items() if k not in BOX_FIELDS}}
    elif shape is not None:
        data = {"shape": shape.to_dict(), **{k: v for k, v in data.items() if k not in BOX_FIELDS}}
    return data


def parse_region_document(value: Any, field: str = "regedit", untagged_version: int = VERSION) -> RegionDocument | None:
    """Validate a region document given as a dict or a JSON string.

    A document without ``version`` is read as ``untagged_version``: the current one, except for
    infotexts, whose untagged documents were written before versions existed (pass 1).
    Returns ``None`` for an empty value (no regions requested). Raises :class:`RegEditError`.
    """
    obj = load_json_object(value, field)
    if obj is None:
        return None
    reject_unknown(obj, DOCUMENT_FIELDS, "")
    version = _whole(obj, "version", "", default=untagged_version, lo=1, hi=VERSION)
    defaults = VERSION_DEFAULTS[version]
    raw_regions = get_list(obj, "regions", "", max_items=MAX_REGIONS, required=True)
    picture = _parse_picture(obj, raw_regions)
    budget = PointBudget()
    regions = tuple(_parse_region(r, f"regions[{i}]", budget, picture) for i, r in enumerate(raw_regions))
    if sum(r.is_background for r in regions) > 1:
        raise RegEditError("regions", "more than one region has role \"background\"",
                           "keep one background region and make the others \"object\"")
    _check_edits(obj, regions)
    joined = " and ".join(r.prompt.strip() for r in regions if not r.is_background and r.edit != "add")
    if "prompt" not in obj and not joined:
        raise RegEditError("prompt", "is missing and there is no object region to take it from",
                           'write the whole-image prompt, e.g. "prompt": "a red circle and a blue square"')
    prompt = get_string(obj, "prompt", "", default=joined, max_chars=MAX_PROMPT_CHARS)
    negative = get_string(obj, "negative_prompt", "", default="", max_chars=MAX_PROMPT_CHARS)
    return RegionDocument(
        prompt=prompt,
        negative_prompt=negative,
        regions=regions,
        mode=get_string(obj, "mode", "", default="attention", choices=MODES),
        whole_prompt_start=get_number(obj, "whole_prompt_start", "", default=0.3, lo=0.0, hi=1.0),
        whole_prompt_weight=get_number(obj, "whole_prompt_weight", "", default=0.5, lo=0.0, hi=10.0),
        background_weight=get_number(obj, "background_weight", "", default=1.0, lo=0.0, hi=10.0),
        kssa=_parse_kssa(obj.get("kssa"), "kssa"),
        init=get_string(obj, "init", "", default=defaults["init"], choices=INITS),
        init_noise=get_number(obj, "init_noise", "", default=defaults["init_noise"], lo=0.0, hi=1.0),
        init_sketch=get_string(obj, "init_sketch", "", default=defaults["init_sketch"], choices=SKETCHES),
        init_noise_outside=None if obj.get("init_noise_outside", defaults["init_noise_outside"]) is None else
        get_number(obj, "init_noise_outside", "", lo=0.0, hi=1.0, default=defaults["init_noise_outside"]),
        init_steps=_whole(obj, "init_steps", "", default=defaults["init_steps"], lo=0, hi=MAX_INIT_STEPS),
        guidance=_parse_guidance(obj.get("guidance"), "guidance", GUIDANCE_MAX_SHIFT[version]),
        background_prompt=get_string(obj, "background_prompt", "", default=defaults["background_prompt"],
                                     choices=BACKGROUND_SOURCES),
        version=version,
        target_prompt=get_string(obj, "target_prompt", "", default="", max_chars=MAX_PROMPT_CHARS),
        edit=parse_edit_options(obj.get("edit"), "edit"),
    )


def check_one_image(document: RegionDocument, fix: str) -> RegionDocument:
    """``document`` for a generation of one image: a region with an edit role (add, remove, change)
    asks for an edit pair instead, so it is refused, naming the region and ``fix`` (where the caller's
    pair is made)."""
    for i, region in enumerate(document.regions):
        if region.is_edited:
            raise RegEditError(f"regions[{i}].edit", f"is {region.edit!r}: an edit role asks for an edit pair (an "
                                                     "image and its edit), and this makes one image", fix)
    return document


def _box_iou(a: Region, b: Region) -> float:
    """The overlap (intersection over union) of two regions' areas: their boxes, or, when one has a
    shape, their masks on a 64×64 grid (two shapes may share a bounding box and not overlap)."""
    if a.shape is not None or b.shape is not None:
        from ..masks import region_mask

        ma, mb = (region_mask(r, 64, 64, feather=0.0) for r in (a, b))
        union = float((ma + mb - ma * mb).sum())
        return float((ma * mb).sum()) / union if union > 0 else 0.0
    w = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    h = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = w * h
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


def _check_edits(obj: dict, regions: tuple[Region, ...]) -> None:
    """The pair-level checks: a document that asks for an edit edits something, and no box twice."""
    edited = [i for i, r in enumerate(regions) if r.is_edited]
    if not edited and ("edit" in obj or "target_prompt" in obj):
        raise RegEditError("regions", "this edit document has no edited region",
                           'give one region "edit": "add", "remove" or "change" (with its "target_prompt"), '
                           'or leave out "edit" and "target_prompt" to generate one image')
    if edited and obj.get("mode", "attention") == "latent":
        raise RegEditError("mode", "edit pairs run in attention mode",
                           'remove "mode": "latent" (or set "attention") to edit regions')
    for n, i in enumerate(edited):
        for j in edited[n + 1:]:
            if regions[i].is_background == regions[j].is_background and \
                    (regions[i].is_background or _box_iou(regions[i], regions[j]) >= SAME_BOX_IOU):
                raise RegEditError(f"regions[{j}]", f"edits the same box as regions[{i}]",
                                   "make one edit per box: put the change in one region (\"edit\": \"change\" "
                                   "with a target_prompt) and delete the other")


def _options_shorthand(obj: Any, field: str, options, allowed, example: str):
    """What every options object (``kssa``, ``guidance``) accepts besides its fields: absent gives the
    defaults, ``true``/``false`` switches it on or off with defaults. Returns those options, or
    ``None`` when ``obj`` is an object of known fields for the caller to read."""
    if obj is None:
        return options()
    if isinstance(obj, bool):
        return options(enabled=obj)
    if not isinstance(obj, dict):
        raise RegEditError(field, f"expected an object, got {type(obj).__name__}", f"write {example}")
    reject_unknown(obj, allowed, field)
    return None


def _parse_kssa(obj: Any, field: str) -> KssaOptions:
    shorthand = _options_shorthand(obj, field, KssaOptions, KSSA_FIELDS,
                                   '{"enabled": true, "keywords": 15, "scale": 1.5}')
    if shorthand is not None:
        return shorthand
    return KssaOptions(
        enabled=get_bool(obj, "enabled", field, default=True),
        keywords=_whole(obj, "keywords", field, default=15, lo=1, hi=75),
        scale=get_number(obj, "scale", field, default=1.5, lo=0.0, hi=10.0, lo_open=True),
        reweight=get_string(obj, "reweight", field, default="logit", choices=("logit", "softmax")),
        levels=_parse_levels(obj, field, ["down"]),
        refresh=_whole(obj, "refresh", field, default=5, lo=1, hi=1000),
        downscale=_whole(obj, "downscale", field, default=4, lo=1, hi=64),
    )


def _parse_levels(obj: dict, field: str, default: list[str]) -> tuple[str, ...]:
    levels = get_list(obj, "levels", field, max_items=3) if "levels" in obj else default
    for i, level in enumerate(levels):
        if level not in LEVELS:
            raise RegEditError(f"{field}.levels[{i}]", f"{level!r} is not a UNet level", f"use {', '.join(LEVELS)}")
    if not levels:
        raise RegEditError(f"{field}.levels", "is empty", f"name at least one level, e.g. {json.dumps(default)}")
    return tuple(dict.fromkeys(levels))


def _whole(obj: dict, name: str, field: str, default: int, lo: int, hi: int) -> int:
    value = get_number(obj, name, field, default=default, lo=lo, hi=hi)
    if value != int(value):
        raise RegEditError(f"{field}.{name}" if field else name, f"{value:g} is not a whole number", "write a whole number")
    return int(value)


def _parse_guidance(obj: Any, field: str, max_shift: float | None = GUIDANCE_MAX_SHIFT[VERSION]) -> GuidanceOptions:
    shorthand = _options_shorthand(obj, field, partial(GuidanceOptions, max_shift=max_shift), GUIDANCE_FIELDS,
                                   'true, or {"enabled": true, "scale": 30, "until": 0.2}')
    if shorthand is not None:
        return shorthand
    if "max_shift" in obj and obj["max_shift"] is None:
        max_shift = None  # null: unbounded, as before document version 3
    elif "max_shift" in obj or max_shift is not None:
        max_shift = get_number(obj, "max_shift", field, default=max_shift if max_shift is not None else GUIDANCE_MAX_SHIFT[VERSION],
                               lo=0.0, hi=10.0, lo_open=True)
    return GuidanceOptions(
        enabled=get_bool(obj, "enabled", field, default=True),
        scale=get_number(obj, "scale", field, default=30.0, lo=0.0, hi=10000.0, lo_open=True),
        until=get_number(obj, "until", field, default=0.2, lo=0.0, hi=1.0, lo_open=True),
        iterations=_whole(obj, "iterations", field, default=5, lo=1, hi=50),
        threshold=get_number(obj, "threshold", field, default=0.2, lo=0.0, hi=1.0),
        levels=_parse_levels(obj, field, ["down", "up"]),
        downscale=_whole(obj, "downscale", field, default=4, lo=1, hi=64),
        max_shift=max_shift,
    )


def _parse_picture(obj: dict, raw_regions: list) -> MaskPicture | None:
    """The document's mask picture, labelled with the colours its regions name (in their order)."""
    colours: list[str] = []
    for i, raw in enumerate(raw_regions):
        if isinstance(raw, dict) and raw.get("colour") is not None:
            colour = normalise_colour(raw["colour"], f"regions[{i}].colour")
            if colour in colours:
                first = next(j for j, r in enumerate(raw_regions) if isinstance(r, dict) and r.get("colour") is not None
                             and normalise_colour(r["colour"], "") == colour)
                raise RegEditError(f"regions[{i}].colour", f"regions[{first}] already names {colour}",
                                   "give each region of the mask picture its own colour")
            colours.append(colour)
    if obj.get("mask_image") is None:
        if colours:
            i = next(i for i, r in enumerate(raw_regions) if isinstance(r, dict) and r.get("colour") is not None)
            raise RegEditError(f"regions[{i}].colour", "names a colour of a mask picture, and the document has none",
                               'add "mask_image" (a base64 PNG or data URL; --mask-image PNG on the command line), '
                               "or give the region a box (x, y, w, h) or a shape")
        return None
    return parse_mask_picture(obj["mask_image"], colours, "mask_image")


def _parse_area(obj: dict, field: str, background: bool, budget: PointBudget, picture: MaskPicture | None):
    """The region's area: ``(x, y, w, h, shape)``, a box (``shape`` None) or a shape and its bounding box."""
    given = [name for name, yes in (("a box (x, y, w, h)", any(obj.get(k) is not None for k in BOX_FIELDS)),
                                    ("a shape", obj.get("shape") is not None),
                                    ("a colour of the mask picture", obj.get("colour") is not None)) if yes]
    if len(given) > 1:
        raise RegEditError(field, f"has both {given[0]} and {given[1]}",
                           "keep one: delete x, y, w and h to use the shape or colour, or delete "
                           f"{'shape' if 'a shape' in given else 'colour'} to use the box")
    if background and given and given[0] != "a box (x, y, w, h)":
        key = "shape" if obj.get("shape") is not None else "colour"
        raise RegEditError(f"{field}.{key}", "a background region covers what the other regions leave, so it takes "
                                             "no shape", f"delete its {key}, or make it an object region (\"role\": \"object\")")
    if obj.get("shape") is not None:
        shape = parse_shape(obj["shape"], f"{field}.shape", budget)
    elif obj.get("colour") is not None:
        shape = ColourArea(picture, normalise_colour(obj["colour"], f"{field}.colour"))
        check_colour_present(picture, shape.colour, f"{field}.colour")
    else:
        shape = None
    if shape is not None:
        x0, y0, x1, y1 = shape.bbox()
        return x0, y0, x1 - x0, y1 - y0, shape
    # A background region covers what the boxes do not; its box may be left out.
    x = get_number(obj, "x", field, lo=0.0, hi=1.0, required=not background, default=0.0 if background else None)
    y = get_number(obj, "y", field, lo=0.0, hi=1.0, required=not background, default=0.0 if background else None)
    w = get_number(obj, "w", field, lo=0.0, hi=1.0, lo_open=True, required=not background,
                   default=1.0 if background else None)
    h = get_number(obj, "h", field, lo=0.0, hi=1.0, lo_open=True, required=not background,
                   default=1.0 if background else None)
    if x + w > 1.0 + BOX_TOLERANCE:
        raise RegEditError(f"{field}.w", f"the box runs past the right edge (x + w = {x + w:.4g})",
                           "make x + w at most 1 (boxes are fractions of the image width)")
    if y + h > 1.0 + BOX_TOLERANCE:
        raise RegEditError(f"{field}.h", f"the box runs past the bottom edge (y + h = {y + h:.4g})",
                           "make y + h at most 1 (boxes are fractions of the image height)")
    return x, y, min(w, 1.0 - x), min(h, 1.0 - y), None


def _parse_region(obj: Any, field: str, budget: PointBudget, picture: MaskPicture | None = None) -> Region:
    if not isinstance(obj, dict):
        raise RegEditError(field, f"expected an object, got {type(obj).__name__}",
                           'write {"x": 0.1, "y": 0.1, "w": 0.4, "h": 0.4, "prompt": "..."}')
    reject_unknown(obj, REGION_FIELDS, field)
    role = get_string(obj, "role", field, default="object", choices=ROLES)
    background = role == "background"
    x, y, w, h, shape = _parse_area(obj, field, background, budget, picture)
    edit = get_string(obj, "edit", field, default="inherent", choices=EDIT_ROLES)
    if edit == "add" and not str(obj.get("prompt") or "").strip():
        raise RegEditError(f"{field}.prompt", "an added region has no prompt",
                           "describe what to add in this box, e.g. \"a red circle\"")
    prompt = get_string(obj, "prompt", field, required=True, max_chars=MAX_PROMPT_CHARS)
    if not prompt.strip() and not background:
        raise RegEditError(f"{field}.prompt", "is empty", "describe what goes in this box, or delete the box")
    target = get_string(obj, "target_prompt", field, default="", max_chars=MAX_PROMPT_CHARS)
    if edit == "change":
        if not target.strip():
            raise RegEditError(f"{field}.target_prompt", "a changed region has no target prompt",
                               "write what this box should show in the target, e.g. \"a blue circle\"")
        if target.strip() == prompt.strip():
            raise RegEditError(f"{field}.target_prompt", "is the same as its prompt, so nothing changes",
                               "write a different target prompt, or set \"edit\": \"inherent\"")
    elif target:
        raise RegEditError(f"{field}.target_prompt", f"is only read when \"edit\" is \"change\" (it is {edit!r})",
                           "set \"edit\": \"change\", or delete target_prompt")
    if background and edit in ("add", "remove"):
        raise RegEditError(f"{field}.edit", f"a background region cannot be {edit}ed",
                           "use \"change\" with a target_prompt to change the background, or \"inherent\"")
    keywords = get_list(obj, "keywords", field, max_items=64)
    for j, kw in enumerate(keywords):
        if not isinstance(kw, str) or not kw.strip() or len(kw) > 100:
            raise RegEditError(f"{field}.keywords[{j}]", "must be a non-empty word", "write each keyword as text")
    return Region(
        x=x, y=y, w=w, h=h, shape=shape,
        prompt=prompt,
        negative_prompt=get_string(obj, "negative_prompt", field, default="", max_chars=MAX_PROMPT_CHARS),
        weight=get_number(obj, "weight", field, default=1.0, lo=0.0, hi=10.0, lo_open=True),
        feather=get_number(obj, "feather", field, default=0.03, lo=0.0, hi=0.5),
        role=role,
        keywords=tuple(k.strip() for k in keywords),
        edit=edit,
        target_prompt=target,
    )
