"""Region fusion for an edit pair, with prompt-to-prompt per region (MRGD Eq. 5).

The source rows are fused from the source's regions (R^S) as plain region fusion does. The target
rows are fused from the target's regions (R^T), and each of the target's sources that has a source
counterpart reads the counterpart's cross-attention probabilities, computed from the paired source
row's queries, while the run is within that source's fraction of the steps: inherent regions
(``cross_replace.foreground``), the background (``cross_replace.background``), a changed region's
pair (``cross_replace.pair``, word swap or refinement by ``lib_regedit/attention/token_alignment``),
and r_total until τ with the whole prompts aligned. Inside a removed box the background keeps its own
maps: the source's there are the removed object's (measured: with them 1 removal of 8 succeeded).
The values stay the target's own, so a swapped word's meaning lands where the source's word
attended. An added region has no counterpart.

A ``compute`` stage (controller docstring); it replaces plain region fusion in a pair run.
"""

from __future__ import annotations

import torch

from ..pair_plan import PairPlan
from ..replace_schedule import cross_fraction
from ..token_alignment import edited_map
from ..call import AttentionCall, attend, attention_probs
from ..controller import Effect
from .region_fusion import RegionFusion


class PairFusion(Effect):
    name = "pair_fusion"
    cross = True
    self_ = False

    def __init__(self, plan: PairPlan):
        if not isinstance(plan.source, RegionFusion) or not isinstance(plan.target, RegionFusion):
            raise TypeError("a pair fuses in attention mode: the plan needs two RegionFusion sources")
        self.plan = plan
        self.source, self.target = plan.source, plan.target  # region fusion's own row fusion, per image
        self.injected = 0

    def begin_unet_call(self, state) -> None:
        self.plan.update_rows(state)

    def applies_to(self, call: AttentionCall) -> bool:
        return call.is_cross and call.project_context is not None

    def compute(self, call: AttentionCall) -> torch.Tensor | None:
        own = attend(call.q, call.k, call.v, call.extras.get("bias"), call.scale)
        out = own.clone()
        plan = self.plan
        for roles, negative in ((plan.cond_roles, False), (plan.uncond_roles, True)):
            if negative and not (self.source.fuse_uncond or self.target.fuse_uncond):
                continue
            for role, fusion in (("source", self.source), ("target", self.target)):
                rows = tuple(r for r, x in roles.items() if x == role)
                if rows:
                    out[list(rows)] = fusion._fuse(call, rows, own, negative)
        for s, t in plan.pairs:
            out[t] = self._target_row(call, s, t, own)[0]
        return out

    def _probs(self, call, q, k):
        return attention_probs(q, k, scale=call.scale)

    def _read(self, call, q_t, q_s, k_t, v_t, k_s, mapping) -> torch.Tensor:
        probs = edited_map(self._probs(call, q_t, k_t), self._probs(call, q_s, k_s), mapping)
        self.injected += 1
        return probs.to(v_t.dtype) @ v_t

    def _target_row(self, call: AttentionCall, s: int, t: int, own: torch.Tensor) -> torch.Tensor:
        plan, progress = self.plan, call.progress
        q_t, q_s = call.q[t:t + 1], call.q[s:s + 1]
        weights, _ = self.target._layer_weights(call, q_t.device, torch.float32)  # summed in float32, as _fuse
        n = len(self.target.regions)
        fused = torch.zeros_like(own[t:t + 1], dtype=torch.float32)
        for j, region in enumerate(self.target.regions):
            k, v = call.project_context(region.context)
            counterpart = plan.counterparts[j]
            if counterpart is not None and progress < cross_fraction(plan.options, plan.kinds[j]):
                k_s, _ = call.project_context(self.source.regions[counterpart].context)
                fused = fused + weights[j] * self._read(call, q_t, q_s, k, v, k_s, plan.region_mappings[j]).float()
            else:
                fused = fused + weights[j] * attend(q_t, k, v, scale=call.scale).float()
        # r_bg: its prompt, or the rows' own prompts when there is none
        bg_t, bg_s = self.target.background_context, self.source.background_context
        k_bg, v_bg = call.project_context(bg_t) if bg_t is not None else (call.k[t:t + 1], call.v[t:t + 1])
        k_bg_s = call.project_context(bg_s)[0] if bg_s is not None else call.k[s:s + 1]
        background_until = plan.options.cross_replace.pair if plan.background_kind == "change" else \
            plan.options.cross_replace.background
        mapping = plan.background_mapping if bg_t is not None else plan.whole_mapping
        plain_bg = attend(q_t, k_bg, v_bg, scale=call.scale) if bg_t is not None else own[t:t + 1]
        if progress < background_until and mapping is not None and (bg_t is None) == (bg_s is None):
            background = self._read(call, q_t, q_s, k_bg, v_bg, k_bg_s, mapping)
            removed = plan.removed_mask(call.hw)
            if removed is not None:  # a removed object's pixels: the source's maps there are the object's
                keep = removed.reshape(1, 1, -1, 1).to(background.device, background.dtype)
                background = keep * plain_bg + (1 - keep) * background
            fused = fused + weights[n] * background.float()
        else:
            fused = fused + weights[n] * plain_bg.float()
        # r_total, the rows' own prompts: Edit(A^T, A^S) until τ, then A^T (MRGD Eq. 5)
        if progress >= self.target.whole_start and self.target.whole_weight > 0:
            if progress < plan.options.tau:
                whole = self._read(call, q_t, q_s, call.k[t:t + 1], call.v[t:t + 1], call.k[s:s + 1],
                                   plan.whole_mapping)
            else:
                whole = own[t:t + 1]
            fused = fused + weights[n + 1] * whole.float()
        return fused.to(own.dtype)
