"""Entropy keyword selection and KSSA's maths (MRGD, seed 001 §3.2), as pure functions.

- Each token's cross-attention map is scaled to [0, 255] and the entropy of its 256-bin histogram is
  taken (Eq. 6). Object words attend to a few places (low entropy); quality words spread out (high).
- Per region, the N tokens with the lowest entropy are kept (default N = 15), never BOS, EOS or padding.
- KSSA: the top half of image positions by attention from the keywords become keys whose weight the
  next self-attention at that resolution raises. The reference multiplies their pre-softmax logits
  by 1.5 (in the down blocks); multiplying the logits of key j is the same as scaling key j, which
  keeps PyTorch's fused attention. The post-softmax variant multiplies their probabilities and
  renormalises, which is an additive log-scale bias before the softmax.
"""

from __future__ import annotations

import math

import torch

DEFAULT_KEYWORDS = 15
DEFAULT_SCALE = 1.5


def map_entropy(maps: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the 256-bin histogram of each map scaled to [0, 255]. ``maps``: (T, ...) -> (T,)."""
    flat = maps.reshape(maps.shape[0], -1).float()
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    scaled = (flat - lo) / (hi - lo).clamp_min(1e-12) * 255
    bins = scaled.round().long().clamp(0, 255)
    hist = torch.zeros(flat.shape[0], 256).scatter_add_(1, bins, torch.ones_like(flat))
    p = hist / flat.shape[1]
    return -(p * p.clamp_min(1e-12).log()).sum(1)


def select_keywords(maps: torch.Tensor, candidates: list[int], n: int = DEFAULT_KEYWORDS,
                    forced: list[int] = ()) -> list[int]:
    """Token positions to keep: the user's ``forced`` ones, then the ``n`` lowest-entropy ``candidates``
    (word tokens only: the caller leaves out BOS, EOS and padding). Returned in prompt order."""
    forced = [c for c in forced if c in candidates]
    rest = [c for c in candidates if c not in forced]
    if rest and n > len(forced):
        entropy = map_entropy(maps[rest])
        order = torch.argsort(entropy, stable=True).tolist()
        forced = forced + [rest[i] for i in order[: n - len(forced)]]
    return sorted(forced)


def top_half_positions(keyword_attention: torch.Tensor, within: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean (B, N): per row, the top half of positions by keyword attention (B, N), among ``within``
    (N,) when given (a region's own positions)."""
    scores = keyword_attention.float()
    if within is not None:
        scores = scores.masked_fill(~within.to(scores.device), float("-inf"))
        count = int(within.sum())
    else:
        count = scores.shape[1]
    keep = max(1, math.ceil(count / 2)) if count else 0
    out = torch.zeros_like(scores, dtype=torch.bool)
    if keep:
        out.scatter_(1, scores.topk(keep, dim=1).indices, True)
    return out


def scale_keys(k: torch.Tensor, positions: torch.Tensor, scale: float) -> torch.Tensor:
    """Pre-softmax reweighting: logits q·k_j of the selected keys j multiplied by ``scale``.
    ``k``: (B, heads, N, d); ``positions``: (B, N) boolean."""
    factor = 1 + (scale - 1) * positions.to(k.dtype)
    return k * factor[:, None, :, None]


def softmax_bias(positions: torch.Tensor, scale: float, dtype=torch.float32) -> torch.Tensor:
    """Post-softmax reweighting with renormalisation: p_j ∝ scale · p_j on the selected keys, written as
    an additive bias log(scale) on their logits. Returns (B, 1, 1, N)."""
    return (positions.to(dtype) * math.log(scale))[:, None, None, :]


def word_positions(token_ids: list[int], special: set[int]) -> list[int]:
    """Positions (in the encoded context) of the word tokens: every token but BOS, EOS and padding."""
    return [i for i, t in enumerate(token_ids) if t not in special]
