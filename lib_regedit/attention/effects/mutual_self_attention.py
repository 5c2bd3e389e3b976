"""Mutual self-attention (RegionDrag, Lu et al. 2024, "Attention Swapping"; after MasaCtrl, Cao et al.
2023): in every self-attention layer of the denoise branch, the keys and values come from the
inversion branch at the same step, so the dragged image keeps reading the source image's appearance.

The controller's ``prepare`` stage, first among the input changes (controller docstring). The
inversion branch runs with ``mode = "record"``; the denoise branch with ``"replace"``. Keys are the
layer and the step index, so any backend that reports them plugs in.

Memory: the store holds ``2 · S · n_inv`` values in the model's dtype (``S`` the self-attention keys of
one pass, ``n_inv`` the inversion steps; ``lib_regedit/bench/memory.drag_kv``): 4.2 GB for SDXL at
1024² in fp16, which with SDXL's weights would not fit a 12 GB card. So when the model runs on an
accelerator the store lives in host memory (``offload``, on by default there), each layer's pair copied
back to the device when its replacing call comes; on the CPU nothing moves. The values are the same
either way (``docs/memory.md``).
"""

from __future__ import annotations

import torch

from ..call import AttentionCall
from ..controller import Effect


class MutualSelfAttention(Effect):
    name = "mutual_self_attention"
    cross = False
    self_ = True

    def __init__(self, offload: bool = True):
        self.mode = "record"
        self.store: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self.replaced = 0
        self.offload = offload  # keep the store in host memory when the model is on an accelerator

    def _stored(self, t: torch.Tensor) -> torch.Tensor:
        t = t.detach()
        if self.offload and t.device.type != "cpu":
            # to pinned host memory, ordered on the device's stream like the copy back
            return t.to("cpu", non_blocking=True)
        return t

    def applies_to(self, call: AttentionCall) -> bool:
        return not call.is_cross and self.mode in ("record", "replace")

    def prepare(self, call: AttentionCall) -> None:
        key = (call.layer, call.step)
        if self.mode == "record":
            self.store[key] = (self._stored(call.k), self._stored(call.v))
            return
        stored = self.store.get(key)
        if stored is None or stored[0].shape[1:] != call.k.shape[1:]:
            return
        k, v = stored
        if k.shape[0] != call.k.shape[0]:  # one source image for every row
            k, v = k[:1].expand_as(call.k), v[:1].expand_as(call.v)
        call.k = k.to(call.k.device, call.k.dtype, non_blocking=True)
        call.v = v.to(call.v.device, call.v.dtype, non_blocking=True)
        self.replaced += 1
