"""A region's LoRA term on a cross-attention key or value projection, as the backends add it.

LoRA per region (``lib_regedit/regions/loras.py``) hands the controller's state one
:data:`ProjectionDelta` per region context (``GenerationState.context_deltas``); each backend's
attention adapter adds it to ``to_k``/``to_v`` of that context with :func:`with_delta`.
"""

from __future__ import annotations

from typing import Callable

import torch

# delta(linear, context) -> the LoRA's term of ``linear(context)`` (same shape), or None where it has none
ProjectionDelta = Callable[[torch.nn.Module, torch.Tensor], "torch.Tensor | None"]


def with_delta(delta: ProjectionDelta | None, linear: torch.nn.Module, context: torch.Tensor,
               out: torch.Tensor) -> torch.Tensor:
    """``out = linear(context)`` plus the region's LoRA term, when it has one."""
    if delta is None:
        return out
    extra = delta(linear, context)
    return out if extra is None else out + extra.to(out.dtype)
