"""A classical colour-and-shape detector for ShapesWorld images (no learned weights).

1. A pixel belongs to an object when it is saturated (HSV saturation ``(max - min) / max`` above
   ``SATURATION``); the ShapesWorld backgrounds are near-grey (below 0.11), the four shape colours are
   above 0.75, and anti-aliased edge pixels (blends with the background, about 0.45) drop out, so an
   orange-ish red edge is not read as a thin yellow object.
2. Each object pixel takes the palette colour of nearest hue.
3. 4-connected components per colour; components below ``MIN_AREA`` (in pixels at 64x64, scaled with
   the image area) are noise.
4. The shape comes from the fill ratio, the component's area over its bounding box's area:
   a square fills 1.0, a circle pi/4 = 0.785, an upright triangle 0.5. Thresholds sit halfway between
   (0.64 and 0.89) after anti-aliasing shrinks the fill slightly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..shapesworld.data import COLOURS

SATURATION = 0.55
MIN_AREA = 12  # pixels at 64x64
SQUARE_FILL = 0.89
CIRCLE_FILL = 0.64


@dataclass(frozen=True)
class Detection:
    colour: str
    shape: str
    box: tuple[float, float, float, float]  # x, y, w, h as image fractions
    centroid: tuple[float, float]  # x, y as image fractions
    area: float  # fraction of the image
    fill: float
    mask: np.ndarray  # bool (H, W)


def to_array(image) -> np.ndarray:
    arr = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if arr.dtype != np.uint8:
        arr = np.clip(np.asarray(arr, dtype=np.float64) * (255 if arr.max() <= 1.0 else 1), 0, 255).astype(np.uint8)
    return arr


def colour_labels(image) -> np.ndarray:
    """(H, W) int: -1 for background, else the index into ``COLOURS``."""
    arr = to_array(image).astype(np.float64) / 255.0
    hue, sat = _hue_saturation(arr)
    palette_hue, _ = _hue_saturation(np.array(list(COLOURS.values()), dtype=np.float64)[None] / 255.0)
    diff = np.abs(hue[:, :, None] - palette_hue[0][None, None])
    diff = np.minimum(diff, 1.0 - diff)  # hue is circular
    labels = diff.argmin(-1)
    labels[(sat < SATURATION) | (arr.max(-1) < 0.25)] = -1
    return labels


def _hue_saturation(arr: np.ndarray):
    """HSV hue in [0, 1) and saturation of an (..., 3) RGB array in [0, 1]."""
    mx, mn = arr.max(-1), arr.min(-1)
    delta = mx - mn
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    safe = np.where(delta > 0, delta, 1.0)
    hue = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6.0
    sat = np.where(mx > 0, delta / np.where(mx > 0, mx, 1.0), 0.0)
    return hue, sat


def components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a bool mask, as lists of (row, col) indices."""
    seen = np.zeros_like(mask, dtype=bool)
    h, w = mask.shape
    out = []
    for r0, c0 in zip(*np.nonzero(mask)):
        if seen[r0, c0]:
            continue
        seen[r0, c0] = True
        queue, pixels = deque([(r0, c0)]), []
        while queue:
            r, c = queue.popleft()
            pixels.append((r, c))
            for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if 0 <= rr < h and 0 <= cc < w and mask[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    queue.append((rr, cc))
        out.append(np.array(pixels))
    return out


def classify_fill(fill: float) -> str:
    if fill >= SQUARE_FILL:
        return "square"
    if fill >= CIRCLE_FILL:
        return "circle"
    return "triangle"


def detect(image) -> list[Detection]:
    """Every coloured shape in the image, largest first."""
    labels = colour_labels(image)
    h, w = labels.shape
    min_area = MIN_AREA * (h * w) / (64 * 64)
    names = list(COLOURS)
    found = []
    for ci, name in enumerate(names):
        for pix in components(labels == ci):
            if len(pix) < min_area:
                continue
            r0, c0 = pix.min(0)
            r1, c1 = pix.max(0)
            bw, bh = c1 - c0 + 1, r1 - r0 + 1
            fill = len(pix) / float(bw * bh)
            mask = np.zeros((h, w), dtype=bool)
            mask[pix[:, 0], pix[:, 1]] = True
            found.append(Detection(name, classify_fill(fill), (c0 / w, r0 / h, bw / w, bh / h),
                                   ((pix[:, 1].mean() + 0.5) / w, (pix[:, 0].mean() + 0.5) / h),
                                   len(pix) / float(h * w), fill, mask))
    found.sort(key=lambda d: -d.area)
    return found
