"""Latent mode: MultiDiffusion itself (Bar-Tal et al. 2023; MRGD Eq. 1).

One denoiser pass per region prompt over the whole latent, and the noise predictions fused with the
normalised pixel-wise weights at latent resolution. It costs a UNet pass per region and is the
reference that attention mode (one pass) is measured against.
"""

from __future__ import annotations

from typing import Callable

import torch

from .attention.effects.region_fusion import RegionPrompt
from .masks import box_mask, fusion_weights


class LatentFusion:
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

    def weights(self, hw: tuple[int, int], progress: float) -> torch.Tensor:
        h, w = hw
        masks = torch.stack([box_mask(r.x, r.y, r.w, r.h, h, w, r.feather) for r in self.regions]) \
            if self.regions else torch.zeros(0, h, w)
        whole = self.whole_weight if progress >= self.whole_start else 0.0
        return fusion_weights(masks, [r.weight for r in self.regions], self.background_weight, whole)

    def fuse(self, eps: torch.Tensor, rows: tuple[int, ...], uncond_rows: tuple[int, ...], progress: float,
             run: Callable[[torch.Tensor, tuple[int, ...]], torch.Tensor]) -> torch.Tensor:
        """``eps``: the UNet output for the whole batch with each row's own prompt.
        ``run(context, rows)`` reruns the UNet on ``rows`` with ``context`` (1, T, C)."""
        weights = self.weights(tuple(eps.shape[-2:]), progress).to(eps.device, eps.dtype)[:, None, None]
        n = len(self.regions)
        out = eps
        targets = [(rows, False)] + ([(uncond_rows, True)] if self.fuse_uncond else [])
        for target, negative in targets:
            if not target:
                continue
            own = eps[list(target)]
            fused = weights[n + 1] * own
            bg = self.background_negative if negative else self.background_context
            fused = fused + weights[n] * (run(bg, target) if bg is not None else own)
            for i, region in enumerate(self.regions):
                context = region.negative_context if negative else region.context
                fused = fused + weights[i] * (run(context, target) if context is not None else own)
            out = out.clone() if out is eps else out
            out[list(target)] = fused
        return out
