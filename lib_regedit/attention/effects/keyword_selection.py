"""Entropy keyword selection (MRGD, seed 001 §3.2, Eq. 6), refreshed during sampling.

Each region's prompt is attended by the queries of the conditional rows (as region fusion does); its
per-token maps are captured at a quarter of the latent size ("16×16" for SD's 64×64 latent, the
closest resolution the UNet has otherwise), averaged over heads, rows, the down and up layers at that
resolution and the steps since the last refresh. Every ``refresh_every`` steps each region keeps its
user keywords plus the lowest-entropy word tokens, N in all (default 15).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..keywords import DEFAULT_KEYWORDS, select_keywords
from ...masks import map_resolution
from ..call import AttentionCall, attention_probs
from ..controller import Effect, GenerationState


@dataclass
class RegionKeywords:
    """One region's prompt as keyword selection sees it: its box (a shape's bounding box), shape (or
    None), context and word tokens."""

    index: int
    box: tuple[float, float, float, float]
    context: torch.Tensor
    words: list[tuple[int, str]]  # (position in the context, token text), BOS/EOS/padding left out
    forced: list[int] = field(default_factory=list)  # positions of the user's keywords
    selected: list[int] = field(default_factory=list)
    shape: object = None  # a polygon, brush strokes or mask-picture area; None: the box

    def selected_words(self) -> list[str]:
        text = dict(self.words)
        return [text[p] for p in self.selected]


class KeywordSelection(Effect):
    name = "keyword_selection"
    cross = True
    self_ = False

    def __init__(self, regions: list[RegionKeywords], n: int = DEFAULT_KEYWORDS, refresh_every: int = 5,
                 downscale: int = 4, levels: tuple[str, ...] = ("down", "up")):
        self.regions = regions
        self.n = n
        self.refresh_every = max(1, refresh_every)
        self.downscale = downscale
        self.levels = levels
        self.seen: set[tuple[int, int]] = set()
        self.sums: dict[int, torch.Tensor] = {}
        self.counts: dict[int, int] = {}
        self.next_refresh = 1
        self.refreshes = 0
        self.last_maps: dict[int, torch.Tensor] = {}

    def target_hw(self, latent_hw: tuple[int, int]) -> tuple[int, int]:
        """The capture resolution: latent/downscale, or the closest one the UNet has."""
        return map_resolution(latent_hw, self.downscale, self.seen)

    def applies_to(self, call: AttentionCall) -> bool:
        return call.is_cross and bool(call.rows.cond) and call.project_context is not None and call.level in self.levels

    def begin_unet_call(self, state: GenerationState) -> None:
        if state.step >= self.next_refresh and self.counts:
            for region in self.regions:
                if self.counts.get(region.index):
                    maps = self.sums[region.index] / self.counts[region.index]
                    region.selected = select_keywords(maps, [p for p, _ in region.words], self.n, region.forced)
                    self.last_maps[region.index] = maps
            self.sums.clear()
            self.counts.clear()
            self.refreshes += 1
            self.next_refresh = state.step + self.refresh_every

    def region_probs(self, call: AttentionCall, region: RegionKeywords) -> torch.Tensor:
        """Attention probabilities (cond rows, heads, N, T) of the queries over the region's prompt."""
        k, _ = call.project_context(region.context)
        index = torch.tensor(call.rows.cond, device=call.q.device)
        q = call.q.index_select(0, index).float()
        return attention_probs(q, k.float().expand(q.shape[0], -1, -1, -1), scale=call.scale)

    def observe(self, call: AttentionCall, out: torch.Tensor) -> None:
        self.seen.add(call.hw)
        if call.hw != self.target_hw(call.latent_hw):
            return
        for region in self.regions:
            maps = self.region_probs(call, region).mean((0, 1)).T.reshape(-1, *call.hw).cpu()
            if region.index in self.sums and self.sums[region.index].shape == maps.shape:
                self.sums[region.index] += maps
                self.counts[region.index] += 1
            else:
                self.sums[region.index], self.counts[region.index] = maps, 1

    def keyword_maps(self) -> list[torch.Tensor | None]:
        """Per region, the mean map (h, w) of its selected keywords, from the latest captured maps."""
        out = []
        for region in self.regions:
            if self.counts.get(region.index):
                maps = self.sums[region.index] / self.counts[region.index]
            else:
                maps = self.last_maps.get(region.index)
            out.append(maps[region.selected].mean(0) if maps is not None and region.selected else None)
        return out

    def summary(self) -> str:
        """``1: red, circle; 2: blue, square`` for the infotext."""
        return "; ".join(f"{r.index + 1}: {', '.join(r.selected_words()) or '-'}" for r in self.regions)
