"""What runs in float32 inside a half-precision (fp16, bf16) model, and the one loss scale.

A model loaded in half precision computes its own layers in half precision; the engine's steps around it
take what they need in float32 and give the model back its own dtype:

- the explicit attention maps (``attention/call.attention_probs``): fp16 logits overflow on some models;
- the region blends (``RegionFusion._fuse``, ``LatentFusion.fuse``): weights summing to one per pixel;
- every latent a sampler of ours carries (DDIM inversion, the pair's denoising, RegionDrag): the model's
  ε is read as float32 and the accumulation stays float32;
- null-text's embeddings and their optimiser (``inversion/invert.py``), and the guidance gradients'
  arithmetic (``editing/diffusers_guidance.py``, ``editing/webui_guidance.py``);
- rows are recognised by comparing contexts in the coarser dtype (``attention/controller._matches``).

Gradients through a half-precision UNet (layout guidance, null-text) are taken of the loss times
:data:`LOSS_SCALE` and divided by it afterwards, as ``torch.amp.GradScaler`` does: the loss is a mean over
every latent position, so at SD's 64² latent the fp16 gradients inside the UNet fall below fp16's
smallest normal number (6·10⁻⁵) and lose their digits or flush to zero. Measured on the tiny test UNet at
a 64² latent, fp16 against float32: layout guidance's gradient 7.7 % off unscaled, 0.24 % scaled;
null-text's 1.2 % and 0.13 %. The scale is a power of two, so float32 gradients are bit for bit the
unscaled ones; bf16 has float32's exponent range and gains nothing, loses nothing.
"""

from __future__ import annotations

from typing import Sequence

import torch

LOSS_SCALE = 2.0 ** 12
"""Headroom: fp16 overflows (65504) only where an unscaled gradient inside the backward pass exceeds 16."""


def finite(tensors: Sequence[torch.Tensor | None]) -> bool:
    return all(t is None or bool(torch.isfinite(t).all()) for t in tensors)


def scaled_grad(loss: torch.Tensor, inputs: Sequence[torch.Tensor], **kwargs) -> tuple[torch.Tensor | None, ...]:
    """``torch.autograd.grad(loss, inputs)`` through a model of any dtype, taken at :data:`LOSS_SCALE`. A
    gradient that overflowed comes back non-finite, as an unscaled one that overflowed would: the caller
    skips that update."""
    grads = torch.autograd.grad(loss * LOSS_SCALE, list(inputs), **kwargs)
    return tuple(None if g is None else g / LOSS_SCALE for g in grads)


def scaled_backward(loss: torch.Tensor, parameters: Sequence[torch.Tensor]) -> bool:
    """``loss.backward()`` at :data:`LOSS_SCALE`, the ``parameters``' gradients unscaled; whether they are
    finite (an optimiser step on an overflowed gradient would poison its parameters for good)."""
    (loss * LOSS_SCALE).backward()
    for p in parameters:
        if p.grad is not None:
            p.grad.div_(LOSS_SCALE)
    return finite([p.grad for p in parameters])
