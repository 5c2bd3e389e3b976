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
    """A user's mask image (white = inside, by :func:`lib_regedit.images.mask_array`'s rule) as a bool
    tensor; an empty one is refused."""
    from ..errors import RegEditError
    from ..images import mask_array

    mask = torch.from_numpy(mask_array(mask_image, field))
    if not mask.any():
        raise RegEditError(field, "the mask covers nothing", "paint the region to edit in white")
    return mask


PASTE_MARGIN = 1  # latent cells: a RoI at the latent's resolution is pasted this much wider


def paste_outside_roi(source: Image.Image, edited: Image.Image, roi: torch.Tensor, cell: int) -> Image.Image:
    """The edit inside ``roi`` and the source's own pixels outside it: the last step of ``keep_outside``,
    as the WebUI's inpainting composites its result (the latent blend alone leaves the VAE's round trip
    outside the RoI). ``roi``: the user's region in [0, 1] at the image's size, pasted at its own
    pixels; or bool at the latent's resolution (``cell`` pixels a cell, LIME's own RoI), pasted
    :data:`PASTE_MARGIN` cell wider, because the decoder carries the edit about a cell past the RoI's
    edge and cutting it there leaves the object's rim as it was (measured in docs/lime.md's
    table). The edge is feathered outward by a quarter of a cell."""
    from ..compositing import paste_back, pixel_mask
    from .roi import grow_mask

    if roi.shape[-1] != edited.width:
        roi = grow_mask(roi.bool(), PASTE_MARGIN)
    return paste_back(source, edited, pixel_mask(roi.float().cpu().numpy(), edited.height, edited.width, cell / 4))
