"""Differentiable capture for layout guidance (seed 003's attention guidance; Chen et al. 2023).

While a guidance pass runs (``active``), each cross-attention layer of the chosen levels records,
for every region, the attention of the conditional rows' queries over the region's own prompt at
its bound tokens, keeping the autograd graph back to the latent. After the pass,
:meth:`region_maps` and :meth:`masks` give the maps and boxes at the map resolution (``latent /
downscale`` or the closest the UNet has), which ``lib_regedit.regions.layout_guidance.capture_energy`` turns
into the backward-guidance energy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...masks import box_mask, map_resolution
from ..call import AttentionCall, attention_probs
from ..controller import Effect


@dataclass
class GuidedRegion:
    """One box bound to tokens of its own prompt: (x, y, w, h) fractions, the context and positions."""

    box: tuple[float, float, float, float]
    context: torch.Tensor
    tokens: list[int]


class GuidanceCapture(Effect):
    name = "guidance_capture"
    cross = True
    self_ = False

    def __init__(self, regions: list[GuidedRegion], downscale: int = 4, levels: tuple[str, ...] = ("down", "up")):
        self.regions = [r for r in regions if r.tokens]
        self.downscale = downscale
        self.levels = levels
        self.active = False
        self.maps: dict[tuple[int, int], list[list[torch.Tensor]]] = {}
        self.latent_hw: tuple[int, int] | None = None

    def start(self) -> None:
        """Begin a guidance pass: drop the maps of the last one."""
        self.maps.clear()
        self.active = True

    def stop(self) -> None:
        self.active = False
        self.maps.clear()

    def applies_to(self, call: AttentionCall) -> bool:
        return (self.active and call.is_cross and bool(call.rows.cond) and call.project_context is not None
                and call.level in self.levels)

    def observe(self, call: AttentionCall, out: torch.Tensor) -> None:
        self.latent_hw = call.latent_hw
        q = call.q[list(call.rows.cond)].float()
        per_region = []
        for region in self.regions:
            k, _ = call.project_context(region.context)
            probs = attention_probs(q, k.float().expand(q.shape[0], -1, -1, -1), scale=call.scale)
            per_region.append(probs[..., region.tokens].mean(1).transpose(1, 2))  # (rows, tokens, h·w)
        self.maps.setdefault(call.hw, []).append(per_region)

    def resolution(self) -> tuple[int, int] | None:
        if not self.maps or self.latent_hw is None:
            return None
        return map_resolution(self.latent_hw, self.downscale, self.maps)

    def region_maps(self) -> list[torch.Tensor]:
        """Per region, its token maps (layers × rows, tokens, h·w) at the map resolution."""
        hw = self.resolution()
        layers = self.maps[hw]
        return [torch.cat([layer[i] for layer in layers]) for i in range(len(self.regions))]

    def masks(self) -> list[torch.Tensor]:
        h, w = self.resolution()
        return [box_mask(*r.box, h, w).reshape(-1) for r in self.regions]
