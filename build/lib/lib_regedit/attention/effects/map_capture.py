"""Capture per-token cross-attention maps of the conditional rows (the row's own prompt, r_total).

Used for layout previews and, later, entropy keyword selection (MRGD §3.2), which reads the maps at
a quarter of the latent size ("16×16" for SD's 64×64 latent), averaged over heads and layers.
"""

from __future__ import annotations

import math

import torch

from ..call import AttentionCall, attention_probs
from ..controller import Effect


class MapCapture(Effect):
    name = "map_capture"
    cross = True
    self_ = False

    def __init__(self, downscale: int | None = 4, levels: tuple[str, ...] = ("down", "up"),
                 layer_filter=None, steps: tuple[float, float] = (0.0, 1.0)):
        self.downscale = downscale
        self.levels = levels
        self.layer_filter = layer_filter
        self.steps = steps
        self.sums: dict[tuple[int, int], torch.Tensor] = {}
        self.counts: dict[tuple[int, int], int] = {}

    def applies_to(self, call: AttentionCall) -> bool:
        if not call.is_cross or not call.rows.cond:
            return False
        if not self.steps[0] <= call.progress <= self.steps[1]:
            return False
        if self.layer_filter is not None:
            return bool(self.layer_filter(call.layer))
        if call.level not in self.levels:
            return False
        return self.downscale is None or math.ceil(call.latent_hw[0] / self.downscale) == call.hw[0]

    def observe(self, call: AttentionCall, out: torch.Tensor) -> None:
        index = torch.tensor(call.rows.cond, device=call.q.device)
        probs = attention_probs(call.q.index_select(0, index).float(), call.k.index_select(0, index).float(),
                                scale=call.scale)
        maps = probs.mean(1).transpose(1, 2).reshape(len(call.rows.cond), -1, *call.hw).detach().cpu()
        if call.hw in self.sums and self.sums[call.hw].shape == maps.shape:
            self.sums[call.hw] += maps
            self.counts[call.hw] += 1
        else:
            self.sums[call.hw], self.counts[call.hw] = maps, 1

    def maps(self, hw: tuple[int, int] | None = None) -> torch.Tensor:
        """Mean maps (cond rows, tokens, h, w); ``hw`` picks a resolution (default: the largest)."""
        if not self.sums:
            raise RuntimeError("no attention maps were captured (no matching layer ran)")
        hw = hw or max(self.sums, key=lambda k: k[0] * k[1])
        return self.sums[hw] / self.counts[hw]

