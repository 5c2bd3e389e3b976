"""What an edit leaves behind where it filled: a *seam* and a *leftover* (ShapesWorld evals).

An edit that removes an object, drags it away, or repaints a box must fill that area so that it
matches the picture around it. Two figures, each over a fill area (a bool mask: a removed object's
box, a drag's vacated handle, a picture edit's box):

- **seam**: the largest channel difference between the mean colour of the fill's background pixels
  and that of the background pixels in a ring around it, over 255. A cream rectangle on white scores
  about 0.05; a fill the eye cannot find scores below 0.02. Object pixels (the detector's saturated
  colours, with their anti-aliased edge) are left out on both sides, so an object the edit adds in the box, or a kept object in the
  ring, does not count as a seam.
- **leftover**: the share of the fill's pixels that still carry the removed or dragged object's
  colour (the detector's colour labels); 0 when nothing of it is left.

The ring is the background within ``RING`` of the image side beyond every area the edit may change
(``changed``: the fill and its margin).
"""

from __future__ import annotations

import numpy as np

from ..shapesworld.data import COLOURS
from .detector import colour_labels, to_array

RING = 0.08  # of the image side: how far around the fill its surroundings are read
EDGE = 2 / 64  # of the image side: an object's anti-aliased edge, left out with the object


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """``mask`` dilated by a square of ``pixels`` on each side."""
    from scipy import ndimage

    if pixels <= 0 or not mask.any():
        return mask.copy()
    return ndimage.binary_dilation(mask, structure=np.ones((3, 3), dtype=bool), iterations=pixels)


def ring(fill: np.ndarray, changed: np.ndarray | None = None, ring: float = RING) -> np.ndarray:
    """The pixels within ``ring`` of the image side beyond ``changed`` (the fill and whatever else
    the edit may change; default: the fill itself)."""
    h, w = fill.shape
    changed = fill if changed is None else (changed | fill)
    return grow(changed, max(1, int(round(ring * max(h, w))))) & ~changed


def seam(image, fill: np.ndarray, changed: np.ndarray | None = None, edge: int | None = None) -> float:
    """The seam figure of ``fill`` in ``image`` (module docstring); NaN when the fill or its ring has
    no background pixel. ``edge``: object pixels are grown by this many pixels before they are left
    out, so an object's anti-aliased edge (a blend of its colour and the background's, below the
    detector's saturation) does not count as background: a box that holds an object scores 0.06 to
    0.5 on the untouched picture with 0, and 0 to 0.004 with 1. Default: ``EDGE`` of the image side."""
    arr = to_array(image).astype(np.float64)
    h, w = fill.shape
    if edge is None:
        edge = max(1, int(round(EDGE * max(h, w))))
    background = ~grow(colour_labels(arr.astype(np.uint8)) >= 0, edge)  # an object's soft edge is not background
    inside = fill & background
    around = ring(fill, changed) & background
    if not inside.any() or not around.any():
        return float("nan")
    return float(np.abs(arr[inside].mean(0) - arr[around].mean(0)).max() / 255.0)


def leftover(image, fill: np.ndarray, colour: str) -> float:
    """The share of ``fill``'s pixels labelled ``colour`` in ``image``."""
    if not fill.any():
        return 0.0
    labels = colour_labels(image)
    return float((labels[fill] == list(COLOURS).index(colour)).mean())
