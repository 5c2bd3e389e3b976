"""One interface for the three inversions of a real image (MRGD §3.3, Alg. 1 lines 2-9).

``invert`` takes a backend's UNet (``forward(z, t, context, kind)``, ``kind`` "cond" or "uncond" so
that SDXL's pooled text follows, the attention hooks attached, the source's region fusion among the
effects) and the image's clean latent, and returns what the edit needs to reconstruct it:

- ``"negative"`` (the default): DDIM inversion with the source's region prompts, then the edit's
  unconditional rows take the source's prompts as their negative (Miyake et al. 2023,
  *Negative-prompt Inversion*): forward passes only, one per step;
- ``"ddim"``: the same inversion, reconstructed with the ordinary negative prompt (the baseline; at a
  CFG scale above 1 the reconstruction drifts, which is what the other two fix);
- ``"nulltext"``: DDIM inversion, then a null set per step optimised so that guided sampling retraces
  it (``null_text``): the high-fidelity option, about ``2 + 3 · iterations`` UNet passes per step.

The inversion's UNet calls use the same step indices as the edit's, so region fusion's schedule
(``whole_start``) is the one the edit will see.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from ..attention.call import RowLayout
from ..errors import RegEditError
from ..precision import scaled_backward
from . import ddim
from .null_sets import NullSet, apply_to_source
from .null_text import NullTextOptions, learning_rate, stop_below

METHODS = ("negative", "ddim", "nulltext")
DEFAULT_METHOD = "negative"
# one fixed-point refinement per inversion move (``ddim.trajectory``): measured on the bundled
# ShapesWorld model, negative-prompt inversion's reconstruction went from 22.1 dB to 31.1 dB (the
# VAE's own round trip is 31.2 dB) for one more UNet pass per step; three refinements gave 31.2 dB
DEFAULT_FIXED_POINT = 1

Forward = Callable[[torch.Tensor, int, torch.Tensor, str], torch.Tensor]  # (z, t, context, "cond"|"uncond")
Progress = Callable[[int, int, str], None]


class InversionCancelled(RegEditError):
    """Cancelled by the user: during the inversion nothing is cached; during the edit that follows,
    the finished inversion is (``after_inversion``)."""

    def __init__(self, after_inversion: bool = False):
        problem = "the edit was cancelled after its inversion, which is kept for the next try" if after_inversion \
            else "the inversion was cancelled, and nothing was cached"
        super().__init__("inversion", problem, "start the edit again when you want it")


@dataclass
class Inversion:
    """``latent`` is z_T (the top of the DDIM trajectory); ``null_sets[k]`` the null set of denoising
    step ``k`` (null-text only). ``losses`` are null-text's last loss per step."""

    method: str
    steps: int
    guidance_scale: float
    latent: torch.Tensor
    null_sets: list[NullSet] | None = None
    seconds: float = 0.0
    unet_rows: int = 0  # UNet rows run (a batch of 2 counts 2), for the cost report
    losses: list[float] = field(default_factory=list)
    key: str = ""

    @property
    def nbytes(self) -> int:
        sets = sum(s.nbytes for s in self.null_sets) if self.null_sets else 0
        return self.latent.numel() * self.latent.element_size() + sets

    def summary(self, cached: bool = False) -> str:
        """One line for the user; ``cached``: this run read it from the cache, so it took no time here
        (``seconds`` is the run that made it)."""
        text = f"{self.method} inversion, {self.steps} steps, " + ("read from the cache" if cached else
                                                                   f"{self.seconds:.1f} s")
        if self.losses:
            text += f", null-text loss {self.losses[-1]:.2e} at the last step"
        return text


def check_method(method: str) -> str:
    if method not in METHODS:
        raise RegEditError("inversion", f"{method!r} is not an inversion",
                           "use negative (fast, the default), nulltext (slow, closest) or ddim (the baseline)")
    return method


def check_fixed_point(fixed_point) -> int:
    if isinstance(fixed_point, bool) or not isinstance(fixed_point, int) or not 0 <= fixed_point <= 10:
        raise RegEditError("fixed_point", f"{fixed_point!r} is not a whole number from 0 to 10",
                           "use 1 (the default), more for a closer inversion, or 0 for plain DDIM inversion")
    return fixed_point


