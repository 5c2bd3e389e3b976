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

import torch

from ..fusion_sources import FusionSources, RegionPrompt
from ..call import AttentionCall, attend
from ..controller import Effect

__all__ = ["RegionFusion", "RegionPrompt"]


class RegionFusion(FusionSources, Effect):
    name = "region_fusion"
    cross = True
    self_ = False

    def __init__(self, regions: list[RegionPrompt], **kwargs):
        super().__init__(regions, **kwargs)
        self._cast: dict = {}

    def applies_to(self, call: AttentionCall) -> bool:
        return call.is_cross and call.project_context is not None

    def _layer_weights(self, call: AttentionCall, device, dtype):
        """(R + 2, 1, 1, h·w, 1) weights for this layer, on its device and dtype, and each source's support:
        the pixels where its weight is not zero (None: every pixel)."""
        key = (call.hw, call.progress >= self.whole_start, device, dtype)
        if key not in self._cast:
            weights = self.weights(call.hw, call.progress)
            flat = weights.reshape(len(weights), -1)
            supports = [None if bool((w != 0).all()) else (w != 0).nonzero().flatten().to(device) for w in flat]
            self._cast[key] = (flat.reshape(len(weights), 1, 1, -1, 1).to(device, dtype), supports)
        return self._cast[key]

    def _attend_to(self, call: AttentionCall, context: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        k, v = call.project_context(context)  # projected once per layer by the controller
        rows = q.shape[0]
        return attend(q, k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1), scale=call.scale)

    def _fuse(self, call: AttentionCall, rows: tuple[int, ...], own: torch.Tensor, negative: bool) -> torch.Tensor:
        """The rows' fused output, in the call's dtype. The weighted sum is taken in float32 with float32
        weights: in bf16 the weights alone are rounded by up to 2⁻⁹ each, so a pixel's weights would no
        longer sum to one, and the sum of R + 2 terms adds a rounding per term.

        A region attends only over the pixels where its weight is not zero (its feathered box): the
        other pixels' terms are zero, and attention is computed per query, so the sum is the same and a
        layer costs the boxes' area instead of a full pass per region."""
        index = torch.tensor(rows, device=own.device)
        q = call.q.index_select(0, index)
        own_rows = own.index_select(0, index).float()
        weights, supports = self._layer_weights(call, q.device, torch.float32)
        n = len(self.regions)
        contexts, background = self.contexts(negative)
        fused = weights[n + 1] * own_rows
        for j, context in [(n, background)] + list(enumerate(contexts)):
            support = supports[j]
            if support is not None and support.numel() == 0:
                continue  # a source with no pixel here (the background where the boxes cover the image)
            if context is None:
                fused = fused + weights[j] * own_rows
            elif support is None:
                fused = fused + weights[j] * self._attend_to(call, context, q).float()
            else:
                part = self._attend_to(call, context, q.index_select(2, support)).float()
                fused.index_add_(2, support, weights[j].index_select(2, support) * part)
        return fused.to(own.dtype)

    def compute(self, call: AttentionCall) -> torch.Tensor | None:
        own = attend(call.q, call.k, call.v, call.extras.get("bias"), call.scale)
        out = own
        targets = [(call.rows.cond, False)] + ([(call.rows.uncond, True)] if self.fuse_uncond else [])
        for rows, negative in targets:
            if rows:
                out = out.clone() if out is own else out
                out[list(rows)] = self._fuse(call, rows, own, negative)
        return out
