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

Regions (RegionDrag, "Dense mapping between user-defined regions"):

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
import math
from dataclasses import dataclass
from typing import Any, Union

from ..errors import RegEditError
from .fields import get_bool, get_list, get_number, get_string, load_json_object, reject_unknown, type_name

MAX_PAIRS = 16
# the kind of document a drag field takes, for the messages about one that is not a JSON object
EXAMPLE = ('{"pairs": [{"handle": {"type": "polygon", "points": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]}, '
           '"target": {"type": "polygon", "points": [[0.5, 0.5], [0.8, 0.5], [0.8, 0.8], [0.5, 0.8]]}}]}')
MAX_STROKES = 64
MAX_STROKE_POINTS = 2000
MAX_TOTAL_POINTS = 20000
MAX_RADIUS = 0.5
MIN_POLYGON_AREA = 1e-6  # as a fraction of the image area: about a quarter pixel at 512x512
REGION_TYPES = ("polygon", "mask")

VERSION = 2
DOCUMENT_FIELDS = ("version", "pairs", "start_t", "end_t", "handle_noise", "copy_paste_every_step",
                   "mutual_self_attention", "match_surroundings", "grow_handles")
# RegionDrag's settings, optional in the document (its defaults: lib_regedit/drag/region_drag.py)
SETTING_DEFAULTS = {"start_t": 0.5, "end_t": 0.2, "handle_noise": 1.0, "copy_paste_every_step": False,
                    "mutual_self_attention": True}
# settings whose default is the document version's: off in version 1 (RegionDrag's own), on from 2
VERSION_SETTINGS = ("match_surroundings", "grow_handles")
PAIR_FIELDS = ("handle", "target")
POLYGON_FIELDS = ("type", "points")
MASK_FIELDS = ("type", "strokes")
STROKE_FIELDS = ("points", "radius")

Point = tuple[float, float]


@dataclass(frozen=True)
class PolygonRegion:
    """A triangle (3 points) or a quad (4 points), in image fractions."""

    points: tuple[Point, ...]
    type: str = "polygon"

    def bbox(self) -> tuple[float, float, float, float]:
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        return min(xs), min(ys), max(xs), max(ys)

    def to_dict(self) -> dict:
        return {"type": "polygon", "points": [list(p) for p in self.points]}


@dataclass(frozen=True)
class Stroke:
    """A brush stroke: a polyline painted with a round brush; ``radius`` is a fraction of the width."""

    points: tuple[Point, ...]
    radius: float

    def to_dict(self) -> dict:
        return {"points": [list(p) for p in self.points], "radius": self.radius}


@dataclass(frozen=True)
class MaskRegion:
    """A region painted with brush strokes."""

    strokes: tuple[Stroke, ...]
    type: str = "mask"

    def bbox(self, aspect: float = 1.0) -> tuple[float, float, float, float]:
        """Bounding box (x0, y0, x1, y1) in fractions, clipped to the image.

        ``aspect`` is width / height of the image, needed because the radius is a fraction of the
        width: in fractions of the height it is ``radius * aspect``.
        """
        x0 = y0 = math.inf
        x1 = y1 = -math.inf
        for stroke in self.strokes:
            rx, ry = stroke.radius, stroke.radius * aspect
            for x, y in stroke.points:
                x0, x1 = min(x0, x - rx), max(x1, x + rx)
                y0, y1 = min(y0, y - ry), max(y1, y + ry)
        return max(0.0, x0), max(0.0, y0), min(1.0, x1), min(1.0, y1)

    def to_dict(self) -> dict:
        return {"type": "mask", "strokes": [s.to_dict() for s in self.strokes]}


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
    budget = [MAX_TOTAL_POINTS]
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


def _parse_pair(obj: Any, field: str, budget: list[int]) -> DragPair:
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


