"""The WebUI's ``ldm``/``sgm`` backend: per-instance patches of CrossAttention modules.

Each CrossAttention instance in the UNet gets ``module.forward`` set to an adapter (tagged with
``_regedit_patch``) for the length of one sampling call, and ``del module.forward`` restores the
class's forward, which is the WebUI's own optimised attention (SDP, xformers, sub-quadratic). When no
effect wants a call, the adapter delegates to ``type(module).forward(module, ...)`` unchanged.
"""

from __future__ import annotations

import contextlib

import torch

from ..attention.call import AttentionCall
from ..attention.controller import Controller
from ..masks import layer_hw
from .lora_delta import with_delta
from .unet_hooks import latent_hooked, unet_pre_hook

TAG = "_regedit_patch"
ATTENTION_CLASSES = ("CrossAttention", "MemoryEfficientCrossAttention")


def attention_modules(unet: torch.nn.Module):
    """(name, module) of every CrossAttention in the UNet."""
    return [(name, m) for name, m in unet.named_modules() if type(m).__name__ in ATTENTION_CLASSES]


def _adapter(module, layer: str, controller: Controller):
    def forward(x, context=None, mask=None, **kwargs):
        is_cross = context is not None
        state = controller.state
        if (mask is not None or state.rows is None or any(v for v in kwargs.values())
                or not controller.wants(is_cross)):
            return type(module).forward(module, x, context, mask, **kwargs)
        heads = module.heads
        batch, tokens, _ = x.shape

        def split(t):
            return t.view(t.shape[0], -1, heads, t.shape[-1] // heads).transpose(1, 2)

        source = x if context is None else context
        q, k, v = split(module.to_q(x)), split(module.to_k(source)), split(module.to_v(source))

        def project_context(ctx: torch.Tensor):
            delta = state.context_deltas.get(id(ctx))  # a region's own LoRA (region_loras)
            ctx = ctx.to(x.device, x.dtype)
            return (split(with_delta(delta, module.to_k, ctx, module.to_k(ctx))),
                    split(with_delta(delta, module.to_v, ctx, module.to_v(ctx))))

        call = AttentionCall(q=q, k=k, v=v, is_cross=is_cross, layer=layer, hw=layer_hw(state.latent_hw, tokens),
                             rows=state.rows, step=state.step, total_steps=state.total_steps,
                             latent_hw=state.latent_hw, project_context=project_context if is_cross else None,
                             scale=getattr(module, "scale", None))
        out = controller.attend(call)
        return module.to_out(out.transpose(1, 2).reshape(batch, tokens, -1).to(x.dtype))

    setattr(forward, TAG, True)
    return forward


def patch(unet: torch.nn.Module, controller: Controller) -> list:
    """Patch every CrossAttention instance and return the undo list (see :func:`unpatch`)."""
    undo = [unet.register_forward_pre_hook(unet_pre_hook(controller, "x", "context"), with_kwargs=True)]
    for name, module in attention_modules(unet):
        module.forward = _adapter(module, name, controller)
        undo.append(module)
    return undo


def unpatch(undo: list) -> None:
    for item in undo:
        if isinstance(item, torch.nn.Module):
            if getattr(item.__dict__.get("forward"), TAG, False):
                del item.forward
        else:
            item.remove()
    undo.clear()


def remove_leftovers(unet: torch.nn.Module) -> int:
    """Remove any adapter left on the UNet (a crashed generation); returns how many were removed."""
    removed = 0
    for _, module in attention_modules(unet):
        if getattr(module.__dict__.get("forward"), TAG, False):
            del module.forward
            removed += 1
    return removed


@contextlib.contextmanager
def attached(unet: torch.nn.Module, controller: Controller):
    undo = patch(unet, controller)
    try:
        yield controller
    finally:
        unpatch(undo)


def latent_attached(unet: torch.nn.Module, controller: Controller, fusion):
    """Latent mode (MultiDiffusion) on an ldm/sgm UNetModel: rerun per region after each call and fuse."""
    return latent_hooked(unet, controller, fusion, unet_pre_hook(controller, "x", "context"),
                         arg_names=["x", "timesteps", "context", "y"],
                         context_name="context", unpack=lambda out: out, repack=lambda out, fused: fused)


def attach(unet: torch.nn.Module, controller: Controller, fusion=None):
    """``controller`` on ``unet`` for a ``with`` block, after clearing what a crashed run left behind:
    latent mode's region passes with ``fusion``, else the attention patches."""
    remove_leftovers(unet)
    return latent_attached(unet, controller, fusion) if fusion is not None else attached(unet, controller)
