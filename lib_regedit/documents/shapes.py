"""The shape vocabulary shared by the documents: polygons and brush strokes, validated here.

The drag document's handles and targets and a region document's ``shape`` are written the same way.
Coordinates are fractions of the image with a top-left origin (``x`` of the width, ``y`` of the height)::

    {"type": "polygon", "points": [[0.1, 0.1], [0.45, 0.1], [0.3, 0.4]]}
    {"type": "mask", "strokes": [{"points": [[0.2, 0.6], [0.3, 0.65]], "radius": 0.03}]}

- ``polygon``: its vertices in order. A region's polygon takes any number from 3 (the drag document
  allows 3 or 4, the corners its mappings need). A polygon that crosses itself covers every point
  it winds around (the nonzero rule): a lasso whose loops cross fills all of them and leaves no holes.
- ``mask``: brush strokes, each a polyline painted with a round brush of ``radius`` (a fraction of
  the image width, so the brush is round in pixels).

Each check raises :class:`~lib_regedit.errors.RegEditError` naming the field (``...shape.points[2]``)
and the fix. Where the shapes become masks: ``lib_regedit/shape_masks.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Union

from ..errors import RegEditError
from .fields import get_list, get_number, get_string, reject_unknown, type_name

MAX_STROKES = 64
MAX_STROKE_POINTS = 2000
MAX_POLYGON_POINTS = 1000
MAX_TOTAL_POINTS = 20000
MAX_RADIUS = 0.5
MIN_POLYGON_AREA = 1e-6  # as a fraction of the image area: about a quarter pixel at 512x512
SHAPE_TYPES = ("polygon", "mask")
POLYGON_FIELDS = ("type", "points")
MASK_FIELDS = ("type", "strokes")
STROKE_FIELDS = ("points", "radius")
SHAPE_EXAMPLE = '{"type": "polygon", "points": [[x, y], [x, y], [x, y]]}'

Point = tuple[float, float]


@dataclass(frozen=True)
class PolygonRegion:
    """A polygon, its vertices in order, in image fractions."""

    points: tuple[Point, ...]
    type: str = "polygon"

    def bbox(self, aspect: float = 1.0) -> tuple[float, float, float, float]:
        """Bounding box (x0, y0, x1, y1) in fractions."""
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


Shape = Union[PolygonRegion, MaskRegion]


class PointBudget:
    """The points a whole document may hold (``MAX_TOTAL_POINTS``), spent as its shapes are read."""

    def __init__(self, total: int = MAX_TOTAL_POINTS):
        self.left = total

    def spend(self, n: int, field: str) -> None:
        self.left -= n
        if self.left < 0:
            raise RegEditError(field, f"the document has more than {MAX_TOTAL_POINTS} points in all",
                               "use fewer polygon vertices or fewer, shorter brush strokes")


def path(field: str, key: str) -> str:
    """``field`` and ``key`` joined as a JSON path (``a.b``, ``a[1]``)."""
    if not field:
        return key
    return f"{field}{key}" if key.startswith("[") else f"{field}.{key}"


def parse_shape(obj: Any, field: str, budget: PointBudget, polygon_points: tuple[int, ...] | None = None,
                polygon_hint: str = "click at least 3 vertices around the area", polygon_check=None) -> Shape:
    """A polygon or brush-stroke shape at ``field``. ``polygon_points``: the vertex counts allowed
    (``None``: any from 3); ``polygon_hint``: the fix for a wrong count; ``polygon_check(points,
    field)``: the caller's own checks of the vertices, before the area's."""
    if not isinstance(obj, dict):
        raise RegEditError(field, f"expected an object, got {type_name(obj)}",
                           'write {"type": "polygon", "points": [...]} or {"type": "mask", "strokes": [...]}')
    kind = get_string(obj, "type", field, required=True, choices=SHAPE_TYPES)
    if kind == "polygon":
        return parse_polygon(obj, field, budget, polygon_points, polygon_hint, polygon_check)
    reject_unknown(obj, MASK_FIELDS, field)
    raw_strokes = get_list(obj, "strokes", field, max_items=MAX_STROKES, required=True)
    if not raw_strokes:
        raise RegEditError(path(field, "strokes"), "is empty", "paint at least one brush stroke")
    strokes = tuple(parse_stroke(s, path(field, f"strokes[{i}]"), budget) for i, s in enumerate(raw_strokes))
    return MaskRegion(strokes=strokes)


def parse_polygon(obj: dict, field: str, budget: PointBudget, counts: tuple[int, ...] | None = None,
                  hint: str = "click at least 3 vertices around the area", check=None) -> PolygonRegion:
    reject_unknown(obj, POLYGON_FIELDS, field)
    raw = get_list(obj, "points", field, max_items=MAX_POLYGON_POINTS, required=True)
    if (counts is not None and len(raw) not in counts) or len(raw) < 3:
        wanted = " or ".join(str(n) for n in counts) if counts is not None else "at least 3"
        raise RegEditError(path(field, "points"), f"a polygon needs {wanted} points, got {len(raw)}", hint)
    points = tuple(parse_point(p, path(field, f"points[{i}]")) for i, p in enumerate(raw))
    if check is not None:
        check(points, path(field, "points"))
    if hull_area(points) < MIN_POLYGON_AREA:
        raise RegEditError(path(field, "points"), "the polygon has no area (its points coincide or lie on one line)",
                           "spread the vertices apart")
    budget.spend(len(points), field)
    return PolygonRegion(points=points)


def parse_stroke(obj: Any, field: str, budget: PointBudget) -> Stroke:
    if not isinstance(obj, dict):
        raise RegEditError(field, f"expected an object, got {type_name(obj)}",
                           'write {"points": [[x, y], ...], "radius": 0.02}')
    reject_unknown(obj, STROKE_FIELDS, field)
    radius = get_number(obj, "radius", field, required=True, lo=0.0, hi=MAX_RADIUS, lo_open=True)
    raw = get_list(obj, "points", field, max_items=MAX_STROKE_POINTS, required=True)
    if not raw:
        raise RegEditError(path(field, "points"), "is empty", "give the stroke at least one point")
    budget.spend(len(raw), field)
    points = tuple(parse_point(p, path(field, f"points[{i}]")) for i, p in enumerate(raw))
    return Stroke(points=points, radius=radius)


def parse_point(value: Any, field: str) -> Point:
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


def cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def hull_area(points) -> float:
    """The area of the points' convex hull: 0 when they coincide or lie on one line. (A polygon's own
    signed area can be 0 for a bow tie whose loops cancel, which still covers an area.)"""
    pts = sorted(set(points))
    if len(pts) < 3:
        return 0.0
    lower: list[Point] = []
    upper: list[Point] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = lower[:-1] + upper[:-1]
    return 0.5 * abs(sum(hull[i][0] * hull[(i + 1) % len(hull)][1] - hull[(i + 1) % len(hull)][0] * hull[i][1]
                         for i in range(len(hull))))


def segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    d1, d2 = cross(a, b, c), cross(a, b, d)
    d3, d4 = cross(c, d, a), cross(c, d, b)
    return d1 * d2 < 0 and d3 * d4 < 0
