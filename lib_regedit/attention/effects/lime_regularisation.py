"""LIME's attention regularisation (LIME, Simsar et al. 2025, §3.2): in cross-attention, for the
queries inside the region of interest, the logits of every token that is not an edit token (the start
token and padding included) are pushed to -inf, so those positions attend only to the instruction's
edit words. Outside the RoI nothing changes.

A ``prepare`` stage (controller docstring): an additive bias in ``call.extras["bias"]``. It applies to
every row of the call, the instruction's and the unconditional ones alike (all three branches of
instruct-pix2pix's guidance: text and image, image only, neither), as the reference does, during the
first ``until`` of the steps and at the layer resolutions in ``downscales``.
"""

from __future__ import annotations

import torch

from ...masks import mask_at
from ..call import AttentionCall
from ..controller import Effect
from .roi_capture import downscale


class LimeRegularisation(Effect):
    name = "lime_regularisation"
    cross = True
    self_ = False

    def __init__(self, roi: torch.Tensor, positions: list[int], until: float = 0.9,
                 downscales: tuple[int, ...] = (1, 2)):
        if not positions:
            raise ValueError("LIME needs at least one edit token")
        self.roi = roi.bool().cpu()
        self.positions = list(positions)
        self.until = until
        self.downscales = tuple(downscales)
        self.biases: dict[tuple, torch.Tensor] = {}
        self.applied = 0

    def applies_to(self, call: AttentionCall) -> bool:
        return call.is_cross and call.step < self.until * call.total_steps and downscale(call) in self.downscales

    def bias(self, hw: tuple[int, int], tokens: int, dtype, device) -> torch.Tensor:
        key = (hw, tokens, dtype, device)
        if key not in self.biases:
            inside = mask_at(self.roi, hw).reshape(-1)
            unrelated = torch.ones(tokens, dtype=torch.bool)
            unrelated[[p for p in self.positions if p < tokens]] = False
            blocked = inside[:, None] & unrelated[None, :]
            bias = torch.zeros(blocked.shape, dtype=dtype).masked_fill(blocked, float("-inf"))
            self.biases[key] = bias[None, None].to(device)
        return self.biases[key]

    def prepare(self, call: AttentionCall) -> None:
        if not any(p < call.k.shape[2] for p in self.positions):
            return  # a context without the instruction's positions: leave it alone
        bias = self.bias(call.hw, call.k.shape[2], call.q.dtype, call.q.device)
        existing = call.extras.get("bias")
        call.extras["bias"] = bias if existing is None else existing + bias
        self.applied += 1
