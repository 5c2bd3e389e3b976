"""An edit pair in the WebUI's txt2img: each image of the batch becomes a source and a target.

``scripts/regedit.py`` calls :func:`pair_batch` in the script's ``process`` (after the WebUI has made
its prompt and seed lists, before the first batch): the batch size doubles and each image i becomes
the rows (source i, target i), with one seed, so the pair starts from the same noise and, per-seed,
draws the same noise later (ancestral samplers). Batch count and size keep working: pairs per image.
:class:`WebUIPairSession` builds the pair's effects instead of plain region fusion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..attention.controller import Controller
from ..documents import RegionDocument
from ..webui_session import WebUISession, crossattn
from .pair_documents import target_whole_prompt
from .pair_effects import build_pair_effects

ROLES = ("source", "target")


@dataclass
class PairBatch:
    batch_size: int
    prompts: list
    negative_prompts: list
    seeds: list
    subseeds: list
    hr_prompts: list | None = None
    hr_negative_prompts: list | None = None

    @property
    def roles(self) -> list[str]:
        """Which image of its pair each output image is, for the infotext (one entry per image)."""
        return list(ROLES) * (len(self.prompts) // 2)


def _doubled(values: list | None) -> list | None:
    return None if values is None else [v for v in values for _ in ROLES]


def pair_batch(document: RegionDocument, batch_size: int, prompts: list, negative_prompts: list, seeds: list,
               subseeds: list, hr_prompts: list | None = None, hr_negative_prompts: list | None = None) -> PairBatch:
    """The WebUI's per-image lists with each image i turned into (source i, target i): the source keeps
    the image's prompt, the target's is the document's rewrite of it (``target_whole_prompt``)."""
    def pairs(values):
        return [x for v in values for x in (v, target_whole_prompt(document, v))]

    return PairBatch(batch_size * 2, pairs(prompts), _doubled(negative_prompts), _doubled(seeds), _doubled(subseeds),
                     pairs(hr_prompts) if hr_prompts is not None else None, _doubled(hr_negative_prompts))


class WebUIPairSession(WebUISession):
    """The pair's session: the same patching and step reading as region prompting, other effects."""

    def __init__(self, document: RegionDocument, encode: Callable[[str], torch.Tensor], tokenize, images_per_batch: int,
                 source_prompt: str, target_prompt: str):
        super().__init__(document, encode, tokenize)
        self.roles = ROLES * images_per_batch
        self.source_prompt, self.target_prompt = source_prompt, target_prompt

    def _prepare(self):
        if self.fusion is None:
            with torch.no_grad():
                self.built = build_pair_effects(self.document, lambda prompt: crossattn(self.encode(prompt)),
                                                self.tokenize, self.roles, prompt=self.source_prompt,
                                                target_prompt=self.target_prompt)
            self.fusion = self.built.plan.source
            self.controller = Controller(self.built.effects, self.state)

    @property
    def documents(self):
        self._prepare()
        return self.built.documents
