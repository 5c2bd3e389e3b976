"""When and where the target reads the source's attention maps (MRGD Eq. 5, with prompt-to-prompt's
step fractions per region).

Cross-attention is replaced per fused source (each region's prompt, r_bg, r_total) while the
fraction of steps done is below that source's ``cross_replace`` fraction (r_total: below τ).

Self-attention has no per-region prompt in one fused UNet pass, so each query pixel blends the
source's and the target's maps by how much of it each region owns: β(p) = Σ_r W_r(p) · [progress <
self_replace_r], with W the target's MultiDiffusion weights (the same blend MultiDiffusion would make
of per-region passes that each replaced their maps for their own fraction). Added regions take no
source structure (the source has nothing there), and removed boxes none either (the source's
structure there is the object being removed).
"""

from __future__ import annotations

import torch

from ..documents.edit import EditOptions


def cross_fraction(options: EditOptions, kind: str) -> float:
    """How long a target object region of this kind reads its source counterpart's maps."""
    return {"inherent": options.cross_replace.foreground, "change": options.cross_replace.pair}.get(kind, 0.0)


def self_fractions(options: EditOptions, kinds, background_kind: str = "inherent") -> torch.Tensor:
    """(R + 2,) self-replace fractions for the target's fused sources: its object regions, r_bg, r_total."""
    s = options.self_replace
    objects = [{"inherent": s.foreground, "change": s.pair}.get(kind, 0.0) for kind in kinds]
    background = s.pair if background_kind == "change" else s.background
    return torch.tensor([*objects, background, s.whole], dtype=torch.float32)


def self_blend(weights: torch.Tensor, fractions: torch.Tensor, progress: float,
               removed: torch.Tensor | None = None) -> torch.Tensor:
    """β (h, w) in [0, 1]: each pixel's share of the source's self-attention map.

    ``weights`` (R + 2, h, w) are the target's normalised fusion weights, ``fractions`` (R + 2,) the
    self-replace fraction of each source, ``removed`` (h, w) the union of removed boxes (soft)."""
    active = (progress < fractions).to(weights.dtype).reshape(-1, 1, 1)
    beta = (weights * active).sum(0).clamp(0.0, 1.0)
    if removed is not None:
        beta = beta * (1.0 - removed.to(beta.dtype))
    return beta
