"""The original image composited back outside the union of a drag's handles and targets (feathered),
so nothing outside the edit moves (RegionDrag). With ``match_surroundings`` (drag document version 2)
the paste is seamless (Poisson image editing, ``lib_regedit/compositing.py``): the edit's colours meet
the original's along the boundary, so a fill a few levels off the background leaves no patch."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from ..compositing import paste_back, seamless_paste
from ..documents import DragDocument
from .mapping import dense_mapping

COMPOSITE_FEATHER = 0.02  # of the image width: the soft edge where the original is composited back


def composite_mask(document: DragDocument, width: int, height: int, feather: float = COMPOSITE_FEATHER,
                   grown=None) -> np.ndarray:
    """(H, W, 1) in [0, 1]: 1 over the union of handles and targets (``grown``: the handles' growth,
    ``grow.py``), feathered outwards."""
    m = dense_mapping(document, height, width, grown=grown)
    union = Image.fromarray(((m.handles | m.targets) * 255).astype(np.uint8))
    radius = max(1, round(feather * width))
    soft = union.filter(ImageFilter.MaxFilter(2 * radius + 1)).filter(ImageFilter.GaussianBlur(radius / 2))
    return np.maximum(np.asarray(soft, dtype=np.float32) / 255, np.asarray(union, dtype=np.float32) / 255)[..., None]


def composite(original: Image.Image, edited: Image.Image, document: DragDocument, grown=None,
              seamless: bool | None = None) -> Image.Image:
    """``edited`` inside the union of handles and targets, ``original`` outside, feathered; the
    original is resized to the edit's size first. ``seamless``: Poisson-blended (default: the
    document's ``match_surroundings``)."""
    mask = composite_mask(document, *edited.size, grown=grown)
    if seamless is None:
        seamless = document.settings()["match_surroundings"]
    return (seamless_paste if seamless else paste_back)(original, edited, mask)
