"""Region fusion inside cross-attention: MultiDiffusion (Bar-Tal et al. 2023) in one UNet pass.

For each cross-attention layer, the conditional rows attend to every region's prompt (keys and values
projected once per layer and cached), and the outputs are blended with MultiDiffusion's normalised
pixel-wise weights at the layer's resolution (MRGD, seed 001, Eq. 1). The sources are the object
regions r_1..r_n, the background r_bg (its own prompt, or the row's own prompt when none is given)
and the whole-image region r_total (the row's own prompt), which joins after ``whole_start`` of the
steps (MRGD §4.1, T_total). Unconditional rows are fused the same way with the regions' negative
prompts when any region has one, and are left alone otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...masks import box_mask, fusion_weights
from ..call import AttentionCall, attend
from ..controller import Effect


@dataclass
class RegionPrompt:
    """One object region: its box (fractions), feather, weight and encoded prompts (1, T, C)."""

    x: float
    y: float
    w: float
    h: float
    feather: float
    weight: float
    context: torch.Tensor
    negative_context: torch.Tensor | None = None


class RegionFusion(Effect):
    name = "region_fusion"
    cross = True
    self_ = False

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
        self._kv: dict = {}
        self._weights: dict = {}

    def applies_to(self, call: AttentionCall) -> bool:
        return call.is_cross and call.project_context is not None

    def weights(self, hw: tuple[int, int], whole_on: bool, device, dtype) -> torch.Tensor:
        """(R + 2, 1, 1, h·w, 1) normalised weights, cached per resolution and phase."""
        key = (hw, whole_on, device, dtype)
        if key not in self._weights:
            h, w = hw
            masks = torch.stack([box_mask(r.x, r.y, r.w, r.h, h, w, r.feather) for r in self.regions]) \
                if self.regions else torch.zeros(0, h, w)
            weights = fusion_weights(masks, [r.weight for r in self.regions], self.background_weight,
                                     self.whole_weight if whole_on else 0.0)
            self._weights[key] = weights.reshape(len(weights), 1, 1, h * w, 1).to(device, dtype)
        return self._weights[key]

    def _project(self, call: AttentionCall, key, context: torch.Tensor):
        cache_key = (call.layer, key)
        if cache_key not in self._kv:
            self._kv[cache_key] = call.project_context(context)
        return self._kv[cache_key]

    def _fuse(self, call: AttentionCall, rows: tuple[int, ...], own: torch.Tensor, negative: bool) -> torch.Tensor:
        index = torch.tensor(rows, device=own.device)
        q = call.q.index_select(0, index)
        own_rows = own.index_select(0, index)
        weights = self.weights(call.hw, call.progress >= self.whole_start, q.device, q.dtype)
        n = len(self.regions)
        fused = weights[n + 1] * own_rows
        background_context = self.background_negative if negative else self.background_context
        if background_context is not None:
            k, v = self._project(call, ("bg", negative), background_context)
            fused = fused + weights[n] * attend(q, k.expand(len(rows), -1, -1, -1), v.expand(len(rows), -1, -1, -1),
                                                scale=call.scale)
        else:
            fused = fused + weights[n] * own_rows
        for i, region in enumerate(self.regions):
            context = region.negative_context if negative else region.context
            if context is None:  # no negative prompt for this region: the global negative applies here
                fused = fused + weights[i] * own_rows
                continue
            k, v = self._project(call, (i, negative), context)
            out = attend(q, k.expand(len(rows), -1, -1, -1), v.expand(len(rows), -1, -1, -1), scale=call.scale)
            fused = fused + weights[i] * out
        return fused

    def compute(self, call: AttentionCall) -> torch.Tensor | None:
        own = attend(call.q, call.k, call.v, call.extras.get("bias"), call.scale)
        out = own
        targets = [(call.rows.cond, False)]
        if self.fuse_uncond:
            targets.append((call.rows.uncond, True))
        for rows, negative in targets:
            if rows:
                out = out.clone() if out is own else out
                out[list(rows)] = self._fuse(call, rows, own, negative)
        return out
