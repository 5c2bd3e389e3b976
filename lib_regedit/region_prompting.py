"""Region prompting set-up shared by every backend: encode each region's prompt once, build the fusion."""

from __future__ import annotations

from typing import Callable

import torch

from .attention.effects.region_fusion import RegionFusion, RegionPrompt
from .documents import RegionDocument
from .latent_fusion import LatentFusion


def build_fusion(document: RegionDocument, encode: Callable[[str], torch.Tensor], mode: str | None = None):
    """``encode(prompt)`` gives the cross-attention context (1, T, C) of a prompt in the backend's own way
    (the WebUI's 75-token chunks and emphasis, or the diffusers text encoders). Returns a
    :class:`RegionFusion` (attention mode, one UNet pass) or a :class:`LatentFusion` (latent mode)."""
    mode = mode or document.mode
    regions = [RegionPrompt(r.x, r.y, r.w, r.h, r.feather, r.weight, encode(r.prompt),
                            encode(r.negative_prompt) if r.negative_prompt else None)
               for r in document.object_regions]
    bg = document.background
    kwargs = dict(background_context=encode(bg.prompt) if bg and bg.prompt.strip() else None,
                  background_negative=encode(bg.negative_prompt) if bg and bg.negative_prompt else None,
                  background_weight=document.background_weight, whole_start=document.whole_prompt_start,
                  whole_weight=document.whole_prompt_weight)
    return (LatentFusion if mode == "latent" else RegionFusion)(regions, **kwargs)
