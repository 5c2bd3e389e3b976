"""Handles grown to the objects they cover (``grow_handles``, drag document version 2).

A round brush painted over a square leaves its corners outside the handle: RegionDrag neither clears
them nor moves them, so they stay behind at the handle and the object arrives with its corners cut
(on ShapesWorld, ``eval --drag``); a quad drawn across a circle leaves the rest of the circle. The
picture knows where its objects end: the superpixels LIME snaps its region to (SLIC, Achanta et al.
2012, neighbours of one colour merged; ``lib_regedit/lime/superpixels.py``). A superpixel joins a
handle when the handle covers at least :data:`SHARE` of it (superpixel refinement of a coarse mask,
as LIME's ``snap``), and only near the handle (:data:`REACH`: one brush radius of a brush's strokes,
half a polygon's shorter side), so a background superpixel the handle grazes stays out and a
growth never runs far from what the user drew. The target grows with it: the cells whose source,
through the pair's own transform (the bounding boxes' scaling, the affine or perspective map), lands
in the grown handle (``mapping.dense_mapping``), so the whole object arrives. The polygon's corners
still define the warp.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..documents.drag import DragDocument, MaskRegion, PolygonRegion, Stroke
from .mapping import brush_mask, polygon_mask

SHARE = 0.35  # a superpixel joins the handle when the handle covers this share of it (LIME's snap)
REACH = 1.0  # growth stays within this many brush radii of the strokes
POLYGON_REACH = 0.5  # growth stays within this share of a polygon's bounding box's shorter side


def grown_handles(document: DragDocument, image: Image.Image, latent_hw: tuple[int, int],
                  enabled: bool | None = None) -> tuple:
    """Per pair, the bool mask its handle grows to (at the superpixels' resolution: ``WORK_CELL``
    pixels per latent cell), or all None when growing is off (``enabled``; default: the document's
    ``grow_handles``)."""
    enabled = document.settings()["grow_handles"] if enabled is None else enabled
    if not enabled or not document.pairs:
        return (None,) * len(document.pairs)
    from ..lime.superpixels import superpixels

    labels = superpixels(image, latent_hw)
    return tuple(grow_brush(pair.handle, labels) if isinstance(pair.handle, MaskRegion)
                 else grow_polygon(pair.handle, labels) for pair in document.pairs)


def grow_brush(handle: MaskRegion, labels: np.ndarray, share: float = SHARE, reach: float = REACH) -> np.ndarray:
    """The brush ``handle`` on the grid of ``labels`` (superpixel numbers) with every superpixel it
    covers by at least ``share`` added, within ``reach`` brush radii of its strokes."""
    height, width = labels.shape
    painted = brush_mask(handle, height, width)
    wide = MaskRegion(tuple(Stroke(s.points, s.radius * (1 + reach)) for s in handle.strokes))
    return painted | (covered_superpixels(painted, labels, share) & brush_mask(wide, height, width))


def grow_polygon(handle: PolygonRegion, labels: np.ndarray, share: float = SHARE,
                 reach: float = POLYGON_REACH) -> np.ndarray:
    """The polygon ``handle`` on the grid of ``labels`` with every superpixel it covers by at least
    ``share`` added, within ``reach`` of its bounding box's shorter side around it."""
    from scipy import ndimage

    height, width = labels.shape
    drawn = polygon_mask(handle.points, height, width)
    x0, y0, x1, y1 = handle.bbox()
    pixels = max(1, round(reach * min((x1 - x0) * width, (y1 - y0) * height)))
    near = ndimage.binary_dilation(drawn, structure=np.ones((3, 3), dtype=bool), iterations=pixels)
    return drawn | (covered_superpixels(drawn, labels, share) & near)


def covered_superpixels(mask: np.ndarray, labels: np.ndarray, share: float) -> np.ndarray:
    """The pixels of every superpixel ``mask`` covers by at least ``share``."""
    size = np.bincount(labels.ravel())
    covered = np.bincount(labels.ravel(), weights=mask.ravel().astype(np.float64), minlength=len(size))
    return (covered / np.maximum(size, 1) >= share)[labels]
