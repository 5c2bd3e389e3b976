"""LIME in the WebUI's img2img (the engine side: no ``modules`` import; ``webui/image_tasks.py`` wires it).

The WebUI's own sampler runs twice: a first pass that stops at the feature step (the capture effect
raises :class:`FeatureStepReached` from the UNet's pre-hook), then the edit with the regularisation.
The sampler's noise draws (``p.rng.next``, the starting noise and an ancestral sampler's per-step
noise) are recorded in the first pass and replayed in the second, so the edit is the generation the
seed gives, and the first pass costs only its steps.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch

from ..attention.controller import Controller, GenerationState
from ..attention.effects.lime_regularisation import LimeRegularisation
from ..attention.effects.roi_capture import FeatureStepReached, RoiCapture
from ..documents.lime import LimeDocument
from ..errors import RegEditError
from ..masks import mask_at
from ..webui.session import read_cfg_denoiser
from . import given_roi
from .diffusers_lime import lime_positions
from .preview import paste_outside_roi
from .locate import locate_roi
from .roi import Roi


class NoiseReplay:
    """Records what ``rng.next()`` returns, then replays it in order (fresh draws after the record)."""

    def __init__(self, rng):
        self.rng = rng
        self.own = "next" in vars(rng)  # someone else's wrapper stays in place
        self.draw = rng.next
        self.recorded: list = []

    def record(self) -> None:
        def next_recorded():
            noise = self.draw()
            self.recorded.append(noise)
            return noise
        self.rng.next = next_recorded

    def replay(self) -> None:
        queue = list(self.recorded)
        self.rng.next = lambda: queue.pop(0) if queue else self.draw()

    def restore(self) -> None:
        if self.own:
            self.rng.next = self.draw
        elif "next" in vars(self.rng):
            del self.rng.next


BOX_GRID = 8  # drawn boxes' cover of each latent cell is measured on a grid this many times finer
# (any VAE factor: ShapesWorld's is 4; the paste measures them again at the image's own size)


class LimeSession:
    """One LIME generation: the settings, the edit tokens, the RoI (given or found), the row layout."""

    def __init__(self, document: LimeDocument, tokens: list[tuple[int, str]], latent_hw: tuple[int, int],
                 mask: torch.Tensor | None = None, image=None):
        self.document = document
        self.image = image  # the source at the generation's size: the found RoI snaps to its superpixels
        self.pixel_roi: torch.Tensor | None = None  # the snapped RoI at the image's size
        self.options = document.options.checked()
        self.positions, self.objects = lime_positions(tokens, "prompt")
        self.latent_hw = latent_hw
        self.state = GenerationState(cond_first=True)
        self.found: Roi | None = None
        self.roi = None
        self.source = "found"
        if mask is not None:
            self.roi, self.source = mask_at(mask.bool(), latent_hw), "inpaint mask"
        elif document.roi:
            self.roi, _ = given_roi.from_boxes(document.roi, latent_hw,
                                               (latent_hw[0] * BOX_GRID, latent_hw[1] * BOX_GRID))
            self.source = "boxes"
        if self.roi is not None and not self.roi.any():
            raise RegEditError("lime.roi", f"the {self.source} cover nothing at the latent's resolution",
                               "draw a larger region, or leave it out to let LIME find one")

    def paste_outside(self, source, edited):
        """The edit with the source's own pixels outside the RoI (the last step of ``keep_outside``): the
        drawn boxes themselves, or the RoI LIME found. With an inpaint mask the WebUI's own overlay does
        it, and without ``keep_outside`` (or before a RoI exists) ``edited`` comes back as it is."""
        if not self.options.keep_outside or self.source == "inpaint mask" or self.roi is None:
            return edited
        if self.source == "boxes":
            _, region = given_roi.from_boxes(self.document.roi, self.latent_hw, (edited.height, edited.width))
        elif self.pixel_roi is not None and tuple(self.pixel_roi.shape) == (edited.height, edited.width):
            region = self.pixel_roi
        else:
            region = self.roi
        return paste_outside_roi(source, edited, region, edited.width // self.latent_hw[1])

    def on_cfg_denoiser(self, sampling_step: int, total_steps: int, text_cond, text_uncond) -> None:
        read_cfg_denoiser(self.state, sampling_step, total_steps, text_cond, text_uncond)

    def _attached(self, attach, effects):
        return attach(Controller(effects, self.state))

    def run(self, attach: Callable[[Controller], contextlib.AbstractContextManager],
            sample: Callable[[], torch.Tensor], rng=None,
            keep_outside: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
        """Both passes through ``sample`` (the WebUI's img2img sampling, called twice). With the
        ``keep_outside`` option, ``keep_outside(roi)`` is called before the edit (the WebUI's inpainting
        blend then keeps the source outside the RoI); an inpaint mask does that already. ``attach(controller)``
        gives each pass's effects to the model (a checkpoint's ``attach``, ``lib_regedit/backends/checkpoint.py``)."""
        replay = NoiseReplay(rng) if rng is not None and self.roi is None else None
        try:
            if self.roi is None:
                capture = RoiCapture(self.options.feature_step, self.objects, self.options.feature_downscales,
                                     **self.options.capture_maps())
                if replay is not None:
                    replay.record()
                try:
                    with self._attached(attach, [capture]):
                        sample()  # a run shorter than the feature step ends here, with its last step's features
                except FeatureStepReached:
                    pass
                attention = capture.attention()
                if attention is None:
                    raise RegEditError("prompt", "its edit tokens were not attended where LIME reads the maps",
                                       "check that the checkpoint has cross-attention where lime.maps reads it (the up "
                                       "blocks for \"first\"), or draw the region: boxes or an inpaint mask")
                located = locate_roi(capture.features, attention, self.options, self.latent_hw, self.image)
                self.found, self.roi, self.pixel_roi = located.found, located.roi, located.pixel_roi
                if replay is not None:
                    replay.replay()
            self.state.step = 0
            if keep_outside is not None and self.options.keep_outside and self.source != "inpaint mask":
                keep_outside(self.roi)
            regularisation = LimeRegularisation(self.roi, self.positions, self.options.regularise_until,
                                                self.options.regularise_downscales)
            with self._attached(attach, [regularisation]):
                return sample()
        finally:
            if replay is not None:
                replay.restore()
