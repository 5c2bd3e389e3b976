"""Dense mapping between a drag's handle and target regions (RegionDrag, Lu et al. 2024, "Dense
mapping between user-defined regions").

Every position inside a target region maps back to one position inside its handle region, so the
target is filled without holes: the transform is solved from target points to handle points and
applied to each target cell's centre.

- triangles (3 points): the affine transform through the three point pairs;
- quads (4 points): the perspective transform (homography) through the four pairs, solved here as
  the 8x8 linear system of the direct linear transform with ``h33 = 1`` (numpy's LU solve; a few
  lines, so no dependency);
- brush masks: the target's bounding box scaled onto the handle's, horizontally and vertically.

A brush handle may be grown to the objects it covers (``grow.py``): the grown cells join the handle,
and the target gains the cells whose source, through the same transform, lands in them.

Cells are those of a grid of ``height x width`` (the latent, or the image): a cell belongs to a
region when its centre does. When targets overlap, later pairs win. All pure functions on numpy
arrays; coordinates are image fractions with a top-left origin, as in the drag document.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..documents.drag import DragDocument, DragPair, MaskRegion, PolygonRegion
from ..errors import RegEditError


@dataclass(frozen=True)
class DenseMapping:
    """Flat cell indices on a ``height x width`` grid: ``target[i]`` takes its content from
    ``source[i]``. ``handles`` and ``targets`` are the union masks (height, width) of all pairs."""

    height: int
    width: int
    target: np.ndarray
    source: np.ndarray
    handles: np.ndarray
    targets: np.ndarray

    @staticmethod
    def from_sources(source_of: np.ndarray, handles: np.ndarray) -> "DenseMapping":
        """From ``source_of`` (height * width,): each cell's source cell, -1 where it is no target."""
        height, width = handles.shape
        target = np.flatnonzero(source_of >= 0)
        return DenseMapping(height, width, target, source_of[target], handles, (source_of >= 0).reshape(height, width))


def cell_centres(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of every cell centre as image fractions, each (height, width)."""
    ys, xs = np.meshgrid((np.arange(height) + 0.5) / height, (np.arange(width) + 0.5) / width, indexing="ij")
    return xs, ys


def polygon_mask(points, height: int, width: int) -> np.ndarray:
    """Cells whose centre lies inside the polygon (even-odd rule; any simple polygon)."""
    xs, ys = cell_centres(height, width)
    inside = np.zeros((height, width), dtype=bool)
    pts = [tuple(map(float, p)) for p in points]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1]):
        crosses = (y0 > ys) != (y1 > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x0 + (ys - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (xs < x_at)
    return inside


def brush_mask(region: MaskRegion, height: int, width: int) -> np.ndarray:
    """Cells within the brush radius of a stroke's polyline (radius: a fraction of the width, so the
    brush is round in pixels)."""
    xs, ys = cell_centres(height, width)
    px, py = xs * width, ys * height  # cell centres in pixels of this grid
    out = np.zeros((height, width), dtype=bool)
    for stroke in region.strokes:
        r = stroke.radius * width
        pts = [(x * width, y * height) for x, y in stroke.points]
        if len(pts) == 1:
            pts = pts * 2
        for (ax, ay), (bx, by) in zip(pts, pts[1:]):
            dx, dy = bx - ax, by - ay
            length2 = dx * dx + dy * dy
            t = np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0, 1) if length2 > 0 else 0.0
            out |= (px - (ax + t * dx)) ** 2 + (py - (ay + t * dy)) ** 2 <= r * r
    return out


def region_mask(region, height: int, width: int) -> np.ndarray:
    if isinstance(region, PolygonRegion):
        return polygon_mask(region.points, height, width)
    return brush_mask(region, height, width)


def affine_transform(src, dst) -> np.ndarray:
    """The 3x3 matrix A with A @ [x, y, 1] = [x', y', 1] for three point pairs ``src -> dst``."""
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    m = np.hstack([src, np.ones((3, 1))])
    solution = np.linalg.solve(m, dst)  # (3, 2): rows are the coefficients of x, y and 1
    return np.vstack([solution.T, [0.0, 0.0, 1.0]])


def perspective_transform(src, dst) -> np.ndarray:
    """The 3x3 homography H (h33 = 1) with H @ [x, y, 1] ~ [x', y', 1] for four point pairs: each
    pair gives x' (h31 x + h32 y + 1) = h11 x + h12 y + h13 and the same for y'."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    h = np.linalg.solve(np.array(rows), np.array(rhs))
    return np.append(h, 1.0).reshape(3, 3)


