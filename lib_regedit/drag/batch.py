"""RegionDrag on a batch of latents, over the model interface: what every host runs.

The diffusers API and command line drag one picture (``diffusers_drag.py``); the WebUI adapter
(``lib_regedit/webui/image_tasks.py``) replaces img2img's sampling with :func:`drag_batch` when the drag document has pairs: it hands in the checkpoint's noise prediction per
batch row (that row's prompt, no classifier-free guidance, as RegionDrag runs) and its ``attach``, the
init latents, the seeds, the brush handles' growth (``grow.py``) and the WebUI's progress and interrupt.
The WebUI decodes the result; the adapter composites the original back outside the edit
(``composite.py``, with the same growth).
"""

from __future__ import annotations

from typing import Callable, ContextManager

import torch

from ..attention.controller import Controller, GenerationState
from ..attention.effects.mutual_self_attention import MutualSelfAttention
from ..documents import DragDocument
from .mapping import dense_mapping
from .region_drag import DragOptions, drag_latent, options_for


def drag_batch(eps_of_row: Callable[[int, torch.Tensor, int], torch.Tensor], init_latent: torch.Tensor, seeds,
               document: DragDocument, steps: int, alphas_cumprod: torch.Tensor,
               attach: Callable[[Controller], ContextManager],
               progress: Callable[[int, int], None] | None = None,
               should_stop: Callable[[], bool] | None = None, grown=None) -> torch.Tensor:
    """Each row of ``init_latent`` (B, C, H, W) dragged with its own seed; returns (B, C, H, W).
    ``eps_of_row(row, z, t)`` is the model's noise prediction with that row's prompt and
    ``attach(controller)`` gives the model the drag's attention effect: a checkpoint's ``eps`` and
    ``attach`` (``lib_regedit/backends/checkpoint.py``). ``grown``: the brush handles' growth
    (``grow.grown_handles`` of the init image), also handed to the composite."""
    return drag_rows(eps_of_row, init_latent, seeds, dense_mapping(document, *init_latent.shape[-2:], grown=grown),
                     options_for(document, steps), alphas_cumprod, attach, progress, should_stop)


def drag_rows(eps_of_row: Callable[[int, torch.Tensor, int], torch.Tensor], init_latent: torch.Tensor, seeds,
              mapping, options: DragOptions, alphas_cumprod: torch.Tensor,
              attach: Callable[[Controller], ContextManager],
              progress: Callable[[int, int], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> torch.Tensor:
    """:func:`drag_batch` with the latent-resolution ``mapping`` and the ``options`` given (DragBench's
    cases come with their own mapping)."""
    attention = MutualSelfAttention()
    state = GenerationState(total_steps=options.steps, latent_hw=tuple(init_latent.shape[-2:]))
    controller = Controller([attention], state)
    rows = []
    with attach(controller):
        for i in range(init_latent.shape[0]):
            def eps(x, t, j, row=i):
                state.step = j
                return eps_of_row(row, x, t).float()

            generator = torch.Generator("cpu").manual_seed(int(seeds[i]) if i < len(seeds) else int(seeds[0]) + i)
            rows.append(drag_latent(eps, init_latent[i:i + 1].float(), mapping, alphas_cumprod.float().cpu(), options,
                                    generator, attention, progress, should_stop))
            if should_stop is not None and should_stop():
                rows.extend(init_latent[j:j + 1].float() for j in range(i + 1, init_latent.shape[0]))
                break
    return torch.cat(rows).to(init_latent.dtype)
