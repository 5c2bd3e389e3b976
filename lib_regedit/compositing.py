"""The original picture composited back around an edit, as the WebUI's inpainting does: pixels the
edit does not touch stay the original's exactly (RegionDrag, region edits of a picture)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def paste_back(original: Image.Image, edited: Image.Image, mask) -> Image.Image:
    """``edited`` where ``mask`` is 1, ``original`` where it is 0, blended in between. ``mask`` is
    (H, W) or (H, W, 1) in [0, 1] at the edit's size; the original is resized to that size first."""
    edited = edited.convert("RGB")
    original = original.convert("RGB")
    if original.size != edited.size:
        original = original.resize(edited.size, Image.LANCZOS)
    m = np.asarray(mask, dtype=np.float32).reshape(edited.height, edited.width, 1)
    out = np.asarray(original, dtype=np.float32) * (1 - m) + np.asarray(edited, dtype=np.float32) * m
    return Image.fromarray(out.round().astype(np.uint8))


def pixel_mask(mask, height: int, width: int, feather: float = 0.0) -> np.ndarray:
    """A (h, w) mask at a coarser resolution (a latent's, bool or [0, 1]) as a float (height, width)
    mask: each cell covers its pixels (nearest), and a Gaussian of ``feather`` pixels softens the edge
    outward only, so every pixel the mask covers stays covered whole (as the WebUI's mask blur, but the
    blur never eats into the region)."""
    from PIL import ImageFilter

    cells = np.asarray(mask, dtype=np.float32)
    image = Image.fromarray((cells * 255).round().astype(np.uint8)).resize((width, height), Image.NEAREST)
    hard = np.asarray(image, dtype=np.float32) / 255
    if feather <= 0:
        return hard
    return np.maximum(hard, np.asarray(image.filter(ImageFilter.GaussianBlur(feather)), dtype=np.float32) / 255)
