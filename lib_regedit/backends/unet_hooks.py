"""UNet-level hooks shared by the backends: the pre-hook that starts each UNet call (row layout,
latent size), and latent mode's hook, which reruns the UNet on the rows to fuse with each region's
prompt and fuses the noise predictions (MultiDiffusion, Eq. 1)."""

from __future__ import annotations

import contextlib
from typing import Callable

import torch

from ..attention.controller import Controller


def unet_pre_hook(controller: Controller, sample_name: str, context_name: str):
    """A forward pre-hook telling the controller a UNet call starts: its latent, batch and text context.
    The names are the UNet's own (diffusers: sample / encoder_hidden_states; ldm: x / context)."""
    def hook(module, args, kwargs):
        sample = args[0] if args else kwargs[sample_name]
        context = args[2] if len(args) > 2 else kwargs.get(context_name)
        controller.begin_unet_call(context, sample.shape[0], tuple(sample.shape[-2:]))
    return hook


def select_rows(value, rows: list[int], batch: int):
    """``rows`` of every tensor in ``value`` whose first dimension is the ``batch`` (the UNet call's), at
    any depth of dicts, lists and tuples (SDXL's ``added_cond_kwargs``, ControlNet's residuals, Forge's
    ``c``); anything else (a 0-dim timestep, a shared tensor, a number) unchanged. The one row selection
    of every backend's reruns (latent mode here, Forge's wrapper in ``forge_backend``)."""
    if isinstance(value, torch.Tensor):
        return value[rows] if value.ndim > 0 and value.shape[0] == batch else value
    if isinstance(value, dict):
        return {k: select_rows(v, rows, batch) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(select_rows(v, rows, batch) for v in value)
    return value


@contextlib.contextmanager
def latent_hooked(unet: torch.nn.Module, controller: Controller, fusion, pre_hook, *, arg_names: list[str],
                  context_name: str, unpack: Callable, repack: Callable, extra_kwargs: dict | None = None):
    """``unpack(output)`` gives the noise prediction, ``repack(output, fused)`` puts the fused one back;
    ``arg_names`` name the UNet's positional arguments, ``context_name`` its text-context argument."""
    busy = []

    def hook(module, args, kwargs, output):
        if busy:
            return None
        call = dict(zip(arg_names, args), **kwargs)
        eps = unpack(output)
        batch = eps.shape[0]
        state = controller.state
        rows = state.rows

        def run(context, target):
            target = list(target)
            sub = {k: select_rows(v, target, batch) for k, v in call.items()}
            sub[context_name] = context.to(eps.device, eps.dtype).expand(len(target), -1, -1)
            sub.update(extra_kwargs or {})
            busy.append(1)
            try:
                with state.context_passes.get(id(context), contextlib.nullcontext)():  # a region's own LoRA
                    return unpack(module(**sub))
            finally:
                busy.pop()

        return repack(output, fusion.fuse(eps, rows.cond, rows.uncond, state.step / max(1, state.total_steps), run))

    def guarded_pre_hook(module, args, kwargs):
        if not busy:
            pre_hook(module, args, kwargs)

    pre = unet.register_forward_pre_hook(guarded_pre_hook, with_kwargs=True)
    post = unet.register_forward_hook(hook, with_kwargs=True)
    try:
        yield controller
    finally:
        pre.remove()
        post.remove()
