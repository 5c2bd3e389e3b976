"""The pair's initial latents (MRGD Alg. 1: z_T^T <- z_T^S), and where layout init changes that."""

from __future__ import annotations

import torch

from ..documents import RegionDocument


def edit_start_mask(document: RegionDocument, h: int, w: int,
                    roles: tuple[str, ...] = ("add", "remove", "change")) -> torch.Tensor:
    """(h, w) 1 inside the boxes whose edit role is in ``roles`` (by default every edited box: added,
    removed, changed; an edited background is the whole image), 0 elsewhere, at latent resolution."""
    from ..masks import box_mask

    mask = torch.zeros(h, w)
    for region in document.regions:
        if region.is_edited and region.edit in roles:
            box = (0.0, 0.0, 1.0, 1.0) if region.is_background else (region.x, region.y, region.w, region.h)
            mask = torch.maximum(mask, (box_mask(*box, h, w) > 0.5).float())
    return mask


def edited_start(source: torch.Tensor, target: torch.Tensor, document: RegionDocument) -> torch.Tensor:
    """The target's initial latent with layout init: the source's (z_T^T <- z_T^S, MRGD Alg. 1) except
    inside the edited boxes, where it is the target sketch's. A layout latent holds its sketch's
    objects, so starting the target from the source's alone keeps a removed object and blocks an
    added one (measured: no add or remove succeeded on ShapesWorld)."""
    mask = edit_start_mask(document, *source.shape[-2:]).to(source.device, source.dtype)
    return source * (1 - mask) + target * mask
