"""The RoI preview: the image with LIME's region of interest tinted, its outline kept sharp."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..masks import mask_at


def roi_preview(image: Image.Image, mask: torch.Tensor, colour=(255, 64, 64), alpha: float = 0.45) -> Image.Image:
    w, h = image.size
    inside = mask_at(mask.float(), (h, w)).numpy()
    pixels = np.asarray(image.convert("RGB")).astype(np.float32)
    tinted = pixels * (1 - alpha) + np.array(colour, np.float32) * alpha
    out = np.where(inside[..., None], tinted, pixels * 0.6)
    return Image.fromarray(out.round().clip(0, 255).astype(np.uint8))


def mask_from_image(mask_image: Image.Image, field: str = "roi") -> torch.Tensor:
    """A user's mask image (white = inside) as a bool tensor; an empty one is refused."""
    from ..errors import RegEditError

    mask = torch.from_numpy(np.asarray(mask_image.convert("L")) >= 128)
    if not mask.any():
        raise RegEditError(field, "the mask covers nothing", "paint the region to edit in white")
    return mask
