"""The RegionDrag loop, backend-neutral (Lu et al. 2024): invert, copy-paste, denoise with mutual
self-attention, in one inversion-denoising cycle and no gradients.

1. Cycle-SDE inversion of the image latent up to ``start_t`` of the schedule (``inversion.py``),
   the inversion branch recording its self-attention keys and values.
2. At the start the handle cells are mixed with fresh noise, ``sqrt(1 - s²) z + s ε`` (``s`` the
   handle noise), so the model can paint what was behind the object; with ``match_surroundings``
   (drag document version 2) ``ε`` is the handle's surroundings noised to the start (``fill.py``).
3. Denoise with the stored noise (dragged like the latents), the keys and values of every
   self-attention replaced by the inversion branch's at the same step (mutual self-attention), and
   the handle's latents copied from the cached inversion latents onto the targets before every step
   whose timestep is above ``end_t`` of the training timesteps (the first step always). The
   reference implementation compares ``end_t`` with a step index, so it pastes at every step;
   ``copy_paste_every_step`` reproduces that for comparison.

Defaults from RegionDrag: 20 steps, start 0.5 (10 inversion and 10 denoise evaluations, batch 1, no
classifier-free guidance), end 0.2, handle noise 1.0 (its evaluation's; its interface uses 0.6, which
on ShapesWorld kept the object at the handle in all 16 cases of ``eval --drag``: a copy, not a move).
"""

from __future__ import annotations

from typing import Callable

import torch

from ..attention.effects.mutual_self_attention import MutualSelfAttention
from .copy_paste import noise_handles, paste
from .fill import fill_handles
from .inversion import denoise_step, drag_timesteps, invert
from .mapping import DenseMapping
from .options import DragOptions, options_for  # noqa: F401 (the loop's settings; options.py)


Eps = Callable[[torch.Tensor, int, int], torch.Tensor]


def pastes_at(options: DragOptions, timestep: int, num_train_timesteps: int) -> bool:
    """Whether the denoise step at ``timestep`` copy-pastes (``end_t`` honoured)."""
    return options.copy_paste_every_step or timestep > options.end_t * num_train_timesteps


def drag_latent(eps: Eps, z0: torch.Tensor, mapping: DenseMapping, alphas_cumprod: torch.Tensor,
                options: DragOptions = DragOptions(), generator: torch.Generator | None = None,
                attention: MutualSelfAttention | None = None,
                progress: Callable[[int, int], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> torch.Tensor:
    """The dragged latent of ``z0`` (1, C, H, W). ``eps(x, t, j)`` is the model's noise prediction at
    timestep ``t`` for step ``j``; the caller's backend reports ``j`` to ``attention``. When
    ``should_stop()`` turns true (the WebUI's interrupt), the drag stops: during the inversion it
    returns ``z0`` unchanged, during the denoising the latent it has reached."""
    num_train = len(alphas_cumprod)
    timesteps = drag_timesteps(num_train, options.steps, options.start_t)
    total = 2 * len(timesteps)
    done = 0

    def counted(x, t, j):
        nonlocal done
        out = eps(x, t, j)
        done += 1
        if progress is not None:
            progress(done, total)
        return out

    def stop() -> bool:
        return should_stop is not None and should_stop()

    def inverting(x, t, j):
        if stop():
            raise _Stopped
        return counted(x, t, j)

    if attention is not None:
        attention.mode = "record" if options.mutual_self_attention else "off"
    try:
        cache = invert(inverting, z0, alphas_cumprod, timesteps, generator)
    except _Stopped:
        _finish(attention)
        return z0
    if attention is not None:
        attention.mode = "replace" if options.mutual_self_attention else "off"
    if options.match_surroundings:
        x = fill_handles(cache.latents[0], z0, mapping, options.handle_noise, cache.alphas[0], generator)
    else:
        x = noise_handles(cache.latents[0], mapping, options.handle_noise, generator)
    for j, t in enumerate(timesteps):
        if stop():
            break
        if j == 0 or pastes_at(options, t, num_train):
            x = paste(x, cache.latents[j], mapping)
        x = denoise_step(cache, x, counted(x, t, j), j, noise=paste(cache.noises[j], cache.noises[j], mapping))
    _finish(attention)
    return x


class _Stopped(Exception):
    pass


def _finish(attention: MutualSelfAttention | None) -> None:
    if attention is not None:
        attention.mode = "off"
        attention.store.clear()
