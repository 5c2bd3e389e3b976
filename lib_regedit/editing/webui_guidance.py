"""Multi-region guidance in the WebUI, at its CFG denoiser, so every sampler takes it.

The WebUI's denoiser combines the cond and uncond predictions into one result per image: the
predicted clean latent x̂0 for k-diffusion samplers (Euler, DPM++, ...), the noise prediction ε for
the timestep samplers (DDIM, PLMS, UniPC). :func:`guide_combined` is called on that result with the
sampler's input and its σ (or timestep), moves each pair's x̂0 by −(1 − ᾱ)∇L
(``lib_regedit/editing/region_guidance.py``), and gives back the result in the sampler's own form.
The pair's images are rows (2k, 2k + 1) of the batch (``webui_pair.pair_batch`` built it so).
"""

from __future__ import annotations

import torch

from ..precision import finite
from .region_guidance import RegionGuidance, noise_shift, predicted_x0


def guide_combined(guidance: RegionGuidance, combined: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor,
                   alphas_cumprod: torch.Tensor, predicts_noise: bool, step: int) -> torch.Tensor:
    """``combined``: the denoiser's per-image result (x̂0, or ε when ``predicts_noise``); ``x``: the
    sampler's input rows for the same images; ``sigma``: σ per image (the timestep when
    ``predicts_noise``). The arithmetic is float32 whatever the sampler's dtype, cast back once."""
    out = combined.float().clone()
    for k in range(0, combined.shape[0] - 1, 2):
        rows = [k, k + 1]
        if predicts_noise:
            t = int(round(float(sigma.flatten()[k])))
            a = alphas_cumprod.float()[min(max(t, 0), len(alphas_cumprod) - 1)].to(x.device)
            x0 = [predicted_x0(x[r:r + 1].float(), combined[r:r + 1].float(), a) for r in rows]
        else:
            s = float(sigma.flatten()[k])
            a = torch.tensor(1.0 / (1.0 + s * s), device=x.device)
            x0 = [combined[r:r + 1].float() for r in rows]
        grad_s, grad_t, values = guidance.gradient(*x0)
        guidance.history.append(dict(values, step=step))
        if not finite([grad_s, grad_t]):  # overflowed through a half-precision VAE: no shift this step
            continue
        for r, grad in zip(rows, (grad_s, grad_t)):
            if predicts_noise:
                out[r] += noise_shift(grad[0], a)
            else:
                out[r] -= (1 - a) * grad[0]
    return out.to(combined.dtype)
