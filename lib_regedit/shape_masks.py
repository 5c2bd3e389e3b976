"""Shapes to masks at any resolution: the one rasteriser of polygons, brush strokes and mask pictures.

A shape's mask on an (h, w) grid of cells is each cell's covered share (sampled on a grid of
``samples × samples`` points per cell, so a shape smaller than a cell does not vanish), softened as a
box's is (``masks.box_mask``): the weight at a cell centre rises linearly across a band ``feather``
wide (a fraction of the image width) centred on the shape's outline, and the mask is the larger of
the two. Distances are measured with cells square in pixels (``y`` scaled by ``h / w``), so a brush's
disc stays round on any aspect.

- A polygon covers what it winds around (the nonzero rule): a self-crossing lasso fills every loop.
- A brush mask covers every point within ``radius`` of a stroke's polyline.
- A mask picture's area (``ColourArea``) is area-averaged from the picture's labels to the grid
  (nearest for a grid finer than the picture); its signed distance is the picture's Euclidean
  distance transform.

Results are cached per (shape, h, w, feather): a generation asks for the same few resolutions at every
step. Grids over ``MAX_CELLS`` cells (pixel-resolution masks of large images) are computed at that
many cells (cached) and resized bilinearly (not cached).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from .documents.mask_picture import ColourArea
from .documents.shapes import MaskRegion, PolygonRegion

MAX_CELLS = 256 * 256
CHUNK = 1 << 20  # points × edges per batch of distance computations
MAX_PICTURE_DISTANCE_SIDE = 1024  # a mask picture's distance transform is taken at most this large


def shape_mask(shape, height: int, width: int, feather: float = 0.0) -> torch.Tensor:
    """The (height, width) mask in [0, 1] of a polygon, brush mask or mask-picture area."""
    height, width = int(height), int(width)
    if height * width > MAX_CELLS:
        return _resized(_cached(shape, *_reduced(height, width), float(feather)), height, width).clamp(0, 1)
    return _cached(shape, height, width, float(feather)).clone()


def _reduced(height: int, width: int) -> tuple[int, int]:
    """A grid of at most ``MAX_CELLS`` cells with the aspect of (height, width)."""
    scale = math.sqrt(MAX_CELLS / (height * width))
    return max(1, int(height * scale)), max(1, int(width * scale))


def _resized(grid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return torch.nn.functional.interpolate(grid[None, None], size=(height, width), mode="bilinear",
                                           align_corners=False)[0, 0]


@functools.lru_cache(maxsize=256)
def _cached(shape, height: int, width: int, feather: float) -> torch.Tensor:
    if isinstance(shape, ColourArea):
        return _picture_mask(shape, height, width, feather)
    samples = max(1, min(4, 256 // max(height, width)))
    coverage = _coverage(shape, height, width, samples)
    if coverage.max() <= 0:  # thinner than the samples: keep a sliver where it is
        x0, y0, x1, y1 = shape.bbox()
        row = min(height - 1, int((y0 + y1) / 2 * height))
        col = min(width - 1, int((x0 + x1) / 2 * width))
        coverage[row, col] = 1.0 / samples ** 2
    if feather <= 0:
        return coverage.float()
    ramp = (shape_distance(shape, height, width) / feather + 0.5).clamp(0, 1)
    return torch.maximum(coverage, ramp).float()


def shape_distance(shape, height: int, width: int) -> torch.Tensor:
    """(height, width): the signed distance from each cell centre to the shape's outline, in widths
    of the image (positive inside); over ``MAX_CELLS`` cells, resized bilinearly from that many."""
    height, width = int(height), int(width)
    if height * width > MAX_CELLS:
        return _resized(_distance(shape, *_reduced(height, width)), height, width)
    return _distance(shape, height, width).clone()


@functools.lru_cache(maxsize=64)
def _distance(shape, height: int, width: int) -> torch.Tensor:
    if isinstance(shape, ColourArea):
        sd = torch.from_numpy(_picture_distance(shape))
        rows = ((torch.arange(height) + 0.5) * sd.shape[0] / height).long().clamp(max=sd.shape[0] - 1)
        cols = ((torch.arange(width) + 0.5) * sd.shape[1] / width).long().clamp(max=sd.shape[1] - 1)
        return sd[rows][:, cols].float()
    return signed_distance(shape, *_centres(height, width), aspect=height / width).reshape(height, width).float()


def _centres(height: int, width: int, samples: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample points (u, v) row-major: ``samples²`` per cell at the centres of its sub-cells; ``u`` a
    fraction of the width, ``v`` the height fraction scaled to width units (``y · h / w``)."""
    ys = (torch.arange(height * samples, dtype=torch.float64) + 0.5) / (height * samples)
    xs = (torch.arange(width * samples, dtype=torch.float64) + 0.5) / (width * samples)
    v, u = torch.meshgrid(ys * height / width, xs, indexing="ij")
    return u.reshape(-1), v.reshape(-1)


