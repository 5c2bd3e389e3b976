"""The deterministic DDIM path both ways (Song et al. 2021, *Denoising Diffusion Implicit Models*):
the one DDIM inversion and its one timestep schedule, for every caller (a real image's inversion
here, layout init's sketch in ``regions/layout_init.py``, and the schedule of RegionDrag's cycle in
``drag/inversion.py``).

Timesteps are the "leading" spacing with SD's offset of 1 (:func:`inversion_timesteps`: 1, 51, ...,
951 for 20 of 1000), so the inversion climbs the exact levels the edit then descends. With ``a`` the
cumulative alpha of the current level and ``a'`` the next one, one move is
``x0 = (z - sqrt(1 - a) eps) / sqrt(a)``, ``z' = sqrt(a') x0 + sqrt(1 - a') eps`` in either direction.
Everything is a pure function of an ``eps(z, t)`` callable and the model's ``alphas_cumprod``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

Eps = Callable[[torch.Tensor, int], torch.Tensor]


def inversion_timesteps(num_train_timesteps: int, steps: int, evaluations: int = 0) -> list[int]:
    """Ascending DDIM timesteps ("leading" spacing with offset 1: 1, 51, ..., 951 for 1000 and 20;
    never past the last trained timestep). With ``evaluations`` between 1 and ``steps``, that many
    timesteps instead, evenly spaced from the first to the same top level, so a shorter inversion ends
    where sampling starts."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    stride = num_train_timesteps // steps
    full = [min(i * stride + 1, num_train_timesteps - 1) for i in range(steps)]
    if not evaluations or evaluations >= steps:
        return full
    if evaluations == 1:
        return [full[-1]]
    first, top = full[0], full[-1]
    return [round(first + (top - first) * i / (evaluations - 1)) for i in range(evaluations)]


def levels(alphas_cumprod: torch.Tensor, steps: int) -> tuple[list[int], list[float]]:
    """Ascending timesteps and their alpha-bars, with 1.0 (the clean latent) first:
    ``alphas[j]`` is the level of trajectory latent ``j``, ``timesteps[j - 1]`` its timestep."""
    timesteps = inversion_timesteps(len(alphas_cumprod), steps)
    return timesteps, _alphas(alphas_cumprod, timesteps)


def _alphas(alphas_cumprod: torch.Tensor, timesteps: Sequence[int]) -> list[float]:
    return [1.0] + [float(alphas_cumprod[t]) for t in timesteps]


def move(z: torch.Tensor, eps: torch.Tensor, a: float, a_next: float) -> torch.Tensor:
    """One DDIM move from level ``a`` to level ``a_next`` (up or down) with the noise ``eps``."""
    x0 = (z - (1 - a) ** 0.5 * eps) / a ** 0.5
    return a_next ** 0.5 * x0 + (1 - a_next) ** 0.5 * eps


@torch.no_grad()
def invert(eps: Eps, z0: torch.Tensor, alphas_cumprod: torch.Tensor, timesteps: Sequence[int],
           on_step: Callable[[int], None] | None = None, fixed_point: int = 0) -> list[torch.Tensor]:
    """DDIM inversion of the clean latent ``z0`` up through ascending ``timesteps``:
    ``[z_0, z_1, ..., z_n]`` (float32), ``z_j`` at the level of ``timesteps[j - 1]``. The noise of
    move ``j`` is predicted at the lower level (``eps(z_j, timesteps[j - 1])``, the clean latent at
    the first timestep), the standard approximation of the ODE's inverse.

    ``fixed_point`` > 0 refines each move that many times with the noise read where the denoising
    step will read it, ``eps(z_{j+1}, timesteps[j])`` (the fixed-point iteration of Pan et al. 2023,
    *Effective Real Image Editing with Accelerated Iterative Diffusion Inversion*), so denoising
    retraces the path more closely; each refinement costs one more UNet pass. ``on_step(j)`` after
    each move."""
    timesteps = list(timesteps)
    alphas = _alphas(alphas_cumprod, timesteps)
    path = [z0.float()]
    for j in range(len(timesteps)):
        z = path[-1]
        e = eps(z, timesteps[max(j - 1, 0)]).float()
        z_next = move(z, e, alphas[j], alphas[j + 1])
        for _ in range(fixed_point):
            e = eps(z_next, timesteps[j]).float()
            z_next = move(z, e, alphas[j], alphas[j + 1])
        path.append(z_next)
        if on_step is not None:
            on_step(j)
    return path


def trajectory(eps: Eps, z0: torch.Tensor, alphas_cumprod: torch.Tensor, steps: int,
               on_step: Callable[[int], None] | None = None, fixed_point: int = 0) -> list[torch.Tensor]:
    """:func:`invert` over the ``steps``-step sampling schedule: ``[z_0, ..., z_steps]``, each at
    ``levels(...)[1][j]``."""
    return invert(eps, z0, alphas_cumprod, inversion_timesteps(len(alphas_cumprod), steps), on_step, fixed_point)


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
