"""The sources MultiDiffusion fuses and their weights (Bar-Tal et al. 2023; MRGD, seed 001, Eq. 1).

Shared by attention mode (fusion inside cross-attention) and latent mode (fusion of noise
predictions): the object regions r_1..r_n, the background r_bg (its own prompt, or the row's own
prompt when none is given) and the whole-image region r_total (the row's own prompt), which joins
after ``whole_start`` of the steps (MRGD §4.1, T_total).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..masks import area_mask, fusion_weights


@dataclass
class RegionPrompt:
    """One object region: its box (fractions; a shape's bounding box), feather, weight, encoded prompts
    (1, T, C) and its shape (None: the box)."""

    x: float
    y: float
    w: float
    h: float
    feather: float
    weight: float
    context: torch.Tensor
    negative_context: torch.Tensor | None = None
    shape: object = None


class FusionSources:
    def __init__(self, regions: list[RegionPrompt], *, background_context: torch.Tensor | None = None,
                 background_negative: torch.Tensor | None = None, background_weight: float = 1.0,
                 whole_start: float = 0.3, whole_weight: float = 0.5):
        self.regions = regions
        self.background_context = background_context
        self.background_negative = background_negative
        self.background_weight = background_weight
        self.whole_start = whole_start
        self.whole_weight = whole_weight
        self.fuse_uncond = any(r.negative_context is not None for r in regions) or background_negative is not None
        self._weights: dict = {}

    def weights(self, hw: tuple[int, int], progress: float) -> torch.Tensor:
        """(R + 2, h, w) normalised weights: the regions, then r_bg, then r_total; cached."""
        key = (hw, progress >= self.whole_start)
        if key not in self._weights:
            h, w = hw
            masks = torch.stack([area_mask((r.x, r.y, r.w, r.h), r.shape, h, w, r.feather) for r in self.regions]) \
                if self.regions else torch.zeros(0, h, w)
            self._weights[key] = fusion_weights(masks, [r.weight for r in self.regions], self.background_weight,
                                                self.whole_weight if key[1] else 0.0)
        return self._weights[key]

    def contexts(self, negative: bool) -> tuple[list[torch.Tensor | None], torch.Tensor | None]:
        """Each region's context (None: use the row's own) and the background's, for cond or uncond rows."""
        regions = [r.negative_context if negative else r.context for r in self.regions]
        return regions, self.background_negative if negative else self.background_context
