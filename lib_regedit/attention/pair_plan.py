"""Everything the pair's attention effects share during one run: the source's and the target's
fused sources, which target source reads which source source's maps and with what token mapping,
and which rows of the current UNet call are pairs (updated at each call)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..documents.edit import EditOptions
from .fusion_sources import FusionSources
from ..masks import area_mask
from .pair_rows import pairs_of, row_roles
from .replace_schedule import self_blend, self_fractions
from .token_alignment import TokenMapping


@dataclass
class PairPlan:
    source: FusionSources
    target: FusionSources
    counterparts: tuple[int | None, ...]  # per target object region: its source object region
    kinds: tuple[str, ...]  # per target object region: inherent, add or change
    region_mappings: tuple[TokenMapping | None, ...]
    background_mapping: TokenMapping | None
    whole_mapping: TokenMapping
    options: EditOptions
    roles: tuple[str, ...]  # role of each row of the sampler's conditional tensor
    background_kind: str = "inherent"
    removed_boxes: tuple[tuple, ...] = ()  # x, y, w, h, feather[, shape] (None or absent: the box)
    pairs: list[tuple[int, int]] = field(default_factory=list)
    uncond_roles: dict[int, str] = field(default_factory=dict)
    cond_roles: dict[int, str] = field(default_factory=dict)
    _blend: dict = field(default_factory=dict)

    def update_rows(self, state) -> None:
        """Read this UNet call's pairs from its rows (``GenerationState.rows`` and ``.context``)."""
        rows = state.rows
        if rows is None:
            self.pairs, self.cond_roles, self.uncond_roles = [], {}, {}
            return
        self.cond_roles = row_roles(state.context, rows.cond, state.cond_reference, self.roles)
        self.uncond_roles = row_roles(None, rows.uncond, None, self.roles)
        self.pairs = pairs_of(self.cond_roles)

    def self_blend(self, hw: tuple[int, int], progress: float) -> torch.Tensor:
        """β (h, w): each pixel's share of the source's self-attention map at this progress."""
        weights = self.target.weights(hw, progress)
        fractions = self_fractions(self.options, self.kinds, self.background_kind)
        key = (hw, progress >= self.target.whole_start, tuple((progress < fractions).tolist()))
        if key not in self._blend:
            self._blend[key] = self_blend(weights, fractions, progress, self.removed_mask(hw))
        return self._blend[key]

    def removed_mask(self, hw: tuple[int, int]) -> torch.Tensor | None:
        """(h, w) the union of the removed boxes (soft), or None when nothing is removed."""
        if not self.removed_boxes:
            return None
        key = ("removed", hw)
        if key not in self._blend:
            self._blend[key] = torch.stack([area_mask(r[:4], r[5] if len(r) > 5 else None, *hw, r[4])
                                            for r in self.removed_boxes]).amax(0)
        return self._blend[key]

    def replacing_self(self, progress: float) -> bool:
        s = self.options.self_replace
        return progress < max(s.background, s.foreground, s.pair, s.whole)
