"""diffusers backend: an attention processor that hands each call to the controller.

Installed on a UNet2DConditionModel for one generation by :func:`attached` and always restored.
"""

from __future__ import annotations

import contextlib

import torch

from ..attention.call import AttentionCall
from ..attention.controller import Controller
from ..masks import layer_hw
from .lora_delta import with_delta
from .unet_hooks import latent_hooked, unet_pre_hook


class RegEditAttnProcessor:
    """Project, reshape, let the controller attend, project back (as diffusers' AttnProcessor2_0)."""

    def __init__(self, controller: Controller, layer: str, original):
        self.controller = controller
        self.layer = layer
        self.original = original

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        is_cross = encoder_hidden_states is not None
        state = self.controller.state
        if (attention_mask is not None or state.rows is None or hidden_states.ndim != 3
                or attn.spatial_norm is not None or attn.group_norm is not None
                or not self.controller.wants(is_cross)):
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        residual = hidden_states
        batch, tokens, _ = hidden_states.shape
        heads = attn.heads

        def split(t):
            return t.view(t.shape[0], -1, heads, t.shape[-1] // heads).transpose(1, 2)

        context = encoder_hidden_states if is_cross else hidden_states
        if is_cross and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        q, k, v = split(attn.to_q(hidden_states)), split(attn.to_k(context)), split(attn.to_v(context))
        if attn.norm_q is not None:
            q, k = attn.norm_q(q), attn.norm_k(k)

        def project_context(ctx: torch.Tensor):
            delta = state.context_deltas.get(id(ctx))  # a region's own LoRA (region_loras)
            ctx = ctx.to(hidden_states.device, hidden_states.dtype)
            if attn.norm_cross:
                ctx = attn.norm_encoder_hidden_states(ctx)
            pk = split(with_delta(delta, attn.to_k, ctx, attn.to_k(ctx)))
            pv = split(with_delta(delta, attn.to_v, ctx, attn.to_v(ctx)))
            if attn.norm_k is not None:
                pk = attn.norm_k(pk)
            return pk, pv

        call = AttentionCall(q=q, k=k, v=v, is_cross=is_cross, layer=self.layer,
                             hw=layer_hw(state.latent_hw, tokens), rows=state.rows, step=state.step,
                             total_steps=state.total_steps, latent_hw=state.latent_hw,
                             project_context=project_context if is_cross else None, scale=attn.scale)
        out = self.controller.attend(call)
        out = out.transpose(1, 2).reshape(batch, tokens, -1).to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


@contextlib.contextmanager
def attached(unet, controller: Controller):
    """Install the processor on every attention layer of ``unet`` for the ``with`` block; restore after."""
    originals = dict(unet.attn_processors)
    processors = {name: RegEditAttnProcessor(controller, name.removesuffix(".processor"), proc)
                  for name, proc in originals.items()}
    handle = unet.register_forward_pre_hook(unet_pre_hook(controller, "sample", "encoder_hidden_states"),
                                            with_kwargs=True)
    unet.set_attn_processor(processors)
    try:
        yield controller
    finally:
        handle.remove()
        unet.set_attn_processor(originals)


def _unpack(output):
    return output[0] if isinstance(output, tuple) else output.sample


def _repack(output, fused):
    if isinstance(output, tuple):
        return (fused,) + tuple(output[1:])
    output.sample = fused
    return output


def latent_attached(unet, controller: Controller, fusion):
    """Latent mode on a diffusers UNet: after each call, rerun the UNet per region and fuse (Eq. 1)."""
    return latent_hooked(unet, controller, fusion, unet_pre_hook(controller, "sample", "encoder_hidden_states"),
                         arg_names=["sample", "timestep", "encoder_hidden_states"], context_name="encoder_hidden_states",
                         unpack=_unpack, repack=_repack, extra_kwargs={"return_dict": False})
