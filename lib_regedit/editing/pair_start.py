"""The pair's initial latents (MRGD Alg. 1: z_T^T <- z_T^S), and where layout init changes that."""

from __future__ import annotations

import dataclasses

import torch

from ..documents import RegionDocument
from ..regions import layout_init


START_MARGIN = 0.1  # of the image's side: how far around an edited box the target starts from its own sketch


def edit_start_mask(document: RegionDocument, h: int, w: int,
                    roles: tuple[str, ...] = ("add", "remove", "change"), margin: float = 0.0) -> torch.Tensor:
    """(h, w) 1 inside the boxes whose edit role is in ``roles`` (by default every edited box: added,
    removed, changed; an edited background is the whole image), each grown by ``margin`` (a fraction
    of the image's side) and clipped to the image, 0 elsewhere, at latent resolution."""
    from ..masks import grown_area

    mask = torch.zeros(h, w)
    for region in document.regions:
        if region.is_edited and region.edit in roles:
            area = torch.ones(h, w) if region.is_background else grown_area(region, h, w, margin)
            mask = torch.maximum(mask, (area > 0.5).float())
    return mask


def added_start_document(document: RegionDocument, target: RegionDocument) -> RegionDocument | None:
    """The target document whose layout-init start an added region takes: ``target`` with the seed
    noise's share ``document.added_init_noise()`` (0.1 from version 6) inside its boxes, or None when
    the pair adds nothing or its added regions start as the rest of the target does.

    An added object's start is the only hint the model gets of it beside the region prompt: the rest
    of a pair that keeps the source is the source's at every step, and around a box free in the source
    the model tends to paint background. Measured on ShapesWorld (docs/region-editing.md; held-out
    layouts, seeds 0 to 3): additions right in 15 of 24 on the model never taught regions with the
    share 0.1, against 10 of 24 with the document's 0.25 and 13 of 24 for MRGD's pair alone; on the
    bundled model 22, 21 and 23 of 24. Shares 0 to 0.15 scored alike on the former."""
    share = document.added_init_noise()
    if share is None or not any(region.edit == "add" for region in document.regions):
        return None
    return dataclasses.replace(target, init_noise=share)


def edited_start(source: torch.Tensor, target: torch.Tensor, document: RegionDocument,
                 added: torch.Tensor | None = None) -> torch.Tensor:
    """The target's initial latent with layout init: the source's (z_T^T <- z_T^S, MRGD Alg. 1) except
    around the edited boxes, where it is the target sketch's. A layout latent holds its sketch's
    objects, so starting the target from the source's alone keeps a removed object and blocks an
    added one (measured: no add or remove succeeded on ShapesWorld).

    A sketch's object changes the inverted latent beyond its box (the inversion's UNet sees around
    it), so the cut is :data:`START_MARGIN` outside the box, and a pair that adds a region starts the
    target from its own layout latent everywhere. Measured on the ShapesWorld model never taught
    regions (20 layouts): removals right in 35 of 40 cut at the box, 38 of 40 with the margin (SSIM-i
    0.903 and 0.898; 40 of 40 and 0.827 from the whole target latent); additions right in 24 of 56
    cut at the box and 32 of 56 from the whole target latent (4 seeds; 34 of 56 regenerating), SSIM-i
    0.941 and 0.937, and 15 of 28 with the margin (2 seeds; 13 and 17 of 28 for the other two).
    Changes scored the same either way.

    A pair that keeps the source outside its edits (``RegionDocument.keeps_outside``) cuts at the
    margin for every role: outside, the target takes the source's latent after every step anyway.

    ``added`` (the start of :func:`added_start_document`'s document) replaces the target's around
    each added box, cut at the same margin."""
    if any(region.edit == "add" for region in document.regions) and not document.keeps_outside(picture=False):
        start = target.clone()
    else:
        mask = edit_start_mask(document, *source.shape[-2:], margin=START_MARGIN).to(source.device, source.dtype)
        start = source * (1 - mask) + target * mask
    if added is None:
        return start
    mask = edit_start_mask(document, *source.shape[-2:], roles=("add",), margin=START_MARGIN)
    mask = mask.to(source.device, source.dtype)
    return start * (1 - mask) + added * mask


def pair_starts(document: RegionDocument, documents, inverted, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The source's and the target's layout-init starts from the seed's ``noise`` (rows, C, h, w) on any
    host: ``documents`` the pair's (``source``, ``target``), ``inverted`` their sketches' inversions
    (``layout_init.inverted_sketch``), the target's start edited by :func:`edited_start` with its
    added regions' own start (:func:`added_start_document`) from the target's inversion."""
    source = layout_init.start_for(documents.source, inverted[0], noise)
    target = layout_init.start_for(documents.target, inverted[1], noise)
    added_doc = added_start_document(document, documents.target)
    added = None if added_doc is None else layout_init.start_for(added_doc, inverted[1], noise)
    return source, edited_start(source, target, document, added)