def _parse_region(pair: dict, key: str, pair_field: str, budget: list[int]) -> DragRegion:
    field = _path(pair_field, key)
    if key not in pair or pair[key] is None:
        raise RegEditError(field, "missing",
                           f'add the {key} region, e.g. {{"type": "polygon", "points": [[x, y], [x, y], [x, y]]}}')
    obj = pair[key]
    if not isinstance(obj, dict):
        raise RegEditError(field, f"expected an object, got {type_name(obj)}",
                           'write {"type": "polygon", "points": [...]} or {"type": "mask", "strokes": [...]}')
    kind = get_string(obj, "type", field, required=True, choices=REGION_TYPES)
    if kind == "polygon":
        reject_unknown(obj, POLYGON_FIELDS, field)
        raw = get_list(obj, "points", field, max_items=MAX_STROKE_POINTS, required=True)
        if len(raw) not in (3, 4):
            raise RegEditError(_path(field, "points"), f"a polygon needs 3 or 4 points, got {len(raw)}",
                               "click 3 vertices for a triangle or 4 for a quad")
        points = tuple(_parse_point(p, _path(field, f"points[{i}]")) for i, p in enumerate(raw))
        _check_polygon(points, _path(field, "points"))
        _spend(budget, len(points), field)
        return PolygonRegion(points=points)
    reject_unknown(obj, MASK_FIELDS, field)
    raw_strokes = get_list(obj, "strokes", field, max_items=MAX_STROKES, required=True)
    if not raw_strokes:
        raise RegEditError(_path(field, "strokes"), "is empty", "paint at least one brush stroke")
    strokes = tuple(_parse_stroke(s, _path(field, f"strokes[{i}]"), budget) for i, s in enumerate(raw_strokes))
    return MaskRegion(strokes=strokes)


def _parse_stroke(obj: Any, field: str, budget: list[int]) -> Stroke:
    if not isinstance(obj, dict):
        raise RegEditError(field, f"expected an object, got {type_name(obj)}",
                           'write {"points": [[x, y], ...], "radius": 0.02}')
    reject_unknown(obj, STROKE_FIELDS, field)
    radius = get_number(obj, "radius", field, required=True, lo=0.0, hi=MAX_RADIUS, lo_open=True)
    raw = get_list(obj, "points", field, max_items=MAX_STROKE_POINTS, required=True)
    if not raw:
        raise RegEditError(_path(field, "points"), "is empty", "give the stroke at least one point")
    _spend(budget, len(raw), field)
    points = tuple(_parse_point(p, _path(field, f"points[{i}]")) for i, p in enumerate(raw))
    return Stroke(points=points, radius=radius)


def _spend(budget: list[int], n: int, field: str) -> None:
    budget[0] -= n
    if budget[0] < 0:
        raise RegEditError(field, f"the document has more than {MAX_TOTAL_POINTS} points in all",
                           "use fewer or shorter brush strokes")


def _parse_point(value: Any, field: str) -> Point:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise RegEditError(field, f"expected a point [x, y], got {type_name(value)}"
                           + (f" of length {len(value)}" if isinstance(value, (list, tuple)) else ""),
                           "write the point as [x, y] with both in 0..1 (fractions of the image)")
    out = []
    for axis, v in zip("xy", value):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise RegEditError(field, f"{axis} is {type_name(v)}, not a number",
                               "write the point as [x, y] with both in 0..1 (fractions of the image)")
        v = float(v)
        if not math.isfinite(v):
            raise RegEditError(field, f"{axis} = {v} is not a finite number",
                               "write the point as [x, y] with both in 0..1 (fractions of the image)")
        if v < 0.0 or v > 1.0:
            raise RegEditError(field, f"{axis} = {v:g} is outside the image",
                               "keep x and y in 0..1 (fractions of the image, top-left origin)")
        out.append(v)
    return out[0], out[1]


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _check_polygon(points: tuple[Point, ...], field: str) -> None:
    n = len(points)
    if n == 4:
        # A perspective map needs a simple quad: edges 0-1 / 2-3 and 1-2 / 3-0 must not cross, and no
        # three vertices may lie on a line.
        for i in range(4):
            if abs(_cross(points[i], points[(i + 1) % 4], points[(i + 2) % 4])) < 2 * MIN_POLYGON_AREA:
                raise RegEditError(field, f"vertices {i}, {(i + 1) % 4} and {(i + 2) % 4} lie on one line",
                                   "move a vertex so the quad has four real corners")
        if _segments_cross(points[0], points[1], points[2], points[3]) or \
                _segments_cross(points[1], points[2], points[3], points[0]):
            raise RegEditError(field, "the quad crosses itself (a bow tie)",
                               "click the four vertices in order around the shape")
    area = 0.5 * abs(sum(points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1]
                         for i in range(n)))
    if area < MIN_POLYGON_AREA:
        raise RegEditError(field, "the polygon has no area (its points coincide or lie on one line)",
                           "spread the vertices apart")


def _segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    d1, d2 = _cross(a, b, c), _cross(a, b, d)
    d3, d4 = _cross(c, d, a), _cross(c, d, b)
    return d1 * d2 < 0 and d3 * d4 < 0