def invert(forward: Forward, z0: torch.Tensor, alphas_cumprod: torch.Tensor, *, method: str, steps: int,
           guidance_scale: float, state, fusion, cond: torch.Tensor, uncond: torch.Tensor,
           options: NullTextOptions | None = None, fixed_point: int = DEFAULT_FIXED_POINT,
           progress: Progress | None = None, cancel: Callable[[], bool] | None = None) -> Inversion:
    """Invert the clean latent ``z0`` (1, C, h, w). ``state`` is the controller's GenerationState and
    ``fusion`` the source's RegionFusion among its effects; ``cond`` the source's whole-prompt context
    and ``uncond`` the negative prompt's. Raises :class:`InversionCancelled` when ``cancel()`` turns
    true (checked between UNet passes). ``fixed_point``: refinements of each inversion move
    (``ddim.trajectory``)."""
    check_method(method)
    check_fixed_point(fixed_point)
    options = options or NullTextOptions()
    started = time.perf_counter()
    rows = [0]
    step_of = {t: steps - 1 - i for i, t in enumerate(ddim.levels(alphas_cumprod, steps)[0])}

    def call(z, t, context, k, kind):
        if cancel is not None and cancel():
            raise InversionCancelled()
        state.step = k
        state.fixed_rows = RowLayout((0,), ()) if kind == "cond" else RowLayout((), (0,))
        rows[0] += z.shape[0]
        return forward(z, t, context, kind).float()  # the path is accumulated in float32 whatever the model's dtype

    done = {"inverting": 0, "null-text": 0}  # each phase counts its own steps, of ``steps``

    def tick(phase):
        done[phase] += 1
        if progress is not None:
            progress(done[phase], steps, phase)

    try:
        path = ddim.trajectory(lambda z, t: call(z, t, cond, step_of[t], "cond"), z0, alphas_cumprod, steps,
                               on_step=lambda j: tick("inverting"), fixed_point=fixed_point)
        null_sets, losses = None, []
        if method == "nulltext":
            null_sets, losses = _optimise(call, path, alphas_cumprod, steps, guidance_scale, fusion, cond, uncond,
                                          options, lambda: tick("null-text"), state)
    finally:
        state.fixed_rows = None
    return Inversion(method, steps, float(guidance_scale), path[-1].detach(), null_sets,
                     time.perf_counter() - started, rows[0], losses)


def _optimise(call, path, alphas_cumprod, steps, w, fusion, cond, uncond, options, tick, state):
    """Null-text's optimisation in float32 whatever the model's dtype: the embeddings and Adam's moments are
    float32 (``NullSet.trainable``; the model's call casts them), the loss is taken on float32 latents, and
    the gradient through a half-precision UNet at a loss scale (``lib_regedit.precision``); an update whose
    gradient overflowed is skipped."""
    null = NullSet.trainable(fusion, uncond)
    z = path[-1]
    sets, losses = [], []
    for k, (t, a, a_prev) in enumerate(ddim.denoise_schedule(alphas_cumprod, steps)):
        target = path[steps - 1 - k]
        with torch.no_grad():
            eps_c = call(z, t, cond, k, "cond")
        optimiser = torch.optim.Adam(null.parameters(), lr=learning_rate(options, k, steps))
        threshold = stop_below(options, k, steps)
        loss_value = float("nan")
        for _ in range(options.iterations):
            apply_to_source(fusion, null)
            with torch.enable_grad():
                eps_u = call(z, t, null.total, k, "uncond")
                loss = F.mse_loss(ddim.move(z, eps_u + w * (eps_c - eps_u), a, a_prev), target)
                optimiser.zero_grad()
                finite = scaled_backward(loss, null.parameters())
            if finite:
                optimiser.step()
            loss_value = float(loss.detach())
            if loss_value < threshold:
                break
        fixed = null.detached()
        with torch.no_grad():
            apply_to_source(fusion, fixed)
            eps_u = call(z, t, fixed.total, k, "uncond")
            z = ddim.move(z, eps_u + w * (eps_c - eps_u), a, a_prev)
        state.forget((fixed.background, *fixed.regions))  # a step's set is not projected again here
        sets.append(fixed)
        losses.append(loss_value)
        null = fixed.continued()
        tick()
    return sets, losses
