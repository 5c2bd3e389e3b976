"""ComfyUI's backend: a patched clone of its ``ModelPatcher`` that carries RegEdit for every sampling call.

ComfyUI's patcher is the one WebUI Forge took over (``set_model_patch_replace``,
``set_model_unet_function_wrapper``, ``transformer_options`` with ``cond_or_uncond``), so the attention
replacements and the UNet wrapper are :func:`forge_backend.patched`'s. Two things differ:

- **A MODEL outlives a sampling call.** A node's output is cached and may be sampled again with another
  seed, by several samplers, or in a batch. Effects keep per-generation state (keyword selection's maps,
  projections), so a fresh controller is built for each sampling call: ComfyUI's ``outer_sample``
  wrapper opens it and drops it when sampling ends, success or failure (:class:`PerSampling`).
- **The step comes from the sigmas.** No host callback says which step runs; the sampler puts its
  schedule into ``transformer_options["sample_sigmas"]``, and a UNet call's sigma places it there
  (:func:`step_of`).

Nothing here imports ComfyUI: the unit tests drive it with ComfyUI's call convention, and
``tests/e2e_comfyui`` runs it in a real ComfyUI.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch

from ..attention.controller import GenerationState
from . import forge_backend

OUTER_SAMPLE = "outer_sample"  # ComfyUI's ``WrappersMP.OUTER_SAMPLE``
WRAPPER_KEY = "regedit"


def step_of(sigma, sample_sigmas) -> tuple[int, int]:
    """``(step, total steps)`` of a UNet call at ``sigma`` in the schedule ``sample_sigmas`` (descending,
    ending at 0): the last schedule entry at or above ``sigma``, so the extra model calls of a
    second-order sampler between two entries count as the earlier step. ``(0, 1)`` without a schedule."""
    if sample_sigmas is None or not torch.is_tensor(sample_sigmas) or sample_sigmas.numel() < 2:
        return 0, 1
    s = float(sigma.flatten()[0]) if torch.is_tensor(sigma) else float(sigma)
    schedule = sample_sigmas.detach().float().cpu()
    total = schedule.numel() - 1
    at_or_above = int((schedule >= s * (1 - 1e-5)).sum())
    return min(max(at_or_above - 1, 0), total - 1), total


class PerSampling:
    """The controller the patched model's attention replacements and UNet wrapper hold: it hands each
    call to the controller of the sampling call now running, made by ``build()`` (which returns
    ``(controller, fusion)``). Outside a sampling call every effect stands aside."""

    def __init__(self, build: Callable[[], tuple]):
        self._build = build
        self.current = None
        self.fusion = None
        self._idle = GenerationState()

    @property
    def state(self) -> GenerationState:
        return self.current.state if self.current is not None else self._idle

    def wants(self, is_cross: bool) -> bool:
        return self.current is not None and self.current.wants(is_cross)

    def attend(self, call):
        return self.current.attend(call)

    def begin_unet_call(self, context, batch, latent_hw, rows=None) -> None:
        if self.current is not None:
            self.current.begin_unet_call(context, batch, latent_hw, rows=rows)

    def clock(self, sigma, sample_sigmas) -> None:
        """The step of the UNet call about to run (:func:`step_of`)."""
        if self.current is not None:
            self.state.step, self.state.total_steps = step_of(sigma, sample_sigmas)

    @contextlib.contextmanager
    def sampling(self):
        """One sampling call: a fresh controller (and latent mode's fusion) for its length."""
        previous = (self.current, self.fusion)
        self.current, self.fusion = self._build()
        try:
            yield
        finally:
            self.current, self.fusion = previous


class _Fusion:
    """Latent mode's fusion of the sampling call now running."""

    def __init__(self, per_sampling: PerSampling):
        self._per_sampling = per_sampling

    def fuse(self, out, cond_rows, uncond_rows, progress, run):
        fusion = self._per_sampling.fusion
        return out if fusion is None else fusion.fuse(out, cond_rows, uncond_rows, progress, run)


def patched(model_patcher, build: Callable[[], tuple], latent_mode: bool = False,
            attention_function: Callable | None = None):
    """A clone of ComfyUI's ``ModelPatcher`` that runs ``build()``'s effects in every sampling call made
    with it (``build`` returns ``(controller, fusion)``; ``fusion`` is latent mode's, else None). The
    model given is left as it was."""
    per_sampling = PerSampling(build)
    clone = forge_backend.patched(model_patcher, per_sampling, _Fusion(per_sampling) if latent_mode else None,
                                  attention_function)
    inner = clone.model_options["model_function_wrapper"]

    def wrapper(apply_model, args):
        options = args["c"].get("transformer_options", {})
        per_sampling.clock(args["timestep"], options.get("sample_sigmas"))
        return inner(apply_model, args)

    def outer_sample(executor, *args, **kwargs):
        with per_sampling.sampling():
            return executor(*args, **kwargs)

    clone.set_model_unet_function_wrapper(wrapper)
    clone.add_wrapper_with_key(OUTER_SAMPLE, WRAPPER_KEY, outer_sample)
    return clone
