"""What a gradient through a model keeps, and how little it can keep (``docs/memory.md``).

Three features differentiate through a model to its input, never to its weights: layout guidance (the
UNet, to the latent), null-text inversion (the UNet, to the null embeddings) and multi-region guidance
(the VAE decoder, to the predicted clean latents). Autograd keeps, for the backward pass, every tensor a
layer needs for the gradients it may be asked for. :func:`lean` holds that to what the input's gradient
needs, for any host's modules (diffusers, ``ldm``, ``sgm``):

- the weights' ``requires_grad`` off: a linear or convolution layer then keeps no copy of its input for
  its weight's gradient (the WebUI and diffusers load models with trainable flags on);
- the host's own checkpointing off: ldm/sgm blocks built with ``use_checkpoint`` (SDXL's own
  ``sd_xl_base.yaml`` sets it; WebUI v1.10 clears it when it loads a model, other loaders may not) run
  their forward without a graph and recompute it in the backward pass (a reentrant
  ``CheckpointFunction``), so anything taken from inside such a block, as layout guidance takes its
  attention maps, could not be differentiated at all; the flags are given back afterwards;
- the residual blocks checkpointed (``torch.utils.checkpoint``, non-reentrant): a block keeps only its
  input, and recomputes its normalisations, activations and convolutions in the backward pass. Residual
  blocks hold no attention, so no attention effect runs twice. The recomputation is the same arithmetic,
  so gradients are bit for bit the same; it costs one more forward pass of those blocks.

Measured with ``python -m lib_regedit.bench memory`` (the table in ``docs/memory.md``).
"""

from __future__ import annotations

import contextlib

import torch
from torch.utils.checkpoint import checkpoint

# Blocks without text attention, so no attention effect of ours runs in them: residual blocks (diffusers,
# ldm/sgm VAE, ldm/sgm UNet), upsamplers (diffusers, ldm/sgm), and the VAE's mid block and self-attention
# (diffusers' UNetMidBlock2D is the VAE's; the UNet's is UNetMidBlock2DCrossAttn; ldm/sgm's AttnBlock), and
# diffusers' VAE decoder levels (UpDecoderBlock2D: a level then keeps only its input; ldm/sgm's decoder
# loops over its levels' parts itself, so there the parts are checkpointed one by one).
RESIDUAL_BLOCKS = ("ResnetBlock2D", "ResnetBlock", "ResBlock", "Upsample2D", "Upsample", "UNetMidBlock2D",
                   "AttnBlock", "MemoryEfficientAttnBlock", "UpDecoderBlock2D")


def residual_blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in module.modules() if type(m).__name__ in RESIDUAL_BLOCKS]


HOST_CHECKPOINT_FLAGS = ("checkpoint", "use_checkpoint")  # ldm/sgm BasicTransformerBlock, ResBlock


@contextlib.contextmanager
def lean(module: torch.nn.Module, checkpointed: bool = True):
    """``module`` for a gradient to its input only: weights frozen, the host's own reentrant
    checkpointing off, and (``checkpointed``) its residual blocks recomputed in the backward pass.
    Everything is given back afterwards, failures included."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    host = [(m, name) for m in module.modules() for name in HOST_CHECKPOINT_FLAGS
            if getattr(m, name, None) is True]
    patched = []
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        for m, name in host:
            setattr(m, name, False)
        if checkpointed:
            for block in residual_blocks(module):
                if "forward" in block.__dict__:  # someone else's patch: leave that block alone
                    continue
                block.forward = _checkpointed(block)
                patched.append(block)
        yield module
    finally:
        for block in patched:
            del block.forward
        for m, name in host:
            setattr(m, name, True)
        for p, flag in flags:
            p.requires_grad_(flag)


def _checkpointed(block: torch.nn.Module):
    forward = type(block).forward

    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(block, *args, **kwargs)
        return checkpoint(forward, block, *args, use_reentrant=False, **kwargs)
    run.regedit_checkpoint = True
    return run
