"""Differentiable capture for layout guidance (seed 003's attention guidance; Chen et al. 2023).

While a guidance pass runs (``active``), each cross-attention layer of the chosen levels records,
for every region, the attention of the conditional rows' queries over the region's own prompt at
its bound tokens, keeping the autograd graph back to the latent. After the pass,
:meth:`region_maps` and :meth:`masks` give the maps and boxes at the map resolution (``latent /
downscale`` or the closest the UNet has), which ``lib_regedit.regions.layout_guidance.capture_energy`` turns
into the backward-guidance energy.

Memory: the pass keeps its autograd graph, the activations of every layer it ran. The energy reads
maps at one resolution, and the UNet's up path only grows from there, so once the pass reaches an up
block's cross-attention finer than that resolution, after that resolution's up maps, nothing later can
change the energy: the capture raises :class:`MapsComplete` there, and whoever runs the pass catches it.
The UNet's finest up blocks, the largest part of that graph, are then neither run nor kept (SDXL at
1024²: ``docs/memory.md``); the energy and its gradient are the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...masks import area_mask, map_resolution
from ..call import AttentionCall, attention_probs
from ..controller import Effect


@dataclass
class GuidedRegion:
    """One region bound to tokens of its own prompt: (x, y, w, h) fractions (a shape's bounding box), the
    context and positions, and the shape (None: the box)."""

    box: tuple[float, float, float, float]
    context: torch.Tensor
    tokens: list[int]
    shape: object = None


class MapsComplete(Exception):
    """A guidance pass has every map its energy reads: the rest of the UNet call is not needed."""


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
        self.up_seen: set[tuple[int, int]] = set()  # this pass's up-block map resolutions
        self.stop_early = True

    def start(self) -> None:
        """Begin a guidance pass: drop the maps of the last one."""
        self.maps.clear()
        self.up_seen.clear()
        self.active = True

    def stop(self) -> None:
        self.active = False
        self.maps.clear()

    def applies_to(self, call: AttentionCall) -> bool:
        return (self.active and call.is_cross and bool(call.rows.cond) and call.project_context is not None
                and call.level in self.levels)

    def prepare(self, call: AttentionCall) -> None:
        """Stop the pass where the rest cannot change the energy (the module docstring): at an up block's
        cross-attention finer than the map resolution, once that resolution's up maps are in. The down
        blocks have visited every resolution by then, so the resolution is the one the energy will use."""
        if not self.stop_early or call.level != "up" or "down" not in self.levels or not self.up_seen:
            return
        self.latent_hw = call.latent_hw
        target = self.resolution()
        if target in self.up_seen and call.hw[0] * call.hw[1] > target[0] * target[1]:
            raise MapsComplete

    def observe(self, call: AttentionCall, out: torch.Tensor) -> None:
        self.latent_hw = call.latent_hw
        if call.level == "up":
            self.up_seen.add(call.hw)
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
        return [area_mask(r.box, r.shape, h, w).reshape(-1) for r in self.regions]
