"""Region masks at any resolution and MultiDiffusion's fusion weights.

All pure functions on small tensors. Boxes are fractions of the image with a top-left origin.
Every region mask comes from :func:`area_mask` (:func:`region_mask` for a document's region): a box,
or a shape (polygon, brush strokes, a mask picture's colour) rasterised by ``lib_regedit/shape_masks.py``.
"""

from __future__ import annotations

import math

import torch


def layer_hw(latent_hw: tuple[int, int], tokens: int) -> tuple[int, int]:
    """The (h, w) of an attention layer with ``tokens`` positions inside a UNet fed ``latent_hw``.

    The UNet halves the latent with stride-2 convolutions (padding 1), so each level is
    ``ceil(size / 2)`` of the one above; this also covers sizes that are not powers of two.
    """
    h, w = latent_hw
    for _ in range(8):
        if h * w == tokens:
            return h, w
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    # Not a level of this latent (a layer run at another resolution): fall back to the aspect ratio.
    ratio = latent_hw[1] / latent_hw[0]
    h = max(1, round(math.sqrt(tokens / ratio)))
    if tokens % h:
        raise ValueError(f"cannot map {tokens} attention positions onto a latent of {latent_hw}")
    return h, tokens // h


def map_resolution(latent_hw: tuple[int, int], downscale: int, available) -> tuple[int, int]:
    """Where token maps are read: ``latent / downscale`` ("16×16" for SD's 64×64 latent at 4), or, when
    the UNet has no layer there, the available (h, w) of the same aspect closest to it in area (the
    finer one on a tie)."""
    target = (math.ceil(latent_hw[0] / downscale), math.ceil(latent_hw[1] / downscale))
    available = list(available)
    candidates = [hw for hw in available if hw[0] * latent_hw[1] == hw[1] * latent_hw[0]] or available
    if not candidates or target in candidates:
        return target
    area = target[0] * target[1]
    return min(candidates, key=lambda hw: (abs(math.log(hw[0] * hw[1] / area)), -hw[0]))


def _axis_profile(start: float, length: float, feather: float, cells: int) -> torch.Tensor:
    """Per-cell weight along one axis: the box's coverage of each cell, softened by a linear ramp
    ``feather`` wide (a fraction of the image) centred on each edge. Coverage keeps a box that is
    smaller than one cell from vanishing at coarse layers."""
    edges = torch.arange(cells + 1, dtype=torch.float64) / cells
    lo, hi = edges[:-1], edges[1:]
    coverage = ((torch.minimum(hi, torch.tensor(start + length)) - torch.maximum(lo, torch.tensor(start)))
                .clamp(min=0) * cells)
    if feather <= 0:
        return coverage.float()
    centre = (lo + hi) / 2
    inside = torch.minimum(centre - start, start + length - centre)  # signed distance to the nearest edge
    ramp = (inside / feather + 0.5).clamp(0, 1)
    return torch.maximum(coverage, ramp).clamp(max=1).float()


def grown_box(x: float, y: float, w: float, h: float, margin: float) -> tuple[float, float, float, float]:
    """The box (x, y, w, h, fractions of the image) grown by ``margin`` on every side, clipped to the image."""
    x0, y0 = max(0.0, x - margin), max(0.0, y - margin)
    return x0, y0, min(1.0, x + w + margin) - x0, min(1.0, y + h + margin) - y0


def box_mask(x: float, y: float, w: float, h: float, height: int, width: int, feather: float = 0.0) -> torch.Tensor:
    """A (height, width) mask in [0, 1] for the box, with soft edges ``feather`` wide."""
    return _axis_profile(y, h, feather, height)[:, None] * _axis_profile(x, w, feather, width)[None, :]


