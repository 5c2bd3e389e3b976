"""The deterministic DDIM path both ways (Song et al. 2021, *Denoising Diffusion Implicit Models*).

Timesteps are the "leading" spacing with SD's offset of 1 (``layout_init.inversion_timesteps``:
1, 51, ..., 951 for 20 of 1000), so the inversion climbs the exact levels the edit then descends.
With ``a`` the cumulative alpha of the current level and ``a'`` the next one, one move is
``x0 = (z - sqrt(1 - a) eps) / sqrt(a)``, ``z' = sqrt(a') x0 + sqrt(1 - a') eps`` in either direction.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..regions.layout_init import inversion_timesteps

Eps = Callable[[torch.Tensor, int], torch.Tensor]


def levels(alphas_cumprod: torch.Tensor, steps: int) -> tuple[list[int], list[float]]:
    """Ascending timesteps and their alpha-bars, with 1.0 (the clean latent) first:
    ``alphas[j]`` is the level of trajectory latent ``j``, ``timesteps[j - 1]`` its timestep."""
    timesteps = inversion_timesteps(len(alphas_cumprod), steps)
    return timesteps, [1.0] + [float(alphas_cumprod[t]) for t in timesteps]


def move(z: torch.Tensor, eps: torch.Tensor, a: float, a_next: float) -> torch.Tensor:
    """One DDIM move from level ``a`` to level ``a_next`` (up or down) with the noise ``eps``."""
    x0 = (z - (1 - a) ** 0.5 * eps) / a ** 0.5
    return a_next ** 0.5 * x0 + (1 - a_next) ** 0.5 * eps


@torch.no_grad()
def trajectory(eps: Eps, z0: torch.Tensor, alphas_cumprod: torch.Tensor, steps: int,
               on_step: Callable[[int], None] | None = None, fixed_point: int = 0) -> list[torch.Tensor]:
    """DDIM inversion of ``z0``: ``[z_0, z_1, ..., z_steps]``, each at ``levels(...)[1][j]``. The
    noise of move ``j`` is predicted at the lower level (``eps(z_j, timesteps[j - 1])``, the clean
    latent at the first timestep), the standard approximation of the ODE's inverse.

    ``fixed_point`` > 0 refines each move that many times with the noise read where the denoising
    step will read it, ``eps(z_{j+1}, timesteps[j])`` (the fixed-point iteration of Pan et al. 2023,
    *Effective Real Image Editing with Accelerated Iterative Diffusion Inversion*), so denoising
    retraces the path more closely; each refinement costs one more UNet pass."""
    timesteps, alphas = levels(alphas_cumprod, steps)
    path = [z0.float()]
    for j in range(steps):
        t_here = timesteps[max(j - 1, 0)]
        z = path[-1]
        e = eps(z, t_here).float()
        z_next = move(z, e, alphas[j], alphas[j + 1])
        for _ in range(fixed_point):
            e = eps(z_next, timesteps[j]).float()
            z_next = move(z, e, alphas[j], alphas[j + 1])
        path.append(z_next)
        if on_step is not None:
            on_step(j)
    return path


def denoise_schedule(alphas_cumprod: torch.Tensor, steps: int) -> list[tuple[int, float, float]]:
    """(timestep, a, a_prev) per denoising step, from the top level down to the clean latent: the
    reverse of ``trajectory``'s moves."""
    timesteps, alphas = levels(alphas_cumprod, steps)
    return [(timesteps[j - 1], alphas[j], alphas[j - 1]) for j in range(steps, 0, -1)]


def reconstruct(eps: Eps, z_top: torch.Tensor, alphas_cumprod: torch.Tensor, steps: int) -> torch.Tensor:
    """Plain DDIM denoising of ``z_top`` with ``eps`` (tests and the reconstruction check)."""
    z = z_top
    for t, a, a_prev in denoise_schedule(alphas_cumprod, steps):
        z = move(z, eps(z, t).float(), a, a_prev)
    return z
