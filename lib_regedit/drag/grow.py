"""Brush handles grown to the objects they cover (``grow_handles``, drag document version 2).

A round brush painted over a square leaves its corners outside the handle: RegionDrag neither clears
them nor moves them, so they stay behind at the handle and the object arrives with its corners cut
(on ShapesWorld, ``eval --drag``). The picture knows where its objects end: the superpixels LIME
snaps its region to (SLIC, Achanta et al. 2012, neighbours of one colour merged;
``lib_regedit/lime/superpixels.py``). A superpixel joins a brush handle when the brush covers at
least :data:`SHARE` of it (superpixel refinement of a coarse mask, as LIME's ``snap``), and only
within one brush radius of the strokes, so a background superpixel the brush grazes stays out and a
growth never runs far from what the user painted. The target grows with it: the cells whose source,
through the pair's own transform (the bounding boxes' scaling), lands in the grown handle
(``mapping.dense_mapping``), so the whole object arrives.

Polygon handles are the user's exact shapes (their corners define the warp) and are not grown.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..documents.drag import DragDocument, MaskRegion, Stroke
from .mapping import brush_mask

SHARE = 0.35  # a superpixel joins the handle when the brush covers this share of it (LIME's snap)
REACH = 1.0  # growth stays within this many brush radii of the strokes


def grown_handles(document: DragDocument, image: Image.Image, latent_hw: tuple[int, int],
                  enabled: bool | None = None) -> tuple:
    """Per pair, the bool mask its handle grows to (at the superpixels' resolution: ``WORK_CELL``
    pixels per latent cell), or None for a polygon handle or when growing is off (``enabled``;
    default: the document's ``grow_handles``)."""
    enabled = document.settings()["grow_handles"] if enabled is None else enabled
    if not enabled or not any(isinstance(p.handle, MaskRegion) for p in document.pairs):
        return (None,) * len(document.pairs)
    from ..lime.superpixels import superpixels

    labels = superpixels(image, latent_hw)
    return tuple(grow_brush(pair.handle, labels) if isinstance(pair.handle, MaskRegion) else None
                 for pair in document.pairs)


def grow_brush(handle: MaskRegion, labels: np.ndarray, share: float = SHARE, reach: float = REACH) -> np.ndarray:
    """The brush ``handle`` on the grid of ``labels`` (superpixel numbers) with every superpixel it
    covers by at least ``share`` added, within ``reach`` brush radii of its strokes."""
    height, width = labels.shape
    painted = brush_mask(handle, height, width)
    size = np.bincount(labels.ravel())
    covered = np.bincount(labels.ravel(), weights=painted.ravel().astype(np.float64), minlength=len(size))
    chosen = (covered / np.maximum(size, 1) >= share)[labels]
    wide = MaskRegion(tuple(Stroke(s.points, s.radius * (1 + reach)) for s in handle.strokes))
    return painted | (chosen & brush_mask(wide, height, width))
