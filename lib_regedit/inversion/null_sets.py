"""What the unconditional rows attend to while a real image is reconstructed or edited.

Region fusion fuses the unconditional rows from the regions' negative contexts
(``fusion_sources.FusionSources.contexts``). A *null set* gives each fused source its own
unconditional context: the row's own (r_total), the background's and one per source object region.
That is MRGD's multi-region inversion (§3.3, Alg. 1 line 7): the unconditional embedding is per step
and per region, ``∅_t^i``, and each acts on its region's pixels only, through the fusion weights.

- negative-prompt inversion (Miyake et al. 2023, *Negative-prompt Inversion*): the null set is the
  source's own prompts, so CFG reduces to the conditional prediction the inversion followed;
- null-text inversion (Mokady et al. 2023): one optimised null set per step (``null_text``).

In an edit pair the target's regions read the null context of their source counterpart; an added
region, which has none, reads the background's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..attention.controller import Effect
from ..attention.fusion_sources import FusionSources


@dataclass
class NullSet:
    total: torch.Tensor  # (1, T, C) the unconditional rows' own context
    background: torch.Tensor | None
    regions: tuple[torch.Tensor | None, ...]  # per source object region

    @classmethod
    def of_source(cls, fusion: FusionSources, cond: torch.Tensor) -> "NullSet":
        """Negative-prompt inversion's set: the source's prompts themselves."""
        return cls(cond, fusion.background_context, tuple(r.context for r in fusion.regions))

    @classmethod
    def trainable(cls, fusion: FusionSources, uncond: torch.Tensor) -> "NullSet":
        """Null-text inversion's starting set: the negative prompt's embedding in every slot."""
        def fresh():
            return uncond.detach().clone().float().requires_grad_(True)
        return cls(fresh(), fresh(), tuple(fresh() for _ in fusion.regions))

    def parameters(self) -> list[torch.Tensor]:
        return [t for t in (self.total, self.background, *self.regions) if t is not None and t.requires_grad]

    def detached(self) -> "NullSet":
        def d(t):
            return None if t is None else t.detach().clone()
        return NullSet(d(self.total), d(self.background), tuple(d(t) for t in self.regions))

    def continued(self) -> "NullSet":
        """A trainable copy: the next step's optimisation starts where this one ended (Mokady et al.)."""
        def c(t):
            return None if t is None else t.detach().clone().float().requires_grad_(True)
        return NullSet(c(self.total), c(self.background), tuple(c(t) for t in self.regions))

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.total, self.background, *self.regions) if t is not None)


def apply_to_source(fusion: FusionSources, null: NullSet) -> None:
    """The source's unconditional rows fuse from ``null``."""
    for region, context in zip(fusion.regions, null.regions):
        region.negative_context = context
    fusion.background_negative = null.background
    fusion.fuse_uncond = True


def apply_to_target(fusion: FusionSources, null: NullSet, counterparts: tuple[int | None, ...]) -> None:
    """The target's unconditional rows: each region reads its source counterpart's null context, an
    added region the background's."""
    for region, c in zip(fusion.regions, counterparts):
        region.negative_context = null.regions[c] if c is not None else null.background
    fusion.background_negative = null.background
    fusion.fuse_uncond = True


class NullSchedule(Effect):
    """Puts each step's null set into the pair's fusions before every UNet call (no attention work of
    its own). ``sets[k]`` is denoising step ``k``'s set."""

    name = "null_schedule"
    cross = False
    self_ = False

    def __init__(self, sets: list[NullSet], plan):
        self.sets = sets
        self.plan = plan
        self._current: NullSet | None = None
        self.standing_aside = False  # a call with the fusions' own negative contexts
        fusions = (plan.source, plan.target)
        self._own = [([r.negative_context for r in f.regions], f.background_negative, f.fuse_uncond) for f in fusions]

    def applies_to(self, call) -> bool:
        return False

    def restore(self) -> None:
        """The fusions' own negative contexts back, as the document gave them."""
        for fusion, (regions, background, fuse) in zip((self.plan.source, self.plan.target), self._own):
            for region, context in zip(fusion.regions, regions):
                region.negative_context = context
            fusion.background_negative, fusion.fuse_uncond = background, fuse

    def begin_unet_call(self, state) -> None:
        if self.standing_aside:
            self.restore()
            return
        null = self.sets[min(state.step, len(self.sets) - 1)]
        if self._current is not None and self._current is not null:  # last step's set: its projections go
            state.forget((self._current.background, *self._current.regions))
        self._current = null
        apply_to_source(self.plan.source, null)
        apply_to_target(self.plan.target, null, self.plan.counterparts)
