"""Capture for LIME's RoI (LIME, Simsar et al. 2025, §3.1): at one step, the outputs of the attention
layers (self and cross) at the feature resolutions, and the cross-attention of the edit tokens
(averaged over heads). An ``observe`` stage.

Rows are read from the call, as everywhere: the maps come from the conditional rows (the instruction);
the features from the first unconditional row, which in instruct-pix2pix's guidance is the image-only
branch in the WebUI and in diffusers alike (the reference reads that branch: the source image's
features, not yet pulled by the instruction), and from the conditional rows when a run has no
unconditional ones (CFG scale 1).

The maps may come from another step and other resolutions than the features (``map_step``,
``maps_finest``; LIME's ``maps: "first"``, ours): the first step's, at the finest resolution with
cross-attention (the latent's own in SD 1.x; half of it in SDXL, whose first level has none), in the
up blocks. The paper reads them with the features (``map_step`` None).
"""

from __future__ import annotations

import torch

from ..call import AttentionCall, attention_probs
from ..controller import Effect


def downscale(call: AttentionCall) -> int:
    """How many times smaller than the latent this layer's grid is (1 = the latent's resolution)."""
    return max(1, round(call.latent_hw[0] / max(1, call.hw[0])))


class FeatureStepReached(Exception):
    """Raised when the first UNet call after the feature step starts: the first pass has what it needs
    (caught by whoever runs the pass; both backends call the UNet through a pre-hook that reaches here)."""


class RoiCapture(Effect):
    name = "roi_capture"
    cross = True
    self_ = True

    def __init__(self, feature_step: float, positions: list[int], downscales: tuple[int, ...] = (2, 4, 8),
                 map_levels: tuple[str, ...] = ("down", "mid", "up"), map_step: float | None = None,
                 maps_finest: bool = False):
        self.feature_step = feature_step  # a fraction of the run; the step index follows the run's length
        self.map_step = map_step  # the maps' step (a fraction, at most the feature step); None: the feature step
        self.step = 0
        self.map_index = 0
        self.seen_step = None
        self.positions = list(positions)
        self.downscales = tuple(downscales)
        self.maps_finest = maps_finest  # maps at every resolution, the finest kept; else at ``downscales``
        self.map_levels = tuple(map_levels)
        self.uncond_features: list[torch.Tensor] = []  # (C, h, w) each
        self.cond_features: list[torch.Tensor] = []
        self.maps: dict[tuple[int, int], list[torch.Tensor]] = {}  # hw -> [(h, w)]

    def feature_index(self, total_steps: int) -> int:
        """The step whose features find the RoI, of a run of ``total_steps``: the first pass runs steps
        0 to this one (``feature_index + 1`` steps), then stops."""
        return min(total_steps - 1, max(0, round(self.feature_step * total_steps)))

    def begin_unet_call(self, state) -> None:
        self.step = self.feature_index(state.total_steps)
        self.map_index = self.step if self.map_step is None else \
            min(self.step, max(0, round(self.map_step * state.total_steps)))
        if state.step > self.step:
            raise FeatureStepReached
        if state.step != self.seen_step:  # keep the latest step's: a short run may end before the feature step
            self.seen_step = state.step
            self.uncond_features, self.cond_features = [], []
            if state.step <= self.map_index:
                self.maps = {}

    def _features_here(self, call: AttentionCall) -> bool:
        return downscale(call) in self.downscales

    def _maps_here(self, call: AttentionCall) -> bool:
        return call.is_cross and call.step <= self.map_index and call.level in self.map_levels \
            and (self.maps_finest or downscale(call) in self.downscales)

    def applies_to(self, call: AttentionCall) -> bool:
        return call.step == self.seen_step and (self._features_here(call) or self._maps_here(call))

    @property
    def features(self) -> list[torch.Tensor]:
        """(C, h, w) per layer: the image-only branch's, or the conditional rows' without one."""
        return self.uncond_features or self.cond_features

    def observe(self, call: AttentionCall, out: torch.Tensor) -> None:
        h, w = call.hw
        features = self._features_here(call)
        if call.rows.uncond and features:
            self.uncond_features.append(_channels_first(out[call.rows.uncond[0]], h, w))
        if not call.rows.cond:
            return
        index = torch.tensor(call.rows.cond, device=out.device)
        if features:
            self.cond_features.append(_channels_first(out.index_select(0, index).mean(0), h, w))
        if self._maps_here(call):
            positions = [p for p in self.positions if p < call.k.shape[2]]
            if not positions:
                return
            probs = attention_probs(call.q.index_select(0, index).detach().float(),
                                    call.k.index_select(0, index).detach().float(), scale=call.scale)
            token_map = probs[..., positions].mean((0, 1, 3)).reshape(h, w).cpu()
            self.maps.setdefault(call.hw, []).append(token_map)

    def attention(self) -> torch.Tensor | None:
        """The edit tokens' mean cross-attention, each resolution's mean upsampled to the finest (with
        ``maps_finest``, the finest resolution's alone)."""
        if not self.maps:
            return None
        finest = max(self.maps, key=lambda hw: hw[0] * hw[1])
        maps = [torch.stack(m).mean(0) for hw, m in self.maps.items() if hw == finest or not self.maps_finest]
        maps = [torch.nn.functional.interpolate(m[None, None], size=finest, mode="bilinear", align_corners=True)[0, 0]
                for m in maps]
        return torch.stack(maps).mean(0)


def _channels_first(out: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(heads, N, d) attention output of one row as (heads·d, h, w)."""
    return out.detach().float().permute(0, 2, 1).reshape(-1, h, w).cpu()
