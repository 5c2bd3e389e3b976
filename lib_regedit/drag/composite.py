"""The original image composited back outside the union of a drag's handles and targets (feathered),
so nothing outside the edit moves (RegionDrag)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from ..compositing import paste_back
from ..documents import DragDocument
from .mapping import dense_mapping

COMPOSITE_FEATHER = 0.02  # of the image width: the soft edge where the original is composited back


def composite_mask(document: DragDocument, width: int, height: int, feather: float = COMPOSITE_FEATHER) -> np.ndarray:
    """(H, W, 1) in [0, 1]: 1 over the union of handles and targets, feathered outwards."""
    m = dense_mapping(document, height, width)
    union = Image.fromarray(((m.handles | m.targets) * 255).astype(np.uint8))
    radius = max(1, round(feather * width))
    soft = union.filter(ImageFilter.MaxFilter(2 * radius + 1)).filter(ImageFilter.GaussianBlur(radius / 2))
    return np.maximum(np.asarray(soft, dtype=np.float32) / 255, np.asarray(union, dtype=np.float32) / 255)[..., None]


def composite(original: Image.Image, edited: Image.Image, document: DragDocument) -> Image.Image:
    """``edited`` inside the union of handles and targets, ``original`` outside, feathered; the
    original is resized to the edit's size first."""
    return paste_back(original, edited, composite_mask(document, *edited.size))
