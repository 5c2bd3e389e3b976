"""The inversion-denoising cycle RegionDrag runs: a stochastic (DDPM-style) inversion that stores the
noise of every step, so the denoise branch retraces the inversion exactly when nothing is dragged
(Nie et al. 2023, *The Blessing of Randomness: SDE Beats ODE in General Diffusion-based Image
Editing*, the Cycle-SDE that RegionDrag builds on).

With ``a_j`` the cumulative alpha of timestep ``t_j`` (descending, ``a_n = 1`` for the clean latent):

1. forward: ``x_n = z0`` and ``x_j = sqrt(a_j / a_{j+1}) x_{j+1} + sqrt(1 - a_j / a_{j+1}) e_j`` (the
   DDPM forward transition, one fresh Gaussian ``e_j`` per step);
2. for each step, the model's prediction ``eps_j = eps(x_j, t_j)`` gives the stochastic DDIM
   (eta = 1) step ``x_{j+1} = mu_j + sigma_j w_j``; the noise that lands exactly on the stored
   ``x_{j+1}`` is ``w_j = (x_{j+1} - mu_j) / sigma_j``, and it is stored (on the last step, onto the
   clean latent, ``sigma`` is 0 and the residual ``x_n - mu`` itself is stored).

Denoising from ``x_0`` with the same predictions and the stored ``w_j`` gives back ``z0`` up to float
rounding; a drag changes the latents between steps and the same noise carries the edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..inversion.ddim import inversion_timesteps

Eps = Callable[[torch.Tensor, int, int], torch.Tensor]  # eps(x, t, step index)


@dataclass
class InversionCache:
    """``timesteps`` descending (the denoise order), ``latents[j]`` the inverted latent at
    ``timesteps[j]``, ``noises[j]`` the noise of the step from ``j`` to ``j + 1``."""

    timesteps: list[int]
    alphas: list[float]  # cumulative alpha per timestep, then 1.0 for the clean latent
    latents: list[torch.Tensor]
    noises: list[torch.Tensor]


def drag_timesteps(num_train_timesteps: int, steps: int, start_t: float) -> list[int]:
    """The last ``round(steps * start_t)`` timesteps of a ``steps``-step schedule (the sampling
    schedule of :func:`~lib_regedit.inversion.ddim.inversion_timesteps`), descending: 20 steps at
    start 0.5 give 451, 401, ..., 1."""
    schedule = inversion_timesteps(num_train_timesteps, steps)[::-1]
    count = max(1, round(steps * start_t))
    return schedule[steps - count:]


def step_mean_sigma(x: torch.Tensor, eps: torch.Tensor, a: float, a_next: float) -> tuple[torch.Tensor, float]:
    """DDIM with eta = 1 (the DDPM posterior) from alpha-bar ``a`` to ``a_next`` (less noisy)."""
    sigma2 = (1 - a_next) / (1 - a) * (1 - a / a_next)
    x0 = (x - (1 - a) ** 0.5 * eps) / a ** 0.5
    mean = a_next ** 0.5 * x0 + max(1 - a_next - sigma2, 0.0) ** 0.5 * eps
    return mean, sigma2 ** 0.5


def invert(eps: Eps, z0: torch.Tensor, alphas_cumprod: torch.Tensor, timesteps: list[int],
           generator: torch.Generator | None = None) -> InversionCache:
    """Cycle-SDE inversion of ``z0`` through ``timesteps`` (descending); ``eps`` runs once per step
    (the inversion branch: its self-attention keys and values can be recorded there)."""
    alphas = [float(alphas_cumprod[t]) for t in timesteps] + [1.0]
    n = len(timesteps)
    latents: list[torch.Tensor] = [None] * n  # type: ignore[list-item]
    x = z0
    for j in range(n - 1, -1, -1):
        ratio = alphas[j] / alphas[j + 1]
        fresh = torch.randn(z0.shape, generator=generator, dtype=torch.float32).to(z0.device, z0.dtype)
        x = ratio ** 0.5 * x + (1 - ratio) ** 0.5 * fresh
        latents[j] = x
    noises = []
    for j in range(n):
        mean, sigma = step_mean_sigma(latents[j], eps(latents[j], timesteps[j], j), alphas[j], alphas[j + 1])
        target = latents[j + 1] if j + 1 < n else z0
        noises.append((target - mean) / _noise_scale(sigma))
    return InversionCache(list(timesteps), alphas, latents, noises)


def denoise_step(cache: InversionCache, x: torch.Tensor, eps: torch.Tensor, j: int,
                 noise: torch.Tensor | None = None) -> torch.Tensor:
    """One step of the denoise branch with the stored noise (or ``noise``, e.g. dragged with it)."""
    mean, sigma = step_mean_sigma(x, eps, cache.alphas[j], cache.alphas[j + 1])
    return mean + _noise_scale(sigma) * (cache.noises[j] if noise is None else noise)


def _noise_scale(sigma: float) -> float:
    """The last step lands on the clean latent (alpha-bar 1), where the posterior has no variance:
    its stored "noise" is then the plain residual, so that step too retraces the input."""
    return sigma if sigma > 0 else 1.0