def apply_transform(matrix: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = matrix[2, 0] * xs + matrix[2, 1] * ys + matrix[2, 2]
    return ((matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]) / w,
            (matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]) / w)


def pair_sources(pair: DragPair, xs: np.ndarray, ys: np.ndarray, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """Handle positions (fractions) of target positions ``xs, ys`` for one pair."""
    if isinstance(pair.handle, MaskRegion):
        hx0, hy0, hx1, hy1 = pair.handle.bbox(aspect)
        tx0, ty0, tx1, ty1 = pair.target.bbox(aspect)
        sx = (hx1 - hx0) / max(tx1 - tx0, 1e-9)
        sy = (hy1 - hy0) / max(ty1 - ty0, 1e-9)
        return hx0 + (xs - tx0) * sx, hy0 + (ys - ty0) * sy
    solve = affine_transform if len(pair.target.points) == 3 else perspective_transform
    return apply_transform(solve(pair.target.points, pair.handle.points), xs, ys)


def sample_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A bool mask at any resolution read at the cell centres of a ``height x width`` grid."""
    xs, ys = cell_centres(height, width)
    mh, mw = mask.shape
    return mask[np.minimum((ys * mh).astype(np.int64), mh - 1), np.minimum((xs * mw).astype(np.int64), mw - 1)]


def dense_mapping(document: DragDocument, height: int, width: int, field: str = "drag", grown=None) -> DenseMapping:
    """Every target cell of every pair and the handle cell it copies from, on a ``height x width``
    grid; later pairs win where targets overlap. Source positions round to the nearest cell.
    ``grown``: per pair, a bool mask (any resolution) the handle grows by, or None (``grow.py``)."""
    xs, ys = cell_centres(height, width)
    source_of = np.full(height * width, -1, dtype=np.int64)
    handles = np.zeros((height, width), dtype=bool)
    aspect = width / height
    for i, pair in enumerate(document.pairs):
        handle = region_mask(pair.handle, height, width)
        target = region_mask(pair.target, height, width)
        extra = None if grown is None or grown[i] is None else sample_mask(grown[i], height, width)
        if extra is not None:
            target |= _reaching(pair, extra & ~handle, xs, ys, aspect)  # what the growth adds, moved
            handle |= extra
        handles |= handle
        if not target.any():
            continue  # smaller than one cell at this resolution
        try:
            sx, sy = pair_sources(pair, xs[target], ys[target], aspect)
        except np.linalg.LinAlgError:
            raise RegEditError(f"pairs[{i}]", "the handle and target points admit no transform (three of them "
                                              "lie on one line)", "move the points so no three are in a line") from None
        if not (np.isfinite(sx).all() and np.isfinite(sy).all()):
            raise RegEditError(f"pairs[{i}]", "the target maps to infinity (a folded quad)",
                               "order the target's points as the handle's, going round the same way")
        col = np.clip(np.floor(sx * width), 0, width - 1).astype(np.int64)
        row = np.clip(np.floor(sy * height), 0, height - 1).astype(np.int64)
        source_of[np.flatnonzero(target)] = row * width + col
    return DenseMapping.from_sources(source_of, handles)


def _reaching(pair: DragPair, handle: np.ndarray, xs: np.ndarray, ys: np.ndarray, aspect: float) -> np.ndarray:
    """The cells whose source through ``pair``'s transform lies inside the image, in ``handle``."""
    height, width = handle.shape
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        try:
            sx, sy = pair_sources(pair, xs, ys, aspect)
        except np.linalg.LinAlgError:
            return np.zeros_like(handle)  # dense_mapping names the pair
        inside = np.isfinite(sx) & np.isfinite(sy) & (sx >= 0) & (sx < 1) & (sy >= 0) & (sy < 1)
    col = np.clip(np.floor(np.where(inside, sx, 0) * width), 0, width - 1).astype(np.int64)
    row = np.clip(np.floor(np.where(inside, sy, 0) * height), 0, height - 1).astype(np.int64)
    return inside & handle[row, col]
