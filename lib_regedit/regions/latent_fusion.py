"""Latent mode: MultiDiffusion itself (Bar-Tal et al. 2023; MRGD Eq. 1).

One denoiser pass per region prompt over the whole latent, and the noise predictions fused with the
normalised pixel-wise weights at latent resolution. It costs a UNet pass per region and is the
reference that attention mode (one pass) is measured against.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..attention.fusion_sources import FusionSources


class LatentFusion(FusionSources):
    def fuse(self, eps: torch.Tensor, rows: tuple[int, ...], uncond_rows: tuple[int, ...], progress: float,
             run: Callable[[torch.Tensor, tuple[int, ...]], torch.Tensor]) -> torch.Tensor:
        """``eps``: the UNet output for the whole batch with each row's own prompt.
        ``run(context, rows)`` reruns the UNet on ``rows`` with ``context`` (1, T, C). The weighted sum is
        taken in float32 with float32 weights and cast back to ``eps``'s dtype, so that in half precision a
        pixel's weights still sum to one (``RegionFusion._fuse`` does the same)."""
        weights = self.weights(tuple(eps.shape[-2:]), progress).to(eps.device, torch.float32)[:, None, None]
        n = len(self.regions)
        out = eps
        targets = [(rows, False)] + ([(uncond_rows, True)] if self.fuse_uncond else [])
        for target, negative in targets:
            if not target:
                continue
            own = eps[list(target)].float()
            contexts, background = self.contexts(negative)
            fused = weights[n + 1] * own + weights[n] * (run(background, target).float() if background is not None
                                                         else own)
            for i, context in enumerate(contexts):
                fused = fused + weights[i] * (run(context, target).float() if context is not None else own)
            out = out.clone() if out is eps else out
            out[list(target)] = fused.to(eps.dtype)
        return out
