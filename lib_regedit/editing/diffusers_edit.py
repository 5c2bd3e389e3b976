"""Region editing on diffusers (MRGD, Li et al. 2024, Alg. 1): one run denoises the source image I^S
and the target I^T together from the same noise (z_T^T ← z_T^S), with prompt-to-prompt per region.

>>> from lib_regedit.models import load_pipeline
>>> from lib_regedit.editing import edit_pair
>>> pipe = load_pipeline("models/shapesworld")
>>> result = edit_pair(pipe, {"regions": [
...     {"x": 0.05, "y": 0.3, "w": 0.4, "h": 0.4, "prompt": "a red circle", "edit": "change",
...      "target_prompt": "a blue circle"},
...     {"x": 0.55, "y": 0.3, "w": 0.4, "h": 0.4, "prompt": "a green square"}]}, seed=1)
>>> result.source.save("source.png"); result.target.save("target.png")

Rows: for ``batch_size`` N the conditional batch is N source rows then N target rows; each pair
shares its initial noise and, through per-row generators, every later noise draw (ancestral
schedulers). ``method="p2p"`` is the prompt-to-prompt baseline: the whole prompts only, no regions.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace

import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .. import api
from ..attention.controller import Controller, GenerationState
from ..backends import diffusers_backend
from ..documents import RegionDocument
from ..errors import RegEditError
from ..infotext import INFOTEXT_KEY, PAIR_IMAGE_KEY, parameters_text
from .keep_outside import keep_source, pair_keep_area, stacked_pairs
from .pair_documents import parse_pair
from .pair_effects import build_pair_effects
from .pair_start import added_start_document, edited_start

METHODS = ("regions", "p2p")


@dataclass
class EditResult:
    sources: list[Image.Image]
    targets: list[Image.Image]
    source_parameters: str
    target_parameters: str
    document: RegionDocument
    extras: dict = field(default_factory=dict)

    @property
    def source(self) -> Image.Image:
        return self.sources[0]

    @property
    def target(self) -> Image.Image:
        return self.targets[0]

    def pnginfo(self, which: str = "target") -> PngInfo:
        info = PngInfo()
        info.add_text("parameters", self.target_parameters if which == "target" else self.source_parameters)
        return info


def _whole_prompt_only(doc: RegionDocument) -> RegionDocument:
    """The prompt-to-prompt baseline's document: no regions, the background is each row's own prompt,
    and its maps are replaced on prompt-to-prompt's schedule."""
    from ..documents import Region
    from .pair_documents import target_whole_prompt

    marker = Region(0, 0, 1, 1, doc.prompt, role="background", edit="change",
                    target_prompt=target_whole_prompt(doc))
    # prompt-to-prompt's own schedule (Hertz et al. 2022: cross-attention replaced for 0.8 of the
    # steps, self-attention for 0.4), read through the changed-background fractions
    options = replace(doc.edit, cross_replace=replace(doc.edit.cross_replace, pair=0.8),
                      self_replace=replace(doc.edit.self_replace, pair=0.4))
    return replace(doc, regions=(marker,), background_prompt="whole", whole_prompt_weight=0.0, edit=options)


