"""Region prompting set-up shared by every backend: encode each region's prompt once and build the
effects the document asks for (region fusion, keyword selection, KSSA)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..attention.controller import Effect
from ..attention.effects.keyword_selection import KeywordSelection, RegionKeywords
from ..attention.effects.kssa import KeywordSelfAttention
from ..attention.effects.region_fusion import RegionFusion, RegionPrompt
from .background import rest_of_prompt
from ..documents import RegionDocument
from ..prompt_syntax import without_extra_networks
from .loras import LORA_TAG, LoraSupport, LoraTag, lora_tags
from .loras import summary as lora_summary
from .latent_fusion import LatentFusion

Encode = Callable[[str], torch.Tensor]
Tokenize = Callable[[str], list[tuple[int, str]]]


def build_fusion(document: RegionDocument, encode: Encode, mode: str | None = None, contexts=None):
    """``encode(prompt)`` gives the cross-attention context (1, T, C) of a prompt in the backend's own way
    (the WebUI's 75-token chunks and emphasis, or the diffusers text encoders). Returns a
    :class:`RegionFusion` (attention mode, one UNet pass) or a :class:`LatentFusion` (latent mode)."""
    mode = mode or document.mode
    contexts = contexts if contexts is not None else [encode(r.prompt) for r in document.object_regions]
    regions = [RegionPrompt(r.x, r.y, r.w, r.h, r.feather, r.weight, ctx,
                            encode(r.negative_prompt) if r.negative_prompt else None, r.shape)
               for r, ctx in zip(document.object_regions, contexts)]
    bg = document.background
    kwargs = dict(background_context=background_context(document, encode),
                  background_negative=encode(bg.negative_prompt) if bg and bg.negative_prompt else None,
                  background_weight=document.background_weight, whole_start=document.whole_prompt_start,
                  whole_weight=document.whole_prompt_weight)
    return (LatentFusion if mode == "latent" else RegionFusion)(regions, **kwargs)


def _without_tags(document: RegionDocument) -> tuple[RegionDocument, list[str]]:
    from dataclasses import replace

    tags: list[str] = []
    regions = []
    for region in document.regions:
        text, found = without_extra_networks(region.prompt)
        negative, found_negative = without_extra_networks(region.negative_prompt)
        tags += found + found_negative
        regions.append(replace(region, prompt=text, negative_prompt=negative) if found or found_negative else region)
    return (replace(document, regions=tuple(regions)) if tags else document), list(dict.fromkeys(tags))


def background_text(document: RegionDocument) -> str | None:
    """r_bg's prompt: the background region's, or what ``background_prompt`` names when there is none
    (``lib_regedit/regions/background.py``). ``None`` means each row's own prompt (``"whole"``, or a background
    region with no prompt)."""
    bg = document.background
    if bg is not None:
        return bg.prompt if bg.prompt.strip() else None
    source = document.background_prompt
    if source == "rest":
        return rest_of_prompt(document.prompt, [r.prompt for r in document.object_regions])
    if source == "empty":
        return ""
    if source == "negative":
        return document.negative_prompt
    return None


def background_context(document: RegionDocument, encode: Encode) -> torch.Tensor | None:
    """r_bg's context: :func:`background_text` encoded. ``None`` means each row's own prompt."""
    text = background_text(document)
    return None if text is None else encode(text)


def _forced_positions(words: list[tuple[int, str]], keywords, tokenize: Tokenize) -> list[int]:
    wanted = {text for kw in keywords for _, text in tokenize(kw)}
    return [pos for pos, text in words if text in wanted]


@dataclass
class RegionEffects:
    """What one generation runs: the effects in controller order, and handles for reporting."""

    effects: list[Effect]
    fusion: RegionFusion | LatentFusion
    selection: KeywordSelection | None = None
    kssa: KeywordSelfAttention | None = None
    notes: list[str] = field(default_factory=list)
    context_deltas: dict = field(default_factory=dict)  # LoRA per region, for GenerationState.context_deltas
    context_passes: dict = field(default_factory=dict)  # ... and GenerationState.context_passes (latent mode)

    def install(self, state) -> None:
        """Give ``state`` the regions' LoRA terms (``lib_regedit/regions/loras.py``)."""
        state.context_deltas.update(self.context_deltas)
        state.context_passes.update(self.context_passes)


