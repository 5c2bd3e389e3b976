"""The region LIME finds, from the first pass's capture to the region the edit uses: the image's
superpixels when the options need them (the object pick, the snap), the k-means RoI picked on them
(:func:`lib_regedit.lime.roi.find_roi`), and the snap (:mod:`lib_regedit.lime.superpixels`). One
place for the diffusers edit and the WebUI's session, so both find the same region."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..documents.lime import LimeOptions
from .roi import Roi, find_roi
from .superpixels import snapped_roi, superpixels


@dataclass
class Located:
    found: Roi  # the k-means RoI as picked, its labels and the edit tokens' map (for the notes)
    roi: torch.Tensor  # bool (h, w): the region the edit uses (snapped when the options say so)
    pixel_roi: torch.Tensor | None  # float (H, W): the snapped region at the image's size, else None
    snap_seconds: float | None  # the superpixels, the object pick and the snap; None without superpixels


def locate_roi(features: list[torch.Tensor], attention: torch.Tensor, options: LimeOptions,
               latent_hw: tuple[int, int], image=None, seed: int = 0) -> Located:
    """The found and snapped region. Without ``image`` there are no superpixels: the peak is picked
    anywhere and nothing is snapped."""
    started = time.perf_counter()
    segments = None
    if image is not None and (options.snap or options.pick == "object"):
        segments = superpixels(image, latent_hw, options.segment_cells, options.colour_merge)
    found = find_roi(features, attention, clusters=options.clusters, points=options.points,
                     max_dim=options.max_dim, hw=latent_hw, seed=seed, grow=options.grow,
                     segments=segments if options.pick == "object" else None)
    roi, pixel_roi = found.mask, None
    if options.snap and segments is not None:
        roi, pixel_roi = snapped_roi(image, roi, segments)
    seconds = time.perf_counter() - started - found.seconds if segments is not None else None
    return Located(found, roi, pixel_roi, seconds)