def _coverage(shape, height: int, width: int, samples: int) -> torch.Tensor:
    u, v = _centres(height, width, samples)
    inside = (signed_distance(shape, u, v, aspect=height / width) > 0).double()
    return inside.reshape(height, samples, width, samples).mean((1, 3))


def signed_distance(shape, u: torch.Tensor, v: torch.Tensor, aspect: float) -> torch.Tensor:
    """Distance from each point (u, v) to the shape's outline in width units: positive inside,
    negative outside. ``v`` is in width units (``y · aspect``, ``aspect`` the image's height / width)."""
    if isinstance(shape, PolygonRegion):
        pts = torch.tensor(shape.points, dtype=torch.float64)
        pts = torch.stack([pts[:, 0], pts[:, 1] * aspect], 1)
        a, b = pts, pts.roll(-1, 0)
        distance = _segments_distance(u, v, a, b)
        return torch.where(_winding(u, v, a, b) != 0, distance, -distance)
    if isinstance(shape, MaskRegion):
        best = torch.full_like(u, -math.inf)
        for stroke in shape.strokes:
            pts = torch.tensor(stroke.points, dtype=torch.float64)
            pts = torch.stack([pts[:, 0], pts[:, 1] * aspect], 1)
            a = pts[:-1] if len(pts) > 1 else pts
            b = pts[1:] if len(pts) > 1 else pts
            best = torch.maximum(best, stroke.radius - _segments_distance(u, v, a, b))
        return best
    raise TypeError(f"not a shape: {type(shape).__name__}")


def _chunks(n_points: int, n_edges: int):
    step = max(1, CHUNK // max(1, n_edges))
    for start in range(0, n_points, step):
        yield slice(start, min(n_points, start + step))


def _segments_distance(u, v, a, b) -> torch.Tensor:
    """The distance from each point to the nearest segment a[i]–b[i]."""
    out = torch.empty_like(u)
    d = b - a
    length2 = (d ** 2).sum(1).clamp(min=1e-18)
    for part in _chunks(len(u), len(a)):
        px = u[part, None] - a[None, :, 0]
        py = v[part, None] - a[None, :, 1]
        t = ((px * d[None, :, 0] + py * d[None, :, 1]) / length2).clamp(0, 1)
        out[part] = ((px - t * d[None, :, 0]) ** 2 + (py - t * d[None, :, 1]) ** 2).amin(1).sqrt()
    return out


def _winding(u, v, a, b) -> torch.Tensor:
    """The polygon's winding number around each point (edges a[i] -> b[i])."""
    out = torch.empty(len(u), dtype=torch.int64)
    for part in _chunks(len(u), len(a)):
        pu, pv = u[part, None], v[part, None]
        left = (b[None, :, 0] - a[None, :, 0]) * (pv - a[None, :, 1]) - (pu - a[None, :, 0]) * (b[None, :, 1] - a[None, :, 1])
        up = (a[None, :, 1] <= pv) & (b[None, :, 1] > pv) & (left > 0)
        down = (a[None, :, 1] > pv) & (b[None, :, 1] <= pv) & (left < 0)
        out[part] = up.sum(1) - down.sum(1)
    return out


def _picture_mask(area: ColourArea, height: int, width: int, feather: float) -> torch.Tensor:
    region = torch.from_numpy(area.picture.region(area.colour).astype(np.float32))
    coverage = torch.nn.functional.adaptive_avg_pool2d(region[None, None], (height, width))[0, 0]
    if feather <= 0:
        return coverage
    return torch.maximum(coverage, (shape_distance(area, height, width) / feather + 0.5).clamp(0, 1))


@functools.lru_cache(maxsize=16)
def _picture_distance(area: ColourArea) -> np.ndarray:
    """Signed distance to the area's outline at each picture pixel (a larger picture's every
    ``step``-th pixel, so at most ``MAX_PICTURE_DISTANCE_SIDE`` a side), in picture widths."""
    from scipy.ndimage import distance_transform_edt

    step = max(1, math.ceil(max(area.picture.width, area.picture.height) / MAX_PICTURE_DISTANCE_SIDE))
    region = area.picture.region(area.colour)[::step, ::step]
    return ((distance_transform_edt(region) - distance_transform_edt(~region)) * step
            / area.picture.width).astype(np.float32)


def inner_disc(shape, height: int, width: int) -> tuple[float, float, float]:
    """The largest disc inside the shape, found on an (height, width) grid: its centre (x, y as
    fractions of the image) and radius (a fraction of the width)."""
    if isinstance(shape, ColourArea):
        sd = torch.from_numpy(_picture_distance(shape))
        row, col = divmod(int(sd.argmax()), sd.shape[1])
        return (col + 0.5) / sd.shape[1], (row + 0.5) / sd.shape[0], max(0.0, float(sd.max()))
    u, v = _centres(height, width)
    sd = signed_distance(shape, u, v, aspect=height / width)
    index = int(sd.argmax())
    return float(u[index]), float(v[index]) * width / height, max(0.0, float(sd[index]))
