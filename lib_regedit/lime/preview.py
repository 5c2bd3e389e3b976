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


def paste_outside_roi(source: Image.Image, edited: Image.Image, roi: torch.Tensor, cell: int) -> Image.Image:
    """The edit inside ``roi`` and the source's own pixels outside it, the edge feathered by a quarter
    of a latent cell (``cell`` pixels): the last step of ``keep_outside``, as the WebUI's inpainting
    composites its result (the latent blend alone leaves the VAE's round trip outside the RoI). ``roi``:
    bool at the latent's resolution (LIME's own), or the user's region in [0, 1] at the image's size."""
    from ..compositing import paste_back, pixel_mask

    return paste_back(source, edited, pixel_mask(roi.float().cpu().numpy(), edited.height, edited.width, cell / 4))
