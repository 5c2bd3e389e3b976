"""WebUI Forge's backend: Forge's own UNet patcher instead of patched modules.

Forge has no ``ldm``/``sgm`` packages. Its attention modules (``backend.nn.unet.CrossAttention``) take
``transformer_options``, and every extension changes the UNet through a clone of
``p.sd_model.forge_objects.unet`` (a ``UnetPatcher``) that lives for one sampling call: Forge rebuilds
``forge_objects`` before every sampling, so nothing is left hooked afterwards and there is nothing to
undo. :func:`patched` returns such a clone with

- an attention replacement on every transformer block (``attn1`` and ``attn2``): Forge calls it with
  the block's projected ``q, k, v`` (heads merged) and the options, and this hands an
  :class:`AttentionCall` to the controller. Region contexts are projected with the block's own
  ``to_k``/``to_v``;
- a UNet function wrapper that starts each UNet call: the row layout is read from Forge's
  ``cond_or_uncond`` (chunks of equal size, uncond first in Forge, the reverse of AUTOMATIC1111), and
  latent mode (MultiDiffusion) reruns the model per region there and fuses.

Nothing here imports Forge: the module works on any object with the patcher's methods, so the unit
tests drive it with Forge's call convention and the e2e tests run it in a real Forge.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch

from ..attention.call import AttentionCall, RowLayout, attend
from ..attention.controller import Controller
from ..masks import layer_hw
from .lora_delta import with_delta
from .unet_hooks import select_rows

COND, UNCOND = 0, 1  # Forge's marks in ``cond_or_uncond``
_BLOCK_KINDS = {"input_blocks": "input", "middle_block": "middle", "output_blocks": "output"}


def rows_of(cond_or_uncond, batch: int) -> RowLayout:
    """The row layout of one Forge UNet call: ``cond_or_uncond`` marks each of its equal chunks."""
    marks = list(cond_or_uncond or [])
    if not marks or batch % len(marks):
        return RowLayout.all_cond(batch)
    size = batch // len(marks)
    cond, uncond = [], []
    for i, mark in enumerate(marks):
        (uncond if mark == UNCOND else cond).extend(range(i * size, (i + 1) * size))
    return RowLayout(tuple(cond), tuple(uncond))


def transformer_blocks(diffusion_model: torch.nn.Module) -> dict:
    """``{(block kind, block number, index in its transformer): (name, block)}`` for every
    ``BasicTransformerBlock``: the keys Forge's attention replacements are registered under, the names
    those of the ldm backend (``input_blocks.1.1.transformer_blocks.0``), which the effects' layer sets read."""
    blocks = {}
    for name, module in diffusion_model.named_modules():
        if type(module).__name__ != "BasicTransformerBlock":
            continue
        parts = name.split(".")
        kind = _BLOCK_KINDS.get(parts[0])
        if kind is None or not parts[-1].isdigit():
            continue
        number = 0 if kind == "middle" else int(parts[1])
        blocks[(kind, number, int(parts[-1]))] = (name, module)
    return blocks


def _split(t: torch.Tensor, heads: int) -> torch.Tensor:
    return t.view(t.shape[0], -1, heads, t.shape[-1] // heads).transpose(1, 2)


def _merge(t: torch.Tensor) -> torch.Tensor:
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], -1)


def _plain(q, k, v, heads: int) -> torch.Tensor:
    return _merge(attend(_split(q, heads), _split(k, heads), _split(v, heads)))


def attention_replacement(controller: Controller, blocks: dict, target: str,
                          fallback: Callable | None = None) -> Callable:
    """Forge's ``fn(q, k, v, extra_options)`` for ``target`` ("attn1" or "attn2"): hands the call to
    the controller, or to ``fallback(q, k, v, heads)`` (Forge's own attention) when no effect wants it."""
    is_cross = target == "attn2"
    fallback = fallback or _plain

    def attention(q, k, v, extra_options):
        heads = int(extra_options["n_heads"])
        state = controller.state
        block = extra_options.get("block")
        entry = blocks.get((block[0], block[1], extra_options.get("block_index", 0))) if block else None
        if entry is None or state.rows is None or state.rows.size != q.shape[0] or not controller.wants(is_cross):
            return fallback(q, k, v, heads)
        name, module = entry
        attn = getattr(module, target)

        def project_context(ctx: torch.Tensor):
            delta = state.context_deltas.get(id(ctx))  # a region's own LoRA (region_loras)
            ctx = ctx.to(q.device, q.dtype)
            return (_split(with_delta(delta, attn.to_k, ctx, attn.to_k(ctx)), heads),
                    _split(with_delta(delta, attn.to_v, ctx, attn.to_v(ctx)), heads))

        call = AttentionCall(q=_split(q, heads), k=_split(k, heads), v=_split(v, heads), is_cross=is_cross,
                             layer=f"{name}.{target}", hw=layer_hw(state.latent_hw, q.shape[1]), rows=state.rows,
                             step=state.step, total_steps=state.total_steps, latent_hw=state.latent_hw,
                             project_context=project_context if is_cross else None)
        return _merge(controller.attend(call)).to(q.dtype)

    return attention