def box_coverage(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(..., 4) boxes (x, y, w, h fractions) to (..., height, width) masks: each cell's covered share,
    as :func:`box_mask` with no feather, for many boxes at once (training builds them every step)."""

    def axis(start, length, cells):
        edges = torch.arange(cells + 1, dtype=torch.float32) / cells
        start, end = start[..., None], (start + length)[..., None]
        return ((torch.minimum(edges[1:], end) - torch.maximum(edges[:-1], start)).clamp(min=0) * cells).clamp(max=1)

    x, y, w, h = boxes.float().unbind(-1)
    return axis(y, h, height)[..., :, None] * axis(x, w, width)[..., None, :]


def area_mask(box, shape, height: int, width: int, feather: float = 0.0) -> torch.Tensor:
    """A (height, width) mask in [0, 1] of a region's area: ``shape`` when it has one (a polygon, brush
    strokes or a mask picture's colour), else the box (x, y, w, h); soft edges ``feather`` wide."""
    if shape is None:
        return box_mask(*box, height, width, feather)
    from .shape_masks import shape_mask

    return shape_mask(shape, height, width, feather)


def region_mask(region, height: int, width: int, feather: float | None = None) -> torch.Tensor:
    """:func:`area_mask` of anything with ``x, y, w, h``, ``shape`` (optional) and ``feather``
    (``feather`` given here takes its place)."""
    return area_mask((region.x, region.y, region.w, region.h), getattr(region, "shape", None), height, width,
                     region.feather if feather is None else feather)


def grown_area(region, height: int, width: int, margin: float, feather: float = 0.0) -> torch.Tensor:
    """The region's area grown by ``margin`` (a fraction of the image) on every side, with soft edges
    ``feather`` wide: a box grows as a box (:func:`grown_box`), a shape by its distance (each cell's
    share of the grown shape estimated from the distance at its centre, exact for straight edges along
    the grid)."""
    shape = getattr(region, "shape", None)
    if shape is None:
        return box_mask(*grown_box(region.x, region.y, region.w, region.h, margin), height, width, feather)
    from .shape_masks import shape_distance, shape_mask

    distance = shape_distance(shape, height, width) + margin  # to the grown outline, in image widths
    coverage = torch.maximum((distance * width + 0.5).clamp(0, 1), shape_mask(shape, height, width))
    if feather <= 0:
        return coverage
    return torch.maximum(coverage, (distance / feather + 0.5).clamp(0, 1))


def region_masks(regions, height: int, width: int) -> torch.Tensor:
    """Stack of masks (R, height, width) for object regions (objects with ``x, y, w, h, feather`` and
    optionally ``shape``)."""
    if not regions:
        return torch.zeros(0, height, width)
    return torch.stack([region_mask(r, height, width) for r in regions])


def fusion_weights(masks: torch.Tensor, region_weights, background_weight: float,
                   whole_weight: float, eps: float = 1e-4) -> torch.Tensor:
    """MultiDiffusion's normalised pixel-wise weights (Bar-Tal et al. 2023; MRGD Eq. 1).

    Sources are the R object regions, then the background region r_bg and the whole-image region
    r_total. r_bg weighs ``background_weight`` where no box covers the image (1 - the union of the
    masks); r_total weighs ``whole_weight`` everywhere (0 until it joins after T_total). A small
    ``eps`` on r_bg keeps the sum positive. Returns (R + 2, h, w) weights that sum to 1 per pixel.
    """
    r, h, w = masks.shape
    weights = torch.as_tensor(list(region_weights), dtype=masks.dtype).reshape(r, 1, 1)
    regions = masks * weights
    union = masks.amax(0) if r else torch.zeros(h, w, dtype=masks.dtype)
    background = background_weight * (1 - union) + eps
    whole = torch.full((h, w), float(whole_weight), dtype=masks.dtype)
    stacked = torch.cat([regions, background[None], whole[None]], 0)
    return stacked / stacked.sum(0, keepdim=True)


def mask_at(mask: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """A boolean mask resized (nearest) to ``hw``."""
    if tuple(mask.shape) == tuple(hw):
        return mask.bool()
    return torch.nn.functional.interpolate(mask[None, None].float(), size=tuple(hw), mode="nearest")[0, 0] > 0.5