def region_lora_tags(document: RegionDocument, loras: LoraSupport | None = None) -> list[list[LoraTag]]:
    """Per object region, the ``<lora:...>`` tags of its prompt, checked for form and, with ``loras``,
    found and readable (each error names the region's field, e.g. ``regions[1].prompt``)."""
    out = []
    for i, region in enumerate(document.regions):
        if region.is_background:
            continue
        field_name = f"regions[{i}].prompt"
        tags = lora_tags(region.prompt, field_name)
        if loras is not None:
            loras.check(tags, field_name)
        out.append(tags)
    return out


def build_effects(document: RegionDocument, encode: Encode, tokenize: Tokenize | None = None,
                  mode: str | None = None, loras: LoraSupport | None = None) -> RegionEffects:
    """Effects in the controller's order: KSSA (``prepare`` on self-attention), region fusion
    (``compute`` on cross-attention), keyword selection (``observe``). Extra-network tags in region
    prompts (``<lora:...>``) are not text: they are left out of the encoding. With ``loras`` (the
    backend's :class:`~lib_regedit.regions.loras.LoraSupport`) a region's ``<lora:...>`` applies to that
    region (``lib_regedit/regions/loras.py``); other tags, and LoRA tags without it, get a note."""
    mode = mode or document.mode
    per_region = region_lora_tags(document, loras) if loras is not None else []
    handled = {m.group(0) for r in document.object_regions for m in LORA_TAG.finditer(r.prompt)} if loras else set()
    document, tagged = _without_tags(document)
    tagged = [t for t in tagged if t not in handled]  # what is left: other extra networks, other prompts' tags

    def encode_region(region, tags):
        if not tags:
            return encode(region.prompt)
        with loras.encoding(tags):
            return encode(region.prompt)

    contexts = [encode_region(r, per_region[i] if per_region else []) for i, r in enumerate(document.object_regions)]
    fusion = build_fusion(document, encode, mode, contexts)
    result = RegionEffects([fusion] if mode == "attention" else [], fusion)
    if tagged:
        result.notes.append(f"{', '.join(tagged)} in region prompts: extra networks apply from the main prompt "
                            "only, to the whole image; the tags were left out of the regions' text")
    if any(per_region):
        for region, tags in zip(fusion.regions, per_region):
            if tags and mode == "attention":
                result.context_deltas[id(region.context)] = loras.projection(tags)
            elif tags:
                result.context_passes[id(region.context)] = functools.partial(loras.unet_pass, tags)
        where = ("its prompt's encoding and its cross-attention keys and values" if mode == "attention"
                 else "its own UNet pass")
        result.notes.append(f"LoRA per region ({where}): {lora_summary(enumerate(per_region))}")
    options = document.kssa
    if not options.enabled:
        return result
    if mode != "attention":
        result.notes.append("KSSA runs in attention mode only; it was skipped in latent mode")
        return result
    if tokenize is None:
        result.notes.append("KSSA skipped: this backend gave no tokenizer")
        return result
    keyword_regions = []
    for i, (region, ctx) in enumerate(zip(document.object_regions, contexts)):
        words = [(p, t) for p, t in tokenize(region.prompt) if p < ctx.shape[1] and any(c.isalnum() for c in t)]
        keyword_regions.append(RegionKeywords(i, (region.x, region.y, region.w, region.h), ctx, words,
                                              _forced_positions(words, region.keywords, tokenize),
                                              shape=region.shape))
    selection = KeywordSelection(keyword_regions, n=options.keywords, refresh_every=options.refresh,
                                 downscale=options.downscale)
    kssa = KeywordSelfAttention(selection, scale=options.scale, reweight=options.reweight, levels=options.levels)
    result.effects = [kssa, fusion, selection]
    result.selection, result.kssa = selection, kssa
    return result
