"""The drag document: pairs of handle and target regions for region-based dragging (RegionDrag).

Written by the img2img drag panel, sent through the API and the infotext, validated here. Every
coordinate is a fraction of the image with a top-left origin (``x`` of the width, ``y`` of the
height), like the region document. A minimal document::

    {"version": 2,
     "pairs": [
       {"handle": {"type": "polygon", "points": [[0.1, 0.1], [0.3, 0.1], [0.2, 0.3]]},
        "target": {"type": "polygon", "points": [[0.5, 0.1], [0.7, 0.1], [0.6, 0.3]]}},
       {"handle": {"type": "mask", "strokes": [{"points": [[0.2, 0.6], [0.3, 0.65]], "radius": 0.03}]},
        "target": {"type": "mask", "strokes": [{"points": [[0.6, 0.6], [0.75, 0.7]], "radius": 0.03}]}}
     ]}

Optional settings (RegionDrag's defaults): ``start_t`` (how far the image is inverted, a fraction of
the schedule, 0.5), ``end_t`` (copy-paste while the timestep is above this fraction, 0.2),
``handle_noise`` (the noise share of the handle at the start, 1.0; RegionDrag's interface uses 0.6,
which on ShapesWorld left the object behind in every case, ``eval --drag``), ``copy_paste_every_step`` (the reference
implementation's behaviour, false) and ``mutual_self_attention`` (true).

``version``: the defaults a document was written against. Version 2 (the current one) fills the
vacated handle from what lies around it and blends the result in seamlessly (``match_surroundings``,
``lib_regedit/drag/fill.py``), and grows a brush handle to the objects it covers (``grow_handles``,
``lib_regedit/drag/grow.py``); version 1 is RegionDrag's own fill (the handle turned to noise, the
result pasted back with a feather) and the brush as painted. Each of the two is ``true``/``false`` in
the document, or unset (``null``) for its version's default. A document without ``version`` is read
as the current one, except a pasted infotext's (``untagged_version=1``): documents written before
version 2 keep the behaviour they were made with.

Regions (RegionDrag, "Dense mapping between user-defined regions"), in the shape vocabulary every document
shares (``lib_regedit/documents/shapes.py``):

- ``polygon``: 3 points (a triangle, mapped by an affine transform) or 4 points (a quad, mapped by a
  perspective transform). The handle and the target of a pair must both be polygons with the same
  number of points; point ``i`` of the handle goes to point ``i`` of the target.
- ``mask``: brush strokes, each a polyline of points painted with a round brush of ``radius``
  (a fraction of the image width, so the brush is round in pixels). The handle mask is mapped onto
  the target by scaling its bounding box onto the target's bounding box, horizontally and
  vertically. The handle and target of a pair must both be masks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Union

from ..errors import RegEditError
from .fields import get_bool, get_list, get_number, load_json_object, reject_unknown, type_name
from .shapes import (MAX_RADIUS, MAX_STROKE_POINTS, MAX_STROKES, MAX_TOTAL_POINTS, MIN_POLYGON_AREA,  # noqa: F401
                     SHAPE_TYPES, MaskRegion, Point, PointBudget, PolygonRegion, Stroke, cross, parse_shape,
                     segments_cross)

MAX_PAIRS = 16
# the kind of document a drag field takes, for the messages about one that is not a JSON object
EXAMPLE = ('{"pairs": [{"handle": {"type": "polygon", "points": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]}, '
           '"target": {"type": "polygon", "points": [[0.5, 0.5], [0.8, 0.5], [0.8, 0.8], [0.5, 0.8]]}}]}')
REGION_TYPES = SHAPE_TYPES

VERSION = 2
DOCUMENT_FIELDS = ("version", "pairs", "start_t", "end_t", "handle_noise", "copy_paste_every_step",
                   "mutual_self_attention", "match_surroundings", "grow_handles")
# RegionDrag's settings, optional in the document (its defaults: lib_regedit/drag/region_drag.py)
SETTING_DEFAULTS = {"start_t": 0.5, "end_t": 0.2, "handle_noise": 1.0, "copy_paste_every_step": False,
                    "mutual_self_attention": True}
# settings whose default is the document version's: off in version 1 (RegionDrag's own), on from 2
VERSION_SETTINGS = ("match_surroundings", "grow_handles")
PAIR_FIELDS = ("handle", "target")


DragRegion = Union[PolygonRegion, MaskRegion]


@dataclass(frozen=True)
class DragPair:
    handle: DragRegion
    target: DragRegion

    @property
    def kind(self) -> str:
        """"affine" (triangles), "perspective" (quads) or "scale" (brush masks)."""
        if isinstance(self.handle, MaskRegion):
            return "scale"
        return "affine" if len(self.handle.points) == 3 else "perspective"

    def to_dict(self) -> dict:
        return {"handle": self.handle.to_dict(), "target": self.target.to_dict()}


@dataclass(frozen=True)
class DragDocument:
    pairs: tuple[DragPair, ...]
    version: int = VERSION
    start_t: float = SETTING_DEFAULTS["start_t"]
    end_t: float = SETTING_DEFAULTS["end_t"]
    handle_noise: float = SETTING_DEFAULTS["handle_noise"]
    copy_paste_every_step: bool = SETTING_DEFAULTS["copy_paste_every_step"]
    mutual_self_attention: bool = SETTING_DEFAULTS["mutual_self_attention"]
    match_surroundings: bool | None = None  # None: the version's (on from version 2)
    grow_handles: bool | None = None  # None: the version's (on from version 2)

    def settings(self) -> dict:
        """Every setting, the version's default where the document leaves one unset."""
        return {**{name: getattr(self, name) for name in SETTING_DEFAULTS},
                **{name: version_default(self.version) if getattr(self, name) is None else getattr(self, name)
                   for name in VERSION_SETTINGS}}

    def to_dict(self) -> dict:
        changed = {k: getattr(self, k) for k in SETTING_DEFAULTS if getattr(self, k) != SETTING_DEFAULTS[k]}
        changed.update({k: getattr(self, k) for k in VERSION_SETTINGS if getattr(self, k) is not None})
        return {"version": self.version, "pairs": [p.to_dict() for p in self.pairs], **changed}

    def to_json(self) -> str:
        """Compact JSON for the infotext and the hidden field; parses back to an equal document."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))


def version_default(version: int) -> bool:
    """The default of ``match_surroundings`` and ``grow_handles`` in a document of ``version``."""
    return version >= 2


def parse_drag_document(value: Any, field: str = "drag", untagged_version: int = VERSION) -> DragDocument | None:
    """Validate a drag document given as a dict or a JSON string.

    Returns ``None`` for an empty value (no drag requested). Raises :class:`RegEditError` whose
    field is a path such as ``drag.pairs[1].target.points[2]``. A document without ``version`` is
    read as ``untagged_version``: the current one, except for a pasted infotext's (pass 1).
    """
    obj = load_json_object(value, field, EXAMPLE)
    if obj is None:
        return None
    reject_unknown(obj, DOCUMENT_FIELDS, field)
    version = get_number(obj, "version", field, default=untagged_version, lo=1, hi=VERSION)
    if version != int(version):
        raise RegEditError(_path(field, "version"), f"{version:g} is not a whole number",
                           f"write 1 (RegionDrag's own fill) or {VERSION} (the current defaults)")
    raw_pairs = get_list(obj, "pairs", field, max_items=MAX_PAIRS, required=True)
    budget = PointBudget()
    pairs = tuple(_parse_pair(p, _path(field, f"pairs[{i}]"), budget) for i, p in enumerate(raw_pairs))
    settings = {name: get_number(obj, name, field, default=SETTING_DEFAULTS[name], lo=0.0, hi=1.0,
                                 lo_open=name == "start_t")
                for name in ("start_t", "end_t", "handle_noise")}
    for name in ("copy_paste_every_step", "mutual_self_attention"):
        settings[name] = get_bool(obj, name, field, default=SETTING_DEFAULTS[name])
    for name in VERSION_SETTINGS:  # null or absent: the version's default
        settings[name] = None if obj.get(name) is None else get_bool(obj, name, field, default=True)
    return DragDocument(pairs=pairs, version=int(version), **settings)


def require_pairs(document: DragDocument | None, field: str = "drag") -> DragDocument:
    """``document``, or an error naming ``field`` when it is missing or has no pairs: a drag document
    that was given but moves nothing is a mistake on every host (for no drag, give no document)."""
    if document is None or not document.pairs:
        raise RegEditError(field, "the drag document has no pairs, so nothing would be dragged",
                           f"give at least one pair, a handle and its target, e.g. {EXAMPLE} "
                           "(or leave the drag document out for no drag)")
    return document


def _path(field: str, key: str) -> str:
    if not field:
        return key
    return f"{field}{key}" if key.startswith("[") else f"{field}.{key}"


def _parse_pair(obj: Any, field: str, budget: PointBudget) -> DragPair:
    if not isinstance(obj, dict):
        raise RegEditError(field, f"expected an object, got {type_name(obj)}",
                           'write {"handle": {...}, "target": {...}}')
    reject_unknown(obj, PAIR_FIELDS, field)
    handle = _parse_region(obj, "handle", field, budget)
    target = _parse_region(obj, "target", field, budget)
    if handle.type != target.type:
        raise RegEditError(_path(field, "target.type"),
                           f"the handle is a {handle.type} but the target is a {target.type}",
                           "draw both regions of a pair the same way: two polygons or two brush masks")
    if isinstance(handle, PolygonRegion) and len(handle.points) != len(target.points):
        raise RegEditError(_path(field, "target.points"),
                           f"the handle has {len(handle.points)} points but the target has {len(target.points)}",
                           "give the target as many vertices as the handle (3 for a triangle, 4 for a quad)")
    return DragPair(handle=handle, target=target)


def _parse_region(pair: dict, key: str, pair_field: str, budget: PointBudget) -> DragRegion:
    field = _path(pair_field, key)
    if key not in pair or pair[key] is None:
        raise RegEditError(field, "missing",
                           f'add the {key} region, e.g. {{"type": "polygon", "points": [[x, y], [x, y], [x, y]]}}')
    return parse_shape(pair[key], field, budget, polygon_points=(3, 4),
                       polygon_hint="click 3 vertices for a triangle or 4 for a quad", polygon_check=_check_quad)


def _check_quad(points: tuple[Point, ...], field: str) -> None:
    """A perspective map needs a simple quad: edges 0-1 / 2-3 and 1-2 / 3-0 must not cross, and no
    three vertices may lie on a line."""
    if len(points) != 4:
        return
    for i in range(4):
        if abs(cross(points[i], points[(i + 1) % 4], points[(i + 2) % 4])) < 2 * MIN_POLYGON_AREA:
            raise RegEditError(field, f"vertices {i}, {(i + 1) % 4} and {(i + 2) % 4} lie on one line",
                               "move a vertex so the quad has four real corners")
    if segments_cross(points[0], points[1], points[2], points[3]) or \
            segments_cross(points[1], points[2], points[3], points[0]):
        raise RegEditError(field, "the quad crosses itself (a bow tie)",
                           "click the four vertices in order around the shape")
