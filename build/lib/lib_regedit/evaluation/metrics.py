"""Evaluation metrics for region generation on ShapesWorld (issue 4, "Evaluation suite").

All boxes are the project's region format: ``(x, y, w, h)`` image fractions, top-left origin.

- ``box_adherence``: is there an object of the requested colour and shape inside the box?
- ``localisation_ratio``: a word's attention share on its object's pixels divided by their area
  share (1.0 = no localisation; the findings note measured 1.1 for a causal encoder, 3.5 for the
  0-layer one at the 8x8 down layer).
- ``ssim``: structural similarity (Wang et al. 2004; Gaussian window sigma 1.5, K1 0.01, K2 0.03)
  averaged inside or outside a mask.
- ``centroid_distance``: distance from an object's centroid to the requested box's centre.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .detector import Detection, detect, to_array


def box_mask(box, h: int, w: int) -> np.ndarray:
    x, y, bw, bh = box
    mask = np.zeros((h, w), dtype=bool)
    r0, r1 = int(round(y * h)), int(round((y + bh) * h))
    c0, c1 = int(round(x * w)), int(round((x + bw) * w))
    mask[max(r0, 0):max(r1, r0 + 1), max(c0, 0):max(c1, c0 + 1)] = True
    return mask


def _inside(point, box, tolerance: float) -> bool:
    x, y, w, h = box
    px, py = point
    return x - tolerance <= px <= x + w + tolerance and y - tolerance <= py <= y + h + tolerance


def match_in_box(detections, box, colour: str, shape: str | None = None, *, tolerance: float = 0.03,
                 min_cover: float = 0.5) -> Detection | None:
    """The largest detection of that colour (and shape) whose centroid lies in the box (with a small
    tolerance) and that has at least ``min_cover`` of its pixels inside the box."""
    best = None
    for d in detections:
        if d.colour != colour or (shape is not None and d.shape != shape):
            continue
        if not _inside(d.centroid, box, tolerance):
            continue
        h, w = d.mask.shape
        if (d.mask & box_mask(box, h, w)).sum() < min_cover * d.mask.sum():
            continue
        if best is None or d.area > best.area:
            best = d
    return best


def box_adherence(image_or_detections, box, colour: str, shape: str, **kw) -> bool:
    dets = image_or_detections if isinstance(image_or_detections, list) else detect(image_or_detections)
    return match_in_box(dets, box, colour, shape, **kw) is not None


def centroid_distance(image_or_detections, box, colour: str, shape: str | None = None) -> float:
    """Distance (image fractions) from the box centre to the centroid of the nearest object of that
    colour (and shape if given; the nearest of that colour otherwise). ``nan`` if there is none."""
    dets = image_or_detections if isinstance(image_or_detections, list) else detect(image_or_detections)
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    cands = [d for d in dets if d.colour == colour and (shape is None or d.shape == shape)]
    if not cands:
        return float("nan")
    return min(math.hypot(d.centroid[0] - cx, d.centroid[1] - cy) for d in cands)


def resize_mask(mask: np.ndarray, h: int, w: int) -> torch.Tensor:
    """Area-resample a bool mask to (h, w): each cell gets the fraction of it covered."""
    t = torch.as_tensor(mask, dtype=torch.float32)[None, None]
    return F.adaptive_avg_pool2d(t, (h, w))[0, 0]


def localisation_ratio(attention_map, object_mask) -> float:
    """(attention share on the object) / (object's area share), at the map's resolution.

    ``attention_map``: (h, w) non-negative attention of one token (any resolution);
    ``object_mask``: bool mask at image resolution, resampled here by area.
    """
    a = torch.as_tensor(attention_map, dtype=torch.float32)
    m = resize_mask(object_mask, *a.shape)
    total = a.sum()
    area = m.mean()
    if total <= 0 or area <= 0:
        return float("nan")
    return float(((a * m).sum() / total) / area)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_map(a, b, data_range: float = 255.0) -> np.ndarray:
    """Per-pixel SSIM of two RGB images (mean over channels), same size as the images."""
    x = torch.tensor(to_array(a), dtype=torch.float64).permute(2, 0, 1)[:, None]
    y = torch.tensor(to_array(b), dtype=torch.float64).permute(2, 0, 1)[:, None]
    win = _gaussian_window()
    pad = win.shape[-1] // 2

    def blur(t):
        return F.conv2d(F.pad(t, (pad,) * 4, mode="reflect"), win)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return s.mean(0)[0].numpy()


def ssim(a, b, mask: np.ndarray | None = None, *, inside: bool = True) -> float:
    """Mean SSIM over the pixels inside ``mask`` (or outside it with ``inside=False``; all without one)."""
    s = ssim_map(a, b)
    if mask is None:
        return float(s.mean())
    sel = mask if inside else ~mask
    return float(s[sel].mean()) if sel.any() else float("nan")


def region_ssim(a, b, box) -> tuple[float, float]:
    """(SSIM inside the box, SSIM outside it)."""
    arr = to_array(a)
    m = box_mask(box, *arr.shape[:2])
    return ssim(a, b, m, inside=True), ssim(a, b, m, inside=False)
