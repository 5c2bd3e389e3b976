"""An edit pair's target keeps the source outside the edited regions (``edit.keep_outside``).

MRGD (Li et al. 2024) keeps the rest of the image through attention control alone: the target reads
the source's attention maps in the kept regions. On ShapesWorld that let kept objects drift in shade
and size and turned the whole background's tone when an object was removed or added (SSIM-i 0.86
over the kept boxes). The pixels outside the edit are known (they are the source's), so the target
takes them: after every step its latent outside the edited boxes, grown by ``KEEP_MARGIN`` and
feathered over ``KEEP_FEATHER``, is the source's latent at the same step (Avrahami et al. 2023,
*Blended Latent Diffusion*; prompt-to-prompt's local blending, Hertz et al. 2022). Inside, the model
paints the edit seeing the source's surroundings at every noise level, so what it fills matches them.

The pair shares its initial noise and every later noise draw, so a blend of the denoiser's output
rows (the WebUI's samplers: the target's prediction is the source's outside) keeps the two latents
equal outside as a blend of the latents does (diffusers' loop); both end on the source's latent there.
"""

from __future__ import annotations

import torch

from ..documents import RegionDocument

KEEP_MARGIN = 0.1  # of the image's side: how far around an edited box the target may differ (measured, docs)
KEEP_FEATHER = 0.05  # of the image's side: the soft edge of that area


def edit_area(document: RegionDocument, h: int, w: int, margin: float | None = None,
              feather: float | None = None, stop_at_kept: bool = True) -> torch.Tensor | None:
    """(h, w) in [0, 1]: the edited regions (boxes or shapes) grown by ``margin`` of the image, with a soft edge
    ``feather`` wide, at any resolution (the latent's, or the picture's for a paste-back); None when a
    background edit makes the whole image the edit's. With ``stop_at_kept`` the margin stops at a kept
    region's box: a kept object next to an edited box stays the source's (the edited boxes themselves
    stay whole); a picture's edit (``real_edit.edit_area``) grows over them."""
    from ..masks import grown_area, region_mask

    margin = KEEP_MARGIN if margin is None else margin
    feather = KEEP_FEATHER if feather is None else feather
    grown, boxes, kept = torch.zeros(h, w), torch.zeros(h, w), torch.zeros(h, w)
    for region in document.regions:
        own = region_mask(region, h, w, feather=0.0)
        if not region.is_edited:
            if not region.is_background:
                kept = torch.maximum(kept, own)
            continue
        if region.is_background:
            return None
        grown = torch.maximum(grown, grown_area(region, h, w, margin, feather))
        boxes = torch.maximum(boxes, own)
    return torch.maximum(boxes, grown * (1 - kept)) if stop_at_kept else grown


def stacked_pairs(n: int) -> list[tuple[int, int]]:
    """(source row, target row) for rows ordered n sources then n targets (the diffusers pair)."""
    return [(i, n + i) for i in range(n)]


def interleaved_pairs(rows: int) -> list[tuple[int, int]]:
    """(source row, target row) for rows ordered source 1, target 1, source 2, … (the WebUI's batch)."""
    return [(i, i + 1) for i in range(0, rows - 1, 2)]


def keep_source(x: torch.Tensor, area: torch.Tensor, pairs: list[tuple[int, int]]) -> torch.Tensor:
    """``x`` (rows, C, h, w) with each pair's target row equal to its source row outside ``area``
    (h, w), blended across its soft edge; the source rows unchanged."""
    if area.shape != x.shape[-2:]:
        raise ValueError(f"the keep area is {tuple(area.shape)} and the latent {tuple(x.shape[-2:])}")
    m = area.to(x.device, x.dtype)
    out = x.clone()
    for s, t in pairs:
        out[t] = x[s] * (1 - m) + x[t] * m  # exact at 0 and 1
    return out


def pair_keep_area(document: RegionDocument, h: int, w: int) -> torch.Tensor | None:
    """The keep area of a generated pair at latent size (h, w), or None when it keeps nothing: the
    option is off for this document (``RegionDocument.keeps_outside``) or its background is edited."""
    if not document.keeps_outside(picture=False):
        return None
    return edit_area(document, h, w)
