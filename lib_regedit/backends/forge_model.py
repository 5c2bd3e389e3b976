"""A WebUI Forge checkpoint as the model functions that layout init (its DDIM inversion of the boxes'
sketch), RegionDrag and a picture's region edit need: the noise schedule, the VAE posterior's mean
and the noise prediction.

Forge has no ``apply_model(x, t, cond)`` on the checkpoint: its ``KModel`` takes k-diffusion's sigma and
scaled input and returns the denoised latent. :func:`model_eps` turns that into the ``eps(z_t, t)``
of the VP latent the engine's inversions work in. Duck-typed: nothing imports Forge.
"""

from __future__ import annotations

from typing import Callable

import torch


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
    kmodel = sd_model.forge_objects.unet.model
    options = getattr(unet_patcher, "model_options", None) or {}
    parameter = next(kmodel.diffusion_model.parameters())
    a = alphas_cumprod(sd_model)[int(t)]
    sigma = ((1 - a) / a).sqrt()
    x = (z.float() / a.sqrt()).to(parameter.device)  # k-diffusion's input: z_t / sqrt(ᾱ) = z_t sqrt(1 + σ²)
    batch = x.shape[0]
    sigmas = torch.full((batch,), float(sigma), device=x.device)
    c = {"c_crossattn": context.to(x.device).expand(batch, -1, -1)}
    if vector is not None:
        c["y"] = vector.to(x.device).expand(batch, -1)
    marks = [0]  # Forge's mark of a conditional chunk
    c["transformer_options"] = dict(options.get("transformer_options", {}), cond_or_uncond=marks, sigmas=sigmas,
                                    cond_indices=list(range(batch)), uncond_indices=[])
    wrapper = options.get("model_function_wrapper")
    if wrapper is not None:
        denoised = wrapper(kmodel.apply_model, {"input": x, "timestep": sigmas, "c": c, "cond_or_uncond": marks})
    else:
        denoised = kmodel.apply_model(x, sigmas, **c)
    return (x - denoised.float()) / sigma


def noise_prediction(sd_model, cond) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """``eps(z, t)`` of the plain model (no gradient, on the CPU) with the conditioning ``cond`` of
    ``get_learned_conditioning`` (a tensor, or SDXL's dict): layout init's inversion."""
    vector = None
    if isinstance(cond, dict):
        cond, vector = cond["crossattn"], cond.get("vector")

    @torch.no_grad()
    def eps(z: torch.Tensor, t: int) -> torch.Tensor:
        return model_eps(sd_model, z, t, cond, vector).cpu()

    return eps
