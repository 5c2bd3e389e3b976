"""Mutual self-attention (RegionDrag, Lu et al. 2024, "Attention Swapping"; after MasaCtrl, Cao et al.
2023): in every self-attention layer of the denoise branch, the keys and values come from the
inversion branch at the same step, so the dragged image keeps reading the source image's appearance.

The controller's ``prepare`` stage, first among the input changes (controller docstring). The
inversion branch runs with ``mode = "record"``; the denoise branch with ``"replace"``. Keys are the
layer and the step index, so any backend that reports them plugs in.
"""

from __future__ import annotations

import torch

from ..call import AttentionCall
from ..controller import Effect


class MutualSelfAttention(Effect):
    name = "mutual_self_attention"
    cross = False
    self_ = True

    def __init__(self):
        self.mode = "record"
        self.store: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self.replaced = 0

    def applies_to(self, call: AttentionCall) -> bool:
        return not call.is_cross and self.mode in ("record", "replace")

    def prepare(self, call: AttentionCall) -> None:
        key = (call.layer, call.step)
        if self.mode == "record":
            self.store[key] = (call.k.detach(), call.v.detach())
            return
        stored = self.store.get(key)
        if stored is None or stored[0].shape[1:] != call.k.shape[1:]:
            return
        k, v = stored
        if k.shape[0] != call.k.shape[0]:  # one source image for every row
            k, v = k[:1].expand_as(call.k), v[:1].expand_as(call.v)
        call.k, call.v = k.to(call.k.dtype), v.to(call.v.dtype)
        self.replaced += 1