def edit_pair(pipe, document, *, seed: int = 0, steps: int = 20, guidance_scale: float = 7.5,
              width: int | None = None, height: int | None = None, batch_size: int = 1,
              method: str = "regions", segmenter=None, model_name: str | None = None,
              allow_large: bool = False) -> EditResult:
    """Make the source and the target of an edit pair. ``document`` is a region document with edit
    roles (dict, JSON string or parsed). ``segmenter`` (``lib_regedit.editing.segmenter``) is needed
    when the document turns on multi-region guidance. Bad input raises :class:`RegEditError` before
    any work."""
    doc = parse_pair(document)
    if method not in METHODS:
        raise RegEditError("method", f"{method!r} is not a method", f"use {' or '.join(METHODS)}")
    if doc.edit.guidance.enabled and segmenter is None:
        raise RegEditError("segmenter", "multi-region guidance needs a segmenter and none was given",
                           "load one with lib_regedit.editing.segmenter.load_segmenter(folder) (a CLIPSeg "
                           "folder, e.g. models/shapesworld_clipseg) or turn edit.guidance off")
    width, height = api.check_settings(pipe, seed=seed, steps=steps, guidance_scale=guidance_scale, width=width,
                                       height=height, batch_size=batch_size, allow_large=allow_large)
    run_doc = doc if method == "regions" else _whole_prompt_only(doc)
    roles = ("source",) * batch_size + ("target",) * batch_size
    built = build_pair_effects(run_doc, lambda prompt: api.encode(pipe, prompt)[0],
                               lambda prompt: api.tokenize(pipe, prompt), roles)
    cond_s, uncond, pooled_s, negative_pooled = api.encode(pipe, built.source_prompt, doc.negative_prompt)
    cond_t, _, pooled_t, _ = api.encode(pipe, built.target_prompt, doc.negative_prompt)
    n = batch_size
    cond = torch.cat([cond_s] * n + [cond_t] * n)
    uncond_rows = torch.cat([uncond] * (2 * n))
    pooled = None if pooled_s is None else torch.cat([pooled_s] * n + [pooled_t] * n)
    negative = None if negative_pooled is None else torch.cat([negative_pooled] * (2 * n))
    state = GenerationState(total_steps=steps, cond_reference=cond, uncond_reference=uncond_rows, cond_first=False)
    controller = Controller(built.effects, state)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if method == "regions" and doc.uses_layout_init():
            source_latents = api._layout_latents(pipe, built.documents.source, seed=seed, steps=steps, width=width,
                                                 height=height, batch_size=n)
            target_latents = api._layout_latents(pipe, built.documents.target, seed=seed, steps=steps, width=width,
                                                 height=height, batch_size=n)
            added_doc = added_start_document(doc, built.documents.target)  # the target's sketch, inverted once
            added = None if added_doc is None else api._layout_latents(pipe, added_doc, seed=seed, steps=steps,
                                                                         width=width, height=height, batch_size=n)
            latents = torch.cat([source_latents, edited_start(source_latents, target_latents, doc, added)])
        else:  # z_T^T <- z_T^S (MRGD Alg. 1)
            latents = api._seed_noise(pipe, seed, n, width, height)
            latents = torch.cat([latents, latents])
        generators = [torch.Generator("cpu").manual_seed(seed + i) for i in range(n)] * 2
        stack.enter_context(diffusers_backend.attached(pipe.unet, controller))
        guidance = None
        if doc.edit.guidance.enabled:
            from .diffusers_guidance import guided, vae_decoder
            from .region_guidance import RegionGuidance, guided_pair

            options = doc.edit.guidance
            guidance = RegionGuidance(guided_pair(built.documents), segmenter, vae_decoder(pipe),
                                      (options.rs, options.is_, options.ip), options.until, model=pipe.vae)
            stack.enter_context(guided(pipe.unet, guidance, built.plan, state, pipe.scheduler.alphas_cumprod,
                                       guidance_scale))
        keep = pair_keep_area(doc, *latents.shape[-2:]) if method == "regions" else None
        # the source's latent outside the edited boxes, after every step
        step_hook = None if keep is None else (lambda _pipe, _step, x: keep_source(x, keep, stacked_pairs(n)))
        images = api._run(pipe, state, cond, uncond_rows, pooled, negative, seed=seed, steps=steps,
                          guidance_scale=guidance_scale, width=width, height=height, batch_size=1,
                          latents=latents, generator=generators, step_hook=step_hook)
    if keep is not None:  # the source's own pixels outside, the fill shifted to meet them (compositing.py)
        from ..compositing import seamless_paste
        from .keep_outside import edit_area

        area = edit_area(doc, images[0].height, images[0].width).numpy()
        images = images[:n] + [seamless_paste(s, t, area) for s, t in zip(images[:n], images[n:])]
    elapsed = time.perf_counter() - started
    params = api._params(pipe, seed, steps, guidance_scale, width, height, model_name)
    params[INFOTEXT_KEY] = doc.to_json()
    texts = {}
    for role, prompt in (("source", built.source_prompt), ("target", built.target_prompt)):
        texts[role] = parameters_text(prompt, doc.negative_prompt, dict(params, **{PAIR_IMAGE_KEY: role}))
    extras = {"notes": built.notes, "seconds": elapsed, "method": method,
              "source_document": built.documents.source, "target_document": built.documents.target}
    if guidance is not None:
        extras["guidance"] = guidance.summary()
        extras["guidance_history"] = guidance.history
        built.notes.append(guidance.summary())
    return EditResult(images[:n], images[n:], texts["source"], texts["target"], doc, extras)
