"""Set-up of an edit pair's effects, shared by every backend (like ``region_prompting.build_effects``
for one image): split the document into R^S and R^T, encode each distinct prompt once, align each
target source's tokens with its source counterpart's, and build the effects in controller order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from ..attention.controller import Effect
from ..attention.effects.pair_fusion import PairFusion
from ..attention.effects.self_map_injection import SelfMapInjection
from ..documents import RegionDocument
from ..regions.prompting import _without_tags, background_text, build_fusion
from .pair_documents import PairDocuments, split_pair
from ..attention.pair_plan import PairPlan
from ..attention.token_alignment import TokenMapping, token_mapping

Encode = Callable[[str], torch.Tensor]
Tokenize = Callable[[str], list[tuple[int, str]]]


@dataclass
class PairEffects:
    effects: list[Effect]
    plan: PairPlan
    documents: PairDocuments
    notes: list[str] = field(default_factory=list)
    selection = None  # keyword selection does not run in a pair (see the note)

    @property
    def source_prompt(self) -> str:
        return self.documents.source.prompt

    @property
    def target_prompt(self) -> str:
        return self.documents.target.prompt


def build_pair_effects(document: RegionDocument, encode: Encode, tokenize: Tokenize | None,
                       roles: tuple[str, ...], prompt: str | None = None,
                       target_prompt: str | None = None) -> PairEffects:
    """``roles``: "source" or "target" for each row of the sampler's conditional tensor. ``prompt``
    replaces the source's whole prompt (the WebUI's prompt box), ``target_prompt`` the target's."""
    document, tagged = _without_tags(document)
    pair = split_pair(document, prompt)
    if target_prompt is not None:
        from dataclasses import replace

        pair = replace(pair, target=replace(pair.target, prompt=target_prompt))
    cache: dict[str, torch.Tensor] = {}

    def cached(text: str) -> torch.Tensor:  # one tensor per prompt: shared projections and identities
        if text not in cache:
            cache[text] = encode(text)
        return cache[text]

    source = build_fusion(pair.source, cached, "attention")
    target = build_fusion(pair.target, cached, "attention")

    def mapping(s_text: str | None, t_text: str | None, s_ctx, t_ctx) -> TokenMapping | None:
        if s_text is None or t_text is None or s_ctx is None or t_ctx is None:
            return None
        if tokenize is None or s_text == t_text:
            return TokenMapping.identity(t_ctx.shape[1]) if s_ctx.shape[1] == t_ctx.shape[1] else None
        return token_mapping(tokenize(s_text), tokenize(t_text), s_ctx.shape[1], t_ctx.shape[1])

    src_objects = pair.source.object_regions
    region_mappings = []
    for j, region in enumerate(pair.target.object_regions):
        c = pair.counterparts[j]
        region_mappings.append(None if c is None else mapping(src_objects[c].prompt, region.prompt,
                                                              source.regions[c].context, target.regions[j].context))
    whole_s, whole_t = cached(pair.source.prompt), cached(pair.target.prompt)
    whole_mapping = mapping(pair.source.prompt, pair.target.prompt, whole_s, whole_t) or \
        TokenMapping.identity(whole_t.shape[1])
    bg_s, bg_t = background_text(pair.source), background_text(pair.target)
    background_mapping = mapping(bg_s, bg_t, source.background_context, target.background_context)
    plan = PairPlan(source, target, pair.counterparts, pair.kinds, tuple(region_mappings), background_mapping,
                    whole_mapping, document.edit, tuple(roles), pair.background_kind,
                    tuple((r.x, r.y, r.w, r.h, r.feather, r.shape) for r in pair.removed))
    notes = []
    if tagged:
        notes.append(f"{', '.join(tagged)} in region prompts: extra networks apply from the main prompt only; "
                     "the tags were left out of the regions' text")
    if document.kssa.enabled:
        notes.append("KSSA does not run in an edit pair yet; the pair was made without it")
    effects: list[Effect] = [PairFusion(plan), SelfMapInjection(plan)]
    return PairEffects(effects, plan, pair, notes)
