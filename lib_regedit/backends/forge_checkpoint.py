"""A WebUI Forge checkpoint as a :class:`~lib_regedit.backends.checkpoint.Checkpoint`.

Forge has no ``apply_model(x, t, cond)`` on the checkpoint: its ``KModel`` takes k-diffusion's sigma and
scaled input and returns the denoised latent. :func:`model_eps` turns that into the ``eps(z_t, t)``
of the VP latent the engine's inversions work in. Duck-typed: nothing imports Forge; the WebUI adapter
hands in Forge's ``load_models_gpu`` and attention function.

Attention effects reach Forge's UNet through a clone of its ``UnetPatcher`` (``forge_backend.patched``).
Forge rebuilds its patcher for every sampling call, so while :meth:`ForgeCheckpoint.attach` holds a
controller, :meth:`ForgeCheckpoint.sampling_unet` patches the patcher of each sampling call the WebUI
makes (the adapter calls it from ``process_before_every_sampling``), and the direct calls of
:meth:`ForgeCheckpoint.eps` go through a clone made when the controller was attached.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch

from . import forge_backend
from .checkpoint import Conditioning
from .ldm_checkpoint import as_conditioning, embedder_words


def alphas_cumprod(sd_model) -> torch.Tensor:
    """The checkpoint's ᾱ_t for t = 0..999 (Forge keeps them in its k-diffusion predictor)."""
    return sd_model.forge_objects.unet.model.predictor.alphas_cumprod.detach().float().cpu()


def posterior_mean(sd_model, image: torch.Tensor) -> torch.Tensor:
    """The scaled latent of ``image`` (B, 3, H, W) in [-1, 1], deterministic: the mean of the VAE's
    posterior (Forge's own ``encode_first_stage`` samples it with the unseeded global RNG)."""
    vae = sd_model.forge_objects.vae
    model = vae.first_stage_model
    x = image.to(getattr(vae, "device", image.device), getattr(vae, "vae_dtype", image.dtype))
    moments = model.encoder(x)
    if getattr(model, "quant_conv", None) is not None:
        moments = model.quant_conv(moments)
    return model.process_in(moments.chunk(2, dim=1)[0].float())


def model_eps(sd_model, z: torch.Tensor, t: int, context: torch.Tensor, vector: torch.Tensor | None = None,
              unet_patcher=None) -> torch.Tensor:
    """The checkpoint's noise prediction for the VP latent ``z`` at timestep ``t`` with the text ``context``
    (SDXL: and its pooled ``vector``), differentiable (callers choose ``no_grad``). With ``unet_patcher``
    (a patched clone, ``forge_backend.patched``) the call goes through its attention replacements and UNet
    wrapper, every row marked conditional, as Forge's sampler would call it."""
    return denoiser_eps(sd_model.forge_objects.unet.model, alphas_cumprod(sd_model), z, t, context, vector,
                        unet_patcher)


def denoiser_eps(kmodel, alphas: torch.Tensor, z: torch.Tensor, t: int, context: torch.Tensor,
                 vector: torch.Tensor | None = None, unet_patcher=None) -> torch.Tensor:
    """:func:`model_eps` on a k-diffusion denoiser ``kmodel`` (Forge's ``KModel``, ComfyUI's ``BaseModel``:
    ``apply_model(x, sigma, c_crossattn=..., y=...)`` returns the denoised latent) with ᾱ ``alphas``."""
    options = getattr(unet_patcher, "model_options", None) or {}
    parameter = next(kmodel.diffusion_model.parameters())
    a = alphas[int(t)]
    sigma = ((1 - a) / a).sqrt()
    x = (z.float() / a.sqrt()).to(parameter.device)  # k-diffusion's input: z_t / sqrt(ᾱ) = z_t sqrt(1 + σ²)
    batch = x.shape[0]
    sigmas = torch.full((batch,), float(sigma), device=x.device)
    c = {"c_crossattn": context.to(x.device).expand(batch, -1, -1)}
    if vector is not None:
        c["y"] = vector.to(x.device).expand(batch, -1)
    marks = [0]  # the mark of a conditional chunk (Forge and ComfyUI)
    c["transformer_options"] = dict(options.get("transformer_options", {}), cond_or_uncond=marks, sigmas=sigmas,
                                    cond_indices=list(range(batch)), uncond_indices=[])
    wrapper = options.get("model_function_wrapper")
    if wrapper is not None:
        denoised = wrapper(kmodel.apply_model, {"input": x, "timestep": sigmas, "c": c, "cond_or_uncond": marks})
    else:
        denoised = kmodel.apply_model(x, sigmas, **c)
    return (x - denoised.float()) / sigma


