"""Self-attention map injection for an edit pair (prompt-to-prompt, Hertz et al. 2022; MRGD §3.2).

In self-attention layers at most latent / ``self_downscale`` on a side (prompt-to-prompt's ≤ 16²
for SD's 64² latent), the target row's attention probabilities become β·A^S + (1 − β)·A^T, with A^S
from the paired source row and β per query pixel from the regions' self-replace fractions
(``lib_regedit/attention/replace_schedule.self_blend``). The values stay the target's own: the
source's layout, the target's content. A ``compute`` stage (controller docstring).
"""

from __future__ import annotations

import torch

from ..pair_plan import PairPlan
from ..call import AttentionCall, attend, attention_probs
from ..controller import Effect


class SelfMapInjection(Effect):
    name = "self_map_injection"
    cross = False
    self_ = True

    def __init__(self, plan: PairPlan):
        self.plan = plan
        self.injected = 0

    def applies_to(self, call: AttentionCall) -> bool:
        if call.is_cross or not self.plan.pairs or not self.plan.replacing_self(call.progress):
            return False
        d = self.plan.options.self_downscale
        lh, lw = call.latent_hw
        return call.hw[0] * call.hw[1] * d * d <= max(1, lh * lw)

    def compute(self, call: AttentionCall) -> torch.Tensor | None:
        beta = self.plan.self_blend(call.hw, call.progress)
        if not bool((beta > 0).any()):
            return None
        bias = call.extras.get("bias")
        out = attend(call.q, call.k, call.v, bias, call.scale).clone()
        beta = beta.reshape(1, 1, -1, 1).to(call.q.device, torch.float32)  # the maps are float32 (attention_probs)

        def row_bias(r):
            if bias is None:
                return None
            return bias[r:r + 1] if bias.dim() == 4 and bias.shape[0] > 1 else bias

        for s, t in self.plan.pairs:
            a_s = attention_probs(call.q[s:s + 1], call.k[s:s + 1], row_bias(s), call.scale)
            a_t = attention_probs(call.q[t:t + 1], call.k[t:t + 1], row_bias(t), call.scale)
            out[t] = ((beta * a_s + (1 - beta) * a_t).to(call.v.dtype) @ call.v[t:t + 1])[0]
            self.injected += 1
        return out
