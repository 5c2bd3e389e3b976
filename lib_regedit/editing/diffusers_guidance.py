"""Multi-region guidance on a diffusers UNet: a forward hook that moves each pair's noise prediction
(``lib_regedit/editing/region_guidance.py``), so every scheduler takes the guided step.

The hook reads the pair's rows from the plan (updated by the controller at each call), rebuilds each
image's classifier-free-guided prediction ε = ε_u + w (ε_c − ε_u), the predicted clean latent
x̂0 = (z_t − √(1−ᾱ_t) ε) / √ᾱ_t, and adds Δε = √ᾱ_t √(1−ᾱ_t) ∇L to both of the image's rows, which
moves x̂0 by −(1 − ᾱ_t) ∇L after guidance is combined.
"""

from __future__ import annotations

import contextlib

import torch

from ..attention.pair_plan import PairPlan
from ..precision import finite
from .region_guidance import RegionGuidance, noise_shift, predicted_x0


def _ordered(roles: dict[int, str], role: str) -> list[int]:
    return [r for r, x in sorted(roles.items()) if x == role]


def vae_decoder(pipe):
    vae = pipe.vae
    scale = vae.config.scaling_factor

    def decode(z: torch.Tensor) -> torch.Tensor:
        images = vae.decode(z.to(vae.dtype) / scale).sample.float()
        return (images / 2 + 0.5).clamp(0, 1)
    return decode


@contextlib.contextmanager
def guided(unet, guidance: RegionGuidance, plan: PairPlan, state, alphas_cumprod: torch.Tensor, cfg_scale: float):
    alphas = alphas_cumprod.float().cpu()

    def hook(module, args, kwargs, output):
        if state.step / max(1, state.total_steps) >= guidance.until or not plan.pairs:
            return output
        sample = kwargs["sample"] if "sample" in kwargs else args[0]
        timestep = kwargs["timestep"] if "timestep" in kwargs else args[1]
        eps = output[0] if isinstance(output, tuple) else output.sample
        t = int(round(float(torch.as_tensor(timestep).flatten()[0])))
        a = alphas[min(max(t, 0), len(alphas) - 1)]
        sources, targets = _ordered(plan.uncond_roles, "source"), _ordered(plan.uncond_roles, "target")
        dtype = eps.dtype  # a half-precision UNet's: x̂0 and the shift are computed in float32, cast back once
        eps = eps.float().clone()
        sample = sample.float()
        for k, (s, t_row) in enumerate(plan.pairs):
            us = sources[k] if k < len(sources) else None
            ut = targets[k] if k < len(targets) else None

            def combined(c, u):
                return eps[c:c + 1] if u is None else eps[u:u + 1] + cfg_scale * (eps[c:c + 1] - eps[u:u + 1])

            x0 = [predicted_x0(sample[c:c + 1], combined(c, u), a) for c, u in ((s, us), (t_row, ut))]
            grad_s, grad_t, values = guidance.gradient(*x0)
            guidance.history.append(dict(values, step=state.step))
            if not finite([grad_s, grad_t]):  # overflowed through a half-precision VAE: no shift this step
                continue
            for rows, grad in (((s, us), grad_s), ((t_row, ut), grad_t)):
                for row in rows:
                    if row is not None:
                        eps[row] += noise_shift(grad[0], a)
        eps = eps.to(dtype)
        if isinstance(output, tuple):
            return (eps,) + tuple(output[1:])
        output.sample = eps
        return output

    handle = unet.register_forward_hook(hook, with_kwargs=True)
    try:
        yield guidance
    finally:
        handle.remove()