class PatcherEffects:
    """Attention effects on a host whose UNet is patched through clones of its patcher (Forge, ComfyUI):
    :meth:`attach` holds a controller for the ``with`` block, and the checkpoint's own ε calls go through
    a clone patched on the first call while it is held (:meth:`direct_patcher`)."""

    attention_function: Callable | None = None  # the host's own attention, where no effect acts
    _effects = None  # (controller, fusion) while attached
    _held = None  # the patched clone direct calls go through

    def direct_patcher(self, unet_patcher):
        """The patched clone of ``unet_patcher`` for direct calls while effects are attached, else None."""
        if self._effects is not None and self._held is None:
            self._held = forge_backend.patched(unet_patcher, *self._effects, self.attention_function)
        return self._held

    @contextlib.contextmanager
    def attach(self, controller, fusion=None):
        self._effects = (controller, fusion)
        try:
            yield
        finally:
            self._effects = self._held = None


class ForgeCheckpoint(PatcherEffects):
    """A Forge model (``sd_model`` with ``forge_objects``). ``encode(prompt, negative)`` is the WebUI's
    conditioning of a prompt; ``load_models`` Forge's ``memory_management.load_models_gpu``;
    ``attention_function`` Forge's own attention, used where no effect acts."""

    differentiable = False  # Forge holds the weights as inference tensors

    def __init__(self, sd_model, encode: Callable[[str, bool], object], *, load_models=None,
                 attention_function=None, key: tuple = ()):
        self.model = sd_model
        self._encode = encode
        self._load = load_models or (lambda models: None)
        self.attention_function = attention_function
        objects = sd_model.forge_objects
        self.unet = objects.unet.model.diffusion_model
        self.alphas = alphas_cumprod(sd_model)
        info = getattr(sd_model, "sd_checkpoint_info", None)
        self.key = (id(sd_model), getattr(info, "filename", None), getattr(sd_model, "sd_model_hash", None)) + tuple(key)
        self._unet_loaded = False

    def conditioning(self, prompt: str, negative: bool = False) -> Conditioning:
        with torch.no_grad():
            return as_conditioning(self._encode(prompt, negative))

    def tokenize(self, prompt: str) -> list[tuple[int, str]]:
        return embedder_words(self.model, prompt)

    def eps(self, z: torch.Tensor, t: int, cond: Conditioning) -> torch.Tensor:
        if not self._unet_loaded:  # once per checkpoint object: one generation
            self._load([self.model.forge_objects.unet])
            self._unet_loaded = True
        held = self.direct_patcher(self.model.forge_objects.unet)  # for direct calls only, not for sampling's
        return model_eps(self.model, z, t, cond.context, cond.vector, held).to(z.device)

    def posterior_mean(self, pixels: torch.Tensor) -> torch.Tensor:
        self._load([self.model.forge_objects.vae.patcher])
        with torch.no_grad():
            return posterior_mean(self.model, pixels)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode_first_stage(z).float()

    def sampling_unet(self, unet_patcher):
        """The UNet patcher a WebUI sampling call should use: a patched clone while effects are attached."""
        if self._effects is None:
            return unet_patcher
        return forge_backend.patched(unet_patcher, *self._effects, self.attention_function)

    def needs_image_conditioning(self) -> bool:
        """A UNet with more than 4 input channels (inpainting, instruct-pix2pix)."""
        return getattr(self.model, "is_inpaint", False) is True
