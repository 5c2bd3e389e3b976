"""An edit pair in ComfyUI (MRGD): one document with edit roles gives a source and a target image, sampled
as one batch by ComfyUI's own sampler (any sampler and scheduler).

As in the WebUI: each pair's rows (source, target) start from the same noise (layout init's starts where
the document uses it, the target's cut around its edited boxes, ``editing/pair_start.py``); the pair's
attention effects run on a patched clone of the MODEL; the target keeps the source outside the edited
regions at every step (a post-CFG function, ``editing/keep_outside.py``), and the source's pixels are
pasted back there seamlessly after decoding.
"""

from __future__ import annotations

import torch

from ..attention.controller import Controller, GenerationState
from ..backends import comfy_backend
from ..backends.checkpoint import empty_prompt_eps
from ..compositing import seamless_paste
from ..editing.keep_outside import interleaved_pairs, keep_source, pair_keep_area
from ..editing.pair_documents import parse_pair, target_whole_prompt
from ..editing.pair_effects import build_pair_effects
from ..editing.pair_start import pair_starts
from ..errors import RegEditError
from ..regions import layout_init
from . import host

ROLES = ("source", "target")


def edit_pair(model, clip, vae, document, *, prompt: str, negative_prompt: str, width: int, height: int,
              pairs: int, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str):
    """``pairs`` (source, target) images of ``document``; ``prompt`` is the source's whole prompt (empty:
    the document's). Returns (sources, targets) as IMAGEs."""
    import comfy.sample
    import latent_preview

    doc = parse_pair(document)
    if doc.edit.guidance.enabled:
        raise RegEditError("edit.guidance", "multi-region guidance differentiates through the UNet, and ComfyUI runs "
                                            "its nodes without gradients", "turn edit.guidance off in ComfyUI")
    factor = host.check_size(vae, width, height)
    checkpoint = host.checkpoint(model, clip, vae, width, height)
    source_prompt = prompt.strip() or doc.prompt
    target_prompt = target_whole_prompt(doc, source_prompt)
    roles = ROLES * pairs
    contexts: dict[str, torch.Tensor] = {}

    def encode(text: str) -> torch.Tensor:
        if text not in contexts:
            contexts[text] = checkpoint.conditioning(text).context
        return contexts[text]

    def effects():
        return build_pair_effects(doc, encode, checkpoint.tokenize, roles, prompt=source_prompt,
                                  target_prompt=target_prompt)

    with torch.no_grad():
        documents = effects().documents  # every prompt encoded now, not while sampling

    def build():
        return Controller(effects().effects, GenerationState()), None

    patched = comfy_backend.patched(model, build, attention_function=checkpoint.attention_function)
    h, w = height // factor, width // factor
    area = pair_keep_area(doc, h, w)
    if area is not None:
        def keep(args):
            denoised = args["denoised"]
            return keep_source(denoised, area, interleaved_pairs(denoised.shape[0])) if denoised.shape[0] % 2 == 0 \
                else denoised
        patched.set_model_sampler_post_cfg_function(keep)

    channels = int(getattr(getattr(model.model, "latent_format", None), "latent_channels", 4))
    empty = torch.zeros(pairs * 2, channels, h, w)
    noise = comfy.sample.prepare_noise(torch.zeros(pairs, channels, h, w), int(seed)).float()
    if doc.uses_layout_init():
        with torch.no_grad():
            inverted = [layout_init.inverted_sketch(d, width=width, height=height, steps=steps,
                                                    encode=checkpoint.posterior_mean, eps=empty_prompt_eps(checkpoint),
                                                    alphas_cumprod=checkpoint.alphas, model_key=checkpoint.key)
                        for d in (documents.source, documents.target)]
        source_start, target_start = pair_starts(doc, documents, inverted, noise)
    else:
        source_start = target_start = noise
    start = torch.stack([source_start, target_start], 1).reshape(pairs * 2, channels, h, w)
    positive = host.conditioning(clip, [source_prompt, target_prompt] * pairs)
    negative = host.conditioning(clip, [negative_prompt] * (pairs * 2))
    callback = latent_preview.prepare_callback(patched, steps)
    samples = comfy.sample.sample(patched, start, steps, cfg, sampler_name, scheduler, positive, negative, empty,
                                  callback=callback, seed=int(seed))
    pictures = host.pictures(vae.decode(samples))
    sources, targets = pictures[0::2], pictures[1::2]
    if area is not None:
        pixels = pair_keep_area(doc, height, width).numpy()
        targets = [seamless_paste(s, t, pixels) for s, t in zip(sources, targets)]
    return host.image_of(sources), host.image_of(targets)
