"""The neutral attention call that every backend produces, and the plain attention it defaults to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class RowLayout:
    """Which batch rows of one UNet call are conditional (prompt) and which unconditional.

    Read from what the sampler passed, never assumed: the WebUI stacks cond rows first, diffusers
    puts uncond first, and either may run them in separate calls or drop the uncond rows.
    """

    cond: tuple[int, ...]
    uncond: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.cond) + len(self.uncond)

    @staticmethod
    def all_cond(batch: int) -> "RowLayout":
        return RowLayout(tuple(range(batch)), ())


@dataclass
class AttentionCall:
    """One attention computation, backend-neutral.

    ``q``, ``k``, ``v`` are (batch, heads, tokens, head_dim) after the input projections.
    ``project_context`` maps another text context (1, T, C) through this layer's key and value
    projections, giving (1, heads, T, head_dim) each, so effects can attend to other prompts.
    """

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    is_cross: bool
    layer: str
    hw: tuple[int, int]
    rows: RowLayout
    step: int
    total_steps: int
    latent_hw: tuple[int, int] = (0, 0)
    project_context: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    scale: float | None = None
    extras: dict = field(default_factory=dict)

    @property
    def progress(self) -> float:
        """Fraction of the sampling steps done, in [0, 1)."""
        return self.step / max(1, self.total_steps)

    @property
    def level(self) -> str:
        """'down', 'mid' or 'up': where the layer sits in the UNet (from its name)."""
        for part in ("down", "mid", "up", "input", "middle", "output"):
            if part in self.layer:
                return {"input": "down", "middle": "mid", "output": "up"}.get(part, part)
        return "unknown"


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None,
           scale: float | None = None) -> torch.Tensor:
    """softmax(q kᵀ · scale + bias) v with PyTorch's fused kernel."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)


def attention_probs(q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor | None = None,
                    scale: float | None = None) -> torch.Tensor:
    """The explicit softmax(q kᵀ · scale + bias), for effects that read the maps: float32 whatever the
    model's dtype. Computed in float32 inside: fp16 logits q·kᵀ overflow on some checkpoints (SD 2.x, the
    reason for the WebUI's "upcast attention"), and the maps are blended, captured and entropy-ranked
    afterwards. Callers cast the probabilities to ``v``'s dtype where they multiply it."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    logits = (q.float() @ k.float().transpose(-1, -2)) * scale
    if bias is not None:
        logits = logits + bias
    return logits.softmax(-1)
