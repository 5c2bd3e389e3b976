"""A diffusers Stable Diffusion pipeline (SD 1.x/2.x, SDXL) as a
:class:`~lib_regedit.backends.checkpoint.Checkpoint`: the host of the Python API and the command line.

Attention effects reach the UNet through diffusers attention processors (``diffusers_backend``).
"""

from __future__ import annotations

import contextlib
import functools

import torch

from . import diffusers_backend
from .checkpoint import Conditioning


def is_sdxl(pipe) -> bool:
    return hasattr(pipe, "text_encoder_2")


def encode_prompt(pipe, prompt: str, negative_prompt: str | None = None):
    """(cond, uncond, pooled, negative_pooled) embeddings; pooled ones only for SDXL."""
    device = pipe._execution_device
    with torch.no_grad():
        if is_sdxl(pipe):
            return pipe.encode_prompt(prompt, device=device, num_images_per_prompt=1,
                                      do_classifier_free_guidance=negative_prompt is not None,
                                      negative_prompt=negative_prompt)
        cond, uncond = pipe.encode_prompt(prompt, device, 1, negative_prompt is not None,
                                          negative_prompt=negative_prompt)
        return cond, uncond, None, None


def added_conditioning(pooled, rows: int, width: int, height: int) -> dict:
    """SDXL's added conditioning (pooled text, size and crop) for ``rows`` rows; nothing for SD."""
    if pooled is None:
        return {}
    time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=pooled.dtype, device=pooled.device)
    return {"added_cond_kwargs": {"text_embeds": pooled.expand(rows, -1), "time_ids": time_ids.expand(rows, -1)}}


def pipeline_words(pipe, prompt: str) -> list[tuple[int, str]]:
    """Word tokens of ``prompt`` as (position in the encoded context, text): no BOS, EOS or padding."""
    tok = pipe.tokenizer
    ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True).input_ids
    special = {tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}
    return [(i, tok.convert_ids_to_tokens(t).replace("</w>", "")) for i, t in enumerate(ids) if t not in special]


def pipeline_key(pipe) -> tuple:
    """What identifies the pipeline's weights for caches: its UNet and VAE objects, and a fingerprint of
    their first weights (an in-place load of other weights changes it)."""
    unet, vae = pipe.unet, pipe.vae
    probe = (float(unet.conv_in.weight.detach().float().sum()), float(vae.encoder.conv_in.weight.detach().float().sum()))
    return id(unet), id(vae), str(unet.dtype), str(unet.device), probe


class DiffusersCheckpoint:
    """``pipe`` at a generation size (SDXL's added conditioning carries it)."""

    differentiable = True

    def __init__(self, pipe, width: int, height: int):
        self.pipe = pipe
        self.unet = pipe.unet
        self.width, self.height = width, height
        self.alphas = pipe.scheduler.alphas_cumprod.detach().float().cpu()

    @functools.cached_property
    def key(self) -> tuple:
        """Read from the weights when a cache asks (a posterior mean alone does not)."""
        return pipeline_key(self.pipe)

    def conditioning(self, prompt: str, negative: bool = False) -> Conditioning:
        if negative:  # the pipeline's own path for a negative prompt (SDXL may zero an empty one)
            _, context, _, pooled = encode_prompt(self.pipe, "", prompt)
        else:
            context, _, pooled, _ = encode_prompt(self.pipe, prompt)
        return Conditioning(context, pooled)

    def tokenize(self, prompt: str) -> list[tuple[int, str]]:
        return pipeline_words(self.pipe, prompt)

    def eps(self, z: torch.Tensor, t: int, cond: Conditioning) -> torch.Tensor:
        unet = self.unet
        rows = z.shape[0]
        context = cond.context.to(unet.device, unet.dtype)
        if context.shape[0] != rows:
            context = context.expand(rows, -1, -1)
        added = added_conditioning(cond.vector, rows, self.width, self.height)
        timestep = t if isinstance(t, torch.Tensor) else torch.tensor(t, device=unet.device)
        return unet(z.to(unet.device, unet.dtype), timestep, encoder_hidden_states=context, **added).sample.float()

    def posterior_mean(self, pixels: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        with torch.no_grad():
            return vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mean.float() * vae.config.scaling_factor

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        return vae.decode((z / vae.config.scaling_factor).to(vae.device, vae.dtype)).sample.float()

    @contextlib.contextmanager
    def attach(self, controller, fusion=None):
        cm = diffusers_backend.latent_attached(self.unet, controller, fusion) if fusion is not None \
            else diffusers_backend.attached(self.unet, controller)
        with cm:
            yield

    def needs_image_conditioning(self) -> bool:
        return self.unet.config.in_channels != getattr(self.pipe.vae.config, "latent_channels", 4)
