"""A region of interest the user gives instead of the one LIME finds (boxes or shapes, or a mask), at the two
resolutions LIME uses it: the latent's, for the regularisation and the blend at every step, and the
image's, for pasting the source back outside it at the end.

At the latent's resolution the RoI is every cell the region touches, so an object whose box the user
drew is edited whole; the paste then keeps the pixels outside the drawn region exactly the source's.
"""

from __future__ import annotations

import torch

from ..errors import RegEditError
from ..masks import area_mask, mask_at

TOUCHED = 0.01  # a cell is in the RoI when at least this share of it is (1%: rounding slivers are not)


def touched_cells(pixels: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
    """A (H, W) mask in [0, 1] to the bool (h, w) cells it covers by at least :data:`TOUCHED`."""
    cover = torch.nn.functional.adaptive_avg_pool2d(pixels.float()[None, None], tuple(latent_hw))[0, 0]
    return cover >= TOUCHED


def from_boxes(boxes, latent_hw: tuple[int, int], image_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(latent bool RoI, image float RoI) for boxes (x, y, w, h fractions) and shapes."""
    pixels = sum(area_mask(box, None, *image_hw) if isinstance(box, tuple) else area_mask(None, box, *image_hw)
                 for box in boxes).clamp(max=1)
    return touched_cells(pixels, latent_hw), pixels


def from_mask(mask: torch.Tensor, latent_hw: tuple[int, int], image_hw: tuple[int, int],
              field: str = "roi") -> tuple[torch.Tensor, torch.Tensor | None]:
    """(latent bool RoI, image float RoI or None) for a bool mask at the image's size (or any other size,
    which is resized to the latent's and has no pixel RoI)."""
    mask = torch.as_tensor(mask).bool()
    if mask.ndim != 2:
        raise RegEditError(field, f"the mask has shape {tuple(mask.shape)}", "give one (height, width) mask")
    if not mask.any():
        raise RegEditError(field, "the mask covers nothing", "draw the region to edit, or leave it out to "
                                                             "find the RoI automatically")
    if tuple(mask.shape) == tuple(image_hw):
        return touched_cells(mask, latent_hw), mask.float()
    latent = mask_at(mask, latent_hw)
    if not latent.any():
        raise RegEditError(field, "the mask is smaller than one latent cell",
                           "draw a larger region, or give the mask at the image's size")
    return latent, None
