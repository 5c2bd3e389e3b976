"""Keyword-selected self-attention, KSSA (MRGD, seed 001 §3.2).

In each cross-attention layer of the chosen levels, the top half of each region's positions by
attention from its selected keywords are recorded; the next self-attention at the same resolution
raises their weight as keys for the conditional rows: their pre-softmax logits are multiplied by
``scale`` (the reference: 1.5, down blocks), or, with ``reweight="softmax"``, their probabilities are
multiplied and renormalised.
"""

from __future__ import annotations

import torch

from ..keywords import DEFAULT_SCALE, scale_keys, softmax_bias, top_half_positions
from ...masks import area_mask
from ..call import AttentionCall
from ..controller import Effect
from .keyword_selection import KeywordSelection

REWEIGHTS = ("logit", "softmax")


class KeywordSelfAttention(Effect):
    name = "kssa"
    cross = True
    self_ = True

    def __init__(self, selection: KeywordSelection, scale: float = DEFAULT_SCALE, reweight: str = "logit",
                 levels: tuple[str, ...] = ("down",)):
        if reweight not in REWEIGHTS:
            raise ValueError(f"reweight must be one of {REWEIGHTS}")
        self.selection = selection
        self.scale = scale
        self.reweight = reweight
        self.levels = levels
        self.positions: dict[tuple[int, int], tuple[tuple[int, ...], torch.Tensor]] = {}
        self.applied = 0

    def applies_to(self, call: AttentionCall) -> bool:
        if call.level not in self.levels or not call.rows.cond:
            return False
        return (call.project_context is not None) if call.is_cross else True

    def observe(self, call: AttentionCall, out: torch.Tensor) -> None:
        if not call.is_cross:
            return
        regions = [r for r in self.selection.regions if r.selected]
        if not regions:
            return
        selected = torch.zeros(len(call.rows.cond), call.hw[0] * call.hw[1], dtype=torch.bool)
        for region in regions:
            probs = self.selection.region_probs(call, region)  # (rows, heads, N, T)
            keyword_attention = probs[..., region.selected].sum(-1).mean(1).cpu()  # (rows, N)
            within = area_mask(region.box, region.shape, *call.hw).reshape(-1) >= 0.5
            if not within.any():
                continue
            selected |= top_half_positions(keyword_attention, within)
        self.positions[call.hw] = (call.rows.cond, selected)

    def prepare(self, call: AttentionCall) -> None:
        if call.is_cross or call.hw not in self.positions:
            return
        rows, selected = self.positions[call.hw]
        if rows != call.rows.cond or selected.shape[1] != call.k.shape[2]:
            return
        index = list(rows)
        selected = selected.to(call.k.device)
        if self.reweight == "logit":
            k = call.k.clone()
            k[index] = scale_keys(call.k[index], selected, self.scale)
            call.k = k
        else:
            bias = torch.zeros(call.q.shape[0], 1, 1, call.k.shape[2], dtype=call.q.dtype, device=call.q.device)
            bias[index] = softmax_bias(selected, self.scale, call.q.dtype)
            existing = call.extras.get("bias")
            call.extras["bias"] = bias if existing is None else existing + bias
        self.applied += 1