def _sub_options(options: dict, mark: int, n: int) -> dict:
    """``transformer_options`` for a rerun of ``n`` rows that are all cond (or all uncond)."""
    options = dict(options)
    sigmas = options.get("sigmas")
    options["cond_or_uncond"] = [mark]
    if isinstance(sigmas, torch.Tensor):
        options["sigmas"] = sigmas[:n]
        options["cond_mark"] = torch.full((n,), float(mark)).to(sigmas)
    options["cond_indices"], options["uncond_indices"] = (list(range(n)), []) if mark == COND else ([], list(range(n)))
    return options


def unet_wrapper(controller: Controller, fusion=None, previous: Callable | None = None) -> Callable:
    """Forge's ``model_function_wrapper``: starts each UNet call (rows, latent size, context) and, in
    latent mode, reruns the model per region on the rows to fuse (MultiDiffusion, Eq. 1). Another
    extension's wrapper, when one was set, still runs around every call."""
    busy = []

    def call_model(apply_model, args):
        if previous is not None:
            return previous(apply_model, args)
        return apply_model(args["input"], args["timestep"], **args["c"])

    def wrapper(apply_model, args):
        x, c = args["input"], args["c"]
        batch = x.shape[0]
        rows = rows_of(args.get("cond_or_uncond"), batch)
        if not busy:
            controller.begin_unet_call(c.get("c_crossattn"), batch, tuple(x.shape[-2:]), rows=rows)
        out = call_model(apply_model, args)
        if fusion is None or busy:
            return out
        state = controller.state

        def run(context, target):
            target = list(target)
            mark = UNCOND if set(target) <= set(rows.uncond) else COND
            sub_c = {k: select_rows(v, target, batch) for k, v in c.items() if k != "transformer_options"}
            sub_c["c_crossattn"] = context.to(out.device, out.dtype).expand(len(target), -1, -1)
            if "transformer_options" in c:
                sub_c["transformer_options"] = _sub_options(c["transformer_options"], mark, len(target))
            sub = dict(args, input=x[target], timestep=select_rows(args["timestep"], target, batch), c=sub_c,
                       cond_or_uncond=[mark])
            busy.append(1)
            try:
                with state.context_passes.get(id(context), contextlib.nullcontext)():  # a region's own LoRA
                    return call_model(apply_model, sub)
            finally:
                busy.pop()

        # Forge's model returns the denoised latent; MultiDiffusion's weights sum to one at every
        # pixel, so fusing it equals fusing the noise (x0 = x - sigma * eps, one x and sigma per row)
        return fusion.fuse(out, rows.cond, rows.uncond, state.step / max(1, state.total_steps), run)

    return wrapper


def patched(unet_patcher, controller: Controller, fusion=None, attention_function: Callable | None = None):
    """A clone of Forge's ``UnetPatcher`` with RegEdit's attention replacements and UNet wrapper; the
    caller assigns it to ``p.sd_model.forge_objects.unet`` for this sampling call. With ``fusion``
    (latent mode) the regions are fused at the wrapper, and the attention stays Forge's own."""
    unet = unet_patcher.clone()
    previous = unet.model_options.get("model_function_wrapper")
    if fusion is None:
        blocks = transformer_blocks(unet.model.diffusion_model)
        replacements = {t: attention_replacement(controller, blocks, t, attention_function) for t in ("attn1", "attn2")}
        for kind, number, index in blocks:
            for target, fn in replacements.items():
                unet.set_model_patch_replace(fn, target, kind, number, index)
    unet.set_model_unet_function_wrapper(unet_wrapper(controller, fusion, previous))
    return unet
