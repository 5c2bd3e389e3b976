"""Region prompts on a ComfyUI MODEL: the Regions node's work.

The node's MODEL is a patched clone (``backends/comfy_backend.py``), so the user's own sampler node
(KSampler, SamplerCustom, any sampler and scheduler) does the sampling, and the model given stays as it was.
Region prompts are encoded once, with the node's CLIP; each sampling call builds fresh effects from them.
"""

from __future__ import annotations

import json
import logging

import torch

from ..attention.controller import Controller, GenerationState
from ..backends import comfy_backend
from ..documents import RegionDocument, parse_region_document
from ..documents.fields import load_json_object
from ..errors import RegEditError
from ..regions.prompting import build_effects

FROM_DOCUMENT = "from the document"
MODES = (FROM_DOCUMENT, "attention", "latent")
BACKGROUNDS = (FROM_DOCUMENT, "rest", "whole", "empty", "negative")
SWITCH = (FROM_DOCUMENT, "on", "off")
LOG = logging.getLogger("regedit")


def region_document(text, *, mode: str = FROM_DOCUMENT, background: str = FROM_DOCUMENT,
                    kssa: str = FROM_DOCUMENT, field: str = "regions") -> RegionDocument:
    """The node's document with its choices applied (each one left at "from the document" keeps the
    document's own field). An empty document, or one with edit roles, is refused with the fix."""
    obj = load_json_object(text, field)
    if obj is None or not obj.get("regions"):
        raise RegEditError(field, "has no regions", 'draw boxes on the node, or write {"regions": [{"x": 0, "y": 0, '
                                                    '"w": 0.5, "h": 1, "prompt": "..."}]}')
    obj = dict(obj)
    if mode != FROM_DOCUMENT:
        obj["mode"] = mode
    if background != FROM_DOCUMENT:
        obj["background_prompt"] = background
    if kssa != FROM_DOCUMENT:
        obj["kssa"] = {**(obj.get("kssa") if isinstance(obj.get("kssa"), dict) else {}), "enabled": kssa == "on"}
    document = parse_region_document(obj, field)
    if document.is_pair:
        raise RegEditError(f"{field}.regions", "has edit roles (add, remove, change), which make an edit pair",
                           "use the RegEdit Edit Pair node for an edit, or remove the regions' \"edit\" fields")
    return document


def regions_model(model, checkpoint, document: RegionDocument):
    """A clone of ``model`` (ComfyUI's ``ModelPatcher``) that runs ``document``'s region prompts, keyword
    selection and KSSA in every sampling call. ``checkpoint``: the model interface over the node's
    MODEL and CLIP, which encodes the region prompts (once)."""
    contexts: dict[str, torch.Tensor] = {}

    def encode(prompt: str) -> torch.Tensor:
        if prompt not in contexts:
            contexts[prompt] = checkpoint.conditioning(prompt).context
        return contexts[prompt]

    with torch.no_grad():
        first = build_effects(document, encode, checkpoint.tokenize)  # every prompt encoded now, not while sampling
    for text in first.notes:
        LOG.warning("RegEdit: %s", text)

    def build():
        built = build_effects(document, encode, checkpoint.tokenize)
        state = GenerationState(cond_first=True)
        built.install(state)
        return Controller(built.effects, state), (built.fusion if document.mode == "latent" else None)

    return comfy_backend.patched(model, build, latent_mode=document.mode == "latent",
                                 attention_function=checkpoint.attention_function)


def document_text(document: RegionDocument) -> str:
    """The document as compact JSON, for the node's output and the saved workflow."""
    return json.dumps(json.loads(document.to_json()), separators=(",", ":"))
