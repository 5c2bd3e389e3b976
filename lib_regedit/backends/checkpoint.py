"""The model interface: everything a feature asks of a checkpoint, whichever host loaded it.

A feature (layout init, RegionDrag, LIME, region edits of a picture, multi-region guidance) takes a
:class:`Checkpoint` and calls nothing else of the model. Each host implements it once:

- diffusers: ``backends/diffusers_checkpoint.py`` (the Python API and the command line);
- AUTOMATIC1111's ``ldm``/``sgm`` checkpoints: ``backends/ldm_checkpoint.py``;
- WebUI Forge's: ``backends/forge_checkpoint.py``.

All three are duck-typed over the host's objects: nothing here imports a host. Attention is reached
the same way for every host, through one :class:`~lib_regedit.attention.controller.Controller`
given to :meth:`Checkpoint.attach`. Progress and cancel are the host's and travel beside the checkpoint,
as the callbacks each feature takes (``progress(done, total)``, ``cancel()``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, ContextManager, Protocol

import torch


@dataclass
class Conditioning:
    """A prompt as the UNet takes it: the cross-attention ``context`` (rows, tokens, channels) and, on
    SDXL, the pooled text ``vector`` (rows, channels) the UNet's added conditioning carries."""

    context: torch.Tensor
    vector: torch.Tensor | None = None

    def rows(self, index) -> "Conditioning":
        """These rows (an index tensor or list), e.g. one per image of a batch."""
        index = torch.as_tensor(index, device=self.context.device)
        vector = None if self.vector is None else self.vector.index_select(0, index.to(self.vector.device))
        return Conditioning(self.context.index_select(0, index), vector)

    def expand(self, rows: int) -> "Conditioning":
        """One prompt repeated for ``rows`` rows."""
        vector = None if self.vector is None else self.vector.expand(rows, -1)
        return Conditioning(self.context.expand(rows, -1, -1), vector)


class Checkpoint(Protocol):
    """What a feature asks of a checkpoint. Tensors come back as float32 on the device they were
    computed on; callers move them. Every call is differentiable unless it says otherwise: callers
    choose ``torch.no_grad()``."""

    alphas: torch.Tensor
    """ᾱ_t for t = 0..T-1, float32 on the CPU."""
    unet: torch.nn.Module
    """The denoiser's weights (frozen while null-text optimises its embeddings)."""
    key: tuple
    """What identifies these weights, for caches (layout init's sketch, inversions)."""
    differentiable: bool
    """Whether a gradient can run through the UNet (layout guidance, multi-region guidance, null-text)."""

    def conditioning(self, prompt: str, negative: bool = False) -> Conditioning:
        """The prompt encoded as the host encodes it (its weighting and embeddings syntax included)."""

    def tokenize(self, prompt: str) -> list[tuple[int, str]]:
        """The prompt's word tokens: (position in the encoded context, text), no start, end or padding."""

    def eps(self, z: torch.Tensor, t: int, cond: Conditioning) -> torch.Tensor:
        """The noise prediction ε(z_t, t, cond) for the VP latent ``z`` (v-prediction converted), through
        whatever :meth:`attach` gave the model."""

    def posterior_mean(self, pixels: torch.Tensor) -> torch.Tensor:
        """The scaled latent of ``pixels`` (B, 3, H, W) in [-1, 1]: the VAE posterior's mean, so that an
        inversion of it is reproducible (no sampling of the posterior)."""

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixels (B, 3, H, W) in [-1, 1] of the scaled latent ``z``."""

    def attach(self, controller, fusion=None) -> ContextManager:
        """Give the model ``controller``'s attention effects for the ``with`` block, always taken off
        afterwards. ``fusion``: latent mode's region sources, each region its own UNet pass."""

    def needs_image_conditioning(self) -> bool:
        """Whether the checkpoint takes an image beside the latent (inpainting, instruct-pix2pix)."""


def eps_of(checkpoint: Checkpoint, cond: Conditioning) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """``eps(z, t)`` with ``cond`` repeated for the rows of ``z``, without gradients, on the CPU: what a
    DDIM inversion takes (layout init's sketch)."""
    @torch.no_grad()
    def eps(z: torch.Tensor, t: int) -> torch.Tensor:
        return checkpoint.eps(z, t, cond.expand(z.shape[0])).float().cpu()
    return eps


def empty_prompt_eps(checkpoint: Checkpoint) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """:func:`eps_of` with the empty prompt, encoded on the first call only: layout init's inversion of a
    sketch it has cached never calls it."""
    eps = functools.cache(lambda: eps_of(checkpoint, checkpoint.conditioning("")))
    return lambda z, t: eps()(z, t)


def forward_of(checkpoint: Checkpoint, vectors: dict | None):
    """``forward(z, t, context, kinds)``: the model with a context that may be optimised (null-text) and,
    on SDXL, each row's pooled vector looked up by its kind (``vectors[kind]``, one row each)."""
    def forward(z, t, context, kinds):
        vector = None if vectors is None else torch.cat([vectors[k] for k in kinds])
        return checkpoint.eps(z, t, Conditioning(context, vector))
    return forward
