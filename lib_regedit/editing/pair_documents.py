"""The source and target region documents an edit pair describes (MRGD Alg. 1: R^S and R^T).

R^S has the inherent, removed and changed regions (with their source prompts); R^T has the
inherent, added and changed regions (with their target prompts). Both keep the document's settings.
Each region of R^T knows its counterpart in R^S (:func:`counterparts`), which is what
prompt-to-prompt reads maps from.

The target's whole-image prompt is the document's ``target_prompt`` when given; otherwise the
source's prompt rewritten (:func:`target_whole_prompt`): a changed region's phrase is replaced by its
target phrase, an added phrase is appended with "and", a removed phrase is taken out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..regions.background import rest_of_prompt
from ..documents import Region, RegionDocument, parse_region_document
from ..errors import RegEditError


@dataclass(frozen=True)
class PairDocuments:
    source: RegionDocument
    target: RegionDocument
    # for each object region of the target, the index of its counterpart among the source's object
    # regions (None for an added region); same for the background region
    counterparts: tuple[int | None, ...]
    kinds: tuple[str, ...]  # each target object region's edit role: inherent, add or change
    removed: tuple[Region, ...]  # the source's removed regions (their boxes get no source structure)
    background_kind: str = "inherent"  # "change" when the background region is changed


def _replace_phrase(prompt: str, old: str, new: str) -> tuple[str, bool]:
    pattern = re.compile(r"(?<!\w)" + re.escape(old.strip()) + r"(?!\w)", re.IGNORECASE)
    if not old.strip() or not pattern.search(prompt):
        return prompt, False
    return pattern.sub(lambda _: new.strip(), prompt, count=1), True


def _joined(prompt: str, phrase: str) -> str:
    prompt, phrase = prompt.strip(), phrase.strip()
    if not prompt:
        return phrase
    if re.search(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", prompt, re.IGNORECASE):
        return prompt
    head, sep, tail = prompt.partition(",")  # "a cat, best quality" + "a dog" -> "a cat and a dog, best quality"
    return f"{head.strip()} and {phrase}{sep}{tail}" if sep else f"{prompt} and {phrase}"


def target_whole_prompt(document: RegionDocument, prompt: str | None = None) -> str:
    """The target's r_total prompt: ``document.target_prompt``, or ``prompt`` (the source's, by default
    the document's) with each edit applied to its text."""
    if document.target_prompt.strip():
        return document.target_prompt
    text = document.prompt if prompt is None else prompt
    for region in document.regions:
        if region.edit == "change":
            text, found = _replace_phrase(text, region.prompt, region.target_prompt)
            if not found:
                text = _joined(text, region.target_prompt)
        elif region.edit == "add":
            text = _joined(text, region.prompt)
        elif region.edit == "remove":
            text = rest_of_prompt(text, [region.prompt]) if region.prompt.strip() else text
    return text


def split_pair(document: RegionDocument, prompt: str | None = None) -> PairDocuments:
    """R^S and R^T of a pair document. ``prompt`` overrides the source's whole prompt (the WebUI's
    prompt box, after styles)."""
    source_prompt = document.prompt if prompt is None else prompt
    source_regions, target_regions, counterparts, kinds, removed = [], [], [], [], []
    source_index: dict[int, int] = {}
    for i, region in enumerate(document.regions):
        if region.edit != "add":
            plain = replace(region, edit="inherent", target_prompt="")
            if not region.is_background:
                source_index[i] = sum(not r.is_background for r in source_regions)
            source_regions.append(plain)
        if region.edit == "remove":
            removed.append(region)
    for i, region in enumerate(document.regions):
        if region.edit == "remove":
            continue
        prompt_t = region.target_prompt if region.edit == "change" else region.prompt
        target_regions.append(replace(region, prompt=prompt_t, edit="inherent", target_prompt=""))
        if not region.is_background:
            counterparts.append(source_index.get(i))
            kinds.append(region.edit)
    plain = replace(document, target_prompt="")
    source = replace(plain, prompt=source_prompt, regions=tuple(source_regions))
    target = replace(plain, prompt=target_whole_prompt(document, source_prompt), regions=tuple(target_regions))
    background = document.background
    return PairDocuments(source, target, tuple(counterparts), tuple(kinds), tuple(removed),
                         background.edit if background is not None else "inherent")


def parse_pair(document) -> RegionDocument:
    doc = document if isinstance(document, RegionDocument) else parse_region_document(document)
    if doc is None:
        raise RegEditError("regions", "the edit document is empty",
                           'give {"regions": [...]} with one region "edit": "add", "remove" or "change"')
    if not doc.is_pair:
        raise RegEditError("regions", "no region is edited, so the target would equal the source",
                           'give one region "edit": "add", "remove" or "change" (with its "target_prompt")')
    return doc
