"""One WebUI generation's RegEdit session, kept free of the WebUI's ``modules`` so it can be tested.

The adapter (``webui/generation.py``) creates a session in ``process`` and wraps ``p.sample`` with
:meth:`attached`, so the model carries the effects only while the sampler runs (hires-fix second pass
included) and is always restored: the checkpoint (``backends/checkpoint.py``) patches AUTOMATIC1111's
UNet in place, or gives each of WebUI Forge's sampling calls a patched clone of its UNet patcher.
The sampler's ``on_cfg_denoiser`` parameters reach :meth:`on_cfg_denoiser`.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..attention.controller import Controller, GenerationState
from ..documents import RegionDocument
from ..regions.prompting import build_effects


def crossattn(cond):
    """The cross-attention tensor of a WebUI conditioning (SDXL's is a dict)."""
    if isinstance(cond, dict):
        return cond.get("crossattn")
    return cond


def read_cfg_denoiser(state: GenerationState, sampling_step: int, total_steps: int, text_cond, text_uncond) -> None:
    """The step, the run's length and the cond/uncond references from the WebUI's ``on_cfg_denoiser``."""
    state.step = int(sampling_step)
    state.total_steps = max(1, int(total_steps))
    state.cond_reference = crossattn(text_cond)
    state.uncond_reference = crossattn(text_uncond)


class WebUISession:
    def __init__(self, document: RegionDocument, encode: Callable[[str], torch.Tensor],
                 tokenize: Callable[[str], list[tuple[int, str]]] | None = None, loras=None):
        self.document = document
        self.loras = loras  # LoRA per region (region_loras.LoraSupport), or None
        self.encode = encode
        self.tokenize = tokenize
        self.built = None
        self.fusion = None
        self.state = GenerationState(cond_first=True)
        self.controller: Controller | None = None
        self._layout = None  # layout guidance, once asked for (``layout_guidance``)

    def _prepare(self):
        if self.fusion is None:
            with torch.no_grad():
                self.built = build_effects(self.document, lambda prompt: crossattn(self.encode(prompt)), self.tokenize,
                                           loras=self.loras)
            self.fusion = self.built.fusion
            self.built.install(self.state)
            self.controller = Controller(self.built.effects, self.state)

    def layout_guidance(self, total_steps: int, alphas_cumprod: torch.Tensor):
        """The document's layout guidance for this generation (``webui_layout_guidance``): each object
        region bound to its prompt's tokens, its capture added to the controller; None when no region has
        a bound token."""
        from ..regions.layout_guidance import document_guidance
        from .layout_guidance import DenoiserGuidance

        self._prepare()
        if self._layout is None:
            layout = document_guidance(self.document, [r.context for r in self.fusion.regions],
                                       self.tokenize or (lambda prompt: []), total_steps, alphas_cumprod)
            if not layout.capture.regions:
                return None
            self.controller.effects.append(layout.capture)
            self._layout = layout
        return DenoiserGuidance(self._layout, alphas_cumprod)  # each batch of the generation: a fresh record

    def keyword_preview(self, image):
        """Keyword attention maps over ``image`` (one tile per region), or None without keyword selection."""
        if self.built is None or self.built.selection is None:
            return None
        from ..preview import draw_keyword_maps

        selection = self.built.selection
        return draw_keyword_maps(image, self.document, selection.keyword_maps(),
                                 [r.selected_words() for r in selection.regions])

    def keywords_text(self) -> str | None:
        """The keywords selected per region, for the infotext (None when keyword selection is off)."""
        if self.built is None or self.built.selection is None:
            return None
        return self.built.selection.summary()

    def on_cfg_denoiser(self, sampling_step: int, total_steps: int, text_cond, text_uncond) -> None:
        read_cfg_denoiser(self.state, sampling_step, total_steps, text_cond, text_uncond)

    def effects(self):
        """What this session gives the model: the controller, and latent mode's fusion (None in attention
        mode), as ``Checkpoint.attach`` takes them."""
        self._prepare()
        return self.controller, self.fusion if self.document.mode == "latent" else None

    def attached(self, checkpoint):
        """The session's effects on ``checkpoint`` (the model interface) for the ``with`` block."""
        return checkpoint.attach(*self.effects())
