"""An edit pair in the WebUI's txt2img: each image of the batch becomes a source and a target.

What differs from the diffusers pair (``diffusers_edit.py``): the WebUI's own sampler runs the pair, so
the pair lives in the WebUI's batch lists (prompts, seeds, hires prompts) rather than in rows the
engine stacks itself.

The WebUI adapter (``webui/generation.py``) calls :func:`pair_batch` in the script's ``process`` (after the
WebUI has made its prompt and seed lists, before the first batch): the batch size doubles and each image i becomes
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
from ..webui.session import WebUISession, crossattn
from .pair_documents import target_whole_prompt
from .pair_effects import build_pair_effects
from .region_guidance import RegionGuidance, guided_pair
from .webui_guidance import guide_combined

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
        self.guidance: RegionGuidance | None = None
        self._alphas = None
        self._seen: tuple | None = None
        self._patched: list = []
        self._areas: dict = {}
        self.pending_source = None  # the pair's source image, until its target is composited

    def keep_area(self, h: int, w: int) -> torch.Tensor | None:
        """Where the target may differ from the source at (h, w), or None when the pair keeps nothing
        (``editing/keep_outside.py``); latent and pixel sizes, cached."""
        from .keep_outside import pair_keep_area

        if (h, w) not in self._areas:
            self._areas[(h, w)] = pair_keep_area(self.document, h, w)
        return self._areas[(h, w)]

    def keep_denoised(self, x: torch.Tensor) -> torch.Tensor:
        """From ``on_cfg_after_cfg``: the denoiser's output rows (source 1, target 1, …) with each
        target's equal to its source's outside the keep area; the sampler then keeps the two latents
        equal there, as they start equal and draw the same noise."""
        from .keep_outside import interleaved_pairs, keep_source

        area = self.keep_area(*x.shape[-2:])
        if area is None or x.shape[0] % 2:
            return x
        return keep_source(x, area, interleaved_pairs(x.shape[0]))

    def composite(self, image, batch_index: int):
        """From ``postprocess_image``: a source is remembered, and its target gets the source's own
        pixels outside the keep area, the fill shifted to meet them (``compositing.seamless_paste``)."""
        from ..compositing import seamless_paste

        area = self.keep_area(image.height, image.width)
        if area is None:
            return image
        if batch_index % 2 == 0:
            self.pending_source = image.copy()
            return image
        source, self.pending_source = self.pending_source, None
        return image if source is None else seamless_paste(source, image, area.numpy())

    def enable_guidance(self, segmenter, decode, alphas_cumprod: torch.Tensor) -> RegionGuidance:
        """Multi-region guidance with ``segmenter`` and ``decode`` (latents -> images in [0, 1])."""
        options = self.document.edit.guidance
        self.guidance = RegionGuidance(guided_pair(self.documents), segmenter, decode,
                                       (options.rs, options.is_, options.ip), options.until)
        self._alphas = alphas_cumprod.detach().float().cpu()
        return self.guidance

    def watch_denoiser(self, denoiser, x: torch.Tensor, sigma: torch.Tensor, images: int, predicts_noise: bool) -> None:
        """From ``on_cfg_denoiser``: remember the sampler's input for this step, and have the denoiser's
        combined result guided (its ``combine_denoised``, patched on the instance until sampling ends)."""
        if self.guidance is None:
            return
        self._seen = (x[:images], sigma[:images], predicts_noise)
        if any(d is denoiser for d in self._patched):
            return
        original = denoiser.combine_denoised

        def combine_denoised(*args, **kwargs):
            combined = original(*args, **kwargs)
            progress = self.state.step / max(1, self.state.total_steps)
            if self._seen is None or progress >= self.guidance.until or combined.shape[0] != self._seen[0].shape[0]:
                return combined
            x_in, sigma_in, noise = self._seen
            return guide_combined(self.guidance, combined, x_in, sigma_in, self._alphas.to(combined.device), noise,
                                  self.state.step)

        denoiser.combine_denoised = combine_denoised
        self._patched.append(denoiser)

    def restore_denoisers(self) -> None:
        for denoiser in self._patched:
            denoiser.__dict__.pop("combine_denoised", None)
        self._patched.clear()

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
