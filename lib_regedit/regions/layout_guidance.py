"""Layout guidance: backward guidance on cross-attention maps (document ``"guidance"``).

Chen et al. 2023, *Training-Free Layout Control with Cross-Attention Guidance*, the attention
guidance that Sun et al. 2024 (seed 003) run on top of their spatial-aware initial latent
(``layout_init``): each box is bound to tokens of its prompt, and in the first steps of sampling the
latent is moved so that those tokens' cross-attention falls inside the box.

- Energy (Chen et al., backward guidance): for each region and each bound token with map ``A``,
  ``(1 - sum_{p in box} A(p) / sum_p A(p))^2``, averaged over the tokens, the layers at the map
  resolution and the regions.
- Update: ``z_t <- z_t - eta * sigma_t^2 * grad E``, with ``sigma_t^2 = (1 - alpha_bar_t) / alpha_bar_t``,
  repeated up to ``iterations`` times per step while ``E > threshold``, in the first ``until`` of
  the steps. Defaults from Chen et al.: eta = 30, 5 iterations, threshold 0.2, 10 of 50 steps.
- Tokens: the region's ``keywords`` when given, else every word of its own prompt but articles,
  conjunctions and prepositions. The maps are those of the region's own prompt (as region fusion
  attends to it inside the box), so the whole prompt need not repeat the phrase.

Each guided step costs up to ``iterations`` forward and backward passes of the conditional rows:
2.51x the time of regions alone on ShapesWorld (``python -m lib_regedit.bench guidance``).
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch

from ..attention.effects.guidance_capture import GuidanceCapture, GuidedRegion, MapsComplete
from ..backward import lean
from ..precision import scaled_grad

MAX_DRIFT = 0.1  # the guided latent's RMS stays within 10% of where guidance found it
MAX_HALVINGS = 4
FUNCTION_WORDS = frozenset("a an the and or of with in on at to for by from its his her their".split())


def bound_tokens(words: list[tuple[int, str]], keywords=()) -> list[int]:
    """Positions bound to a box: the user's keywords' tokens when any are given and found, else the
    word tokens that are not function words. ``words``: (position, token text), specials left out."""
    if keywords:
        wanted = {w.lower() for k in keywords for w in k.split()}
        chosen = [p for p, t in words if t.lower() in wanted]
        if chosen:
            return chosen
    return [p for p, t in words if any(c.isalnum() for c in t) and t.lower() not in FUNCTION_WORDS]


def box_energy(maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Chen et al.'s backward-guidance energy of one box. ``maps`` (..., tokens, N) non-negative
    attention over N positions, ``mask`` (N,) the box in [0, 1]; the mean of ``(1 - inside share)^2``."""
    inside = (maps * mask).sum(-1) / maps.sum(-1).clamp_min(1e-12)
    return ((1 - inside) ** 2).mean()


def capture_energy(capture: GuidanceCapture) -> torch.Tensor | None:
    """The energy of the pass just captured, averaged over the regions; None when nothing was captured."""
    if not capture.regions or capture.resolution() is None:
        return None
    masks = capture.masks()
    terms = [box_energy(maps, mask.to(maps.device)) for maps, mask in zip(capture.region_maps(), masks)]
    return torch.stack(terms).mean()


def guided_step_count(until: float, total_steps: int) -> int:
    """How many of the first sampling steps are guided: ``until`` of them, at least one."""
    return max(1, min(total_steps, round(until * total_steps)))


def sigma_squared(alpha_bar: float) -> float:
    return (1.0 - alpha_bar) / alpha_bar


def rms(z: torch.Tensor) -> float:
    return float(z.detach().float().pow(2).mean().sqrt())


def bounded_step(z: torch.Tensor, delta: torch.Tensor, max_shift: float, reference_rms: float,
                 drift: float = MAX_DRIFT, halvings: int = MAX_HALVINGS,
                 start: torch.Tensor | None = None) -> torch.Tensor | None:
    """``z - delta`` held to the latent's own scale: the result stays within an RMS distance of
    ``max_shift`` times ``reference_rms`` (the RMS of the latent the step started from) of ``start``
    (that latent; ``z`` when not given), so all of a step's iterations together move it at most
    that far; then the update is halved while the result's RMS strays more than ``drift`` from
    ``reference_rms``, the range a sampler expects at this step. ``None`` when no halving brings it
    back, or the update is not finite: the caller stops guiding this step. Chen et al.'s step size
    was set for SD 1.5; on another model or sampler the unbounded step ``eta * sigma_t^2 * grad``
    can be many times the latent itself."""
    if not torch.isfinite(delta).all():
        return None
    start = z if start is None else start
    limit = max_shift * reference_rms
    moved = z - delta - start
    size = rms(moved)
    if size > limit > 0:
        delta = z - start - moved * (limit / size)  # the point on the ball's edge along the same line
    for _ in range(halvings + 1):
        out = z - delta
        if abs(rms(out) / reference_rms - 1.0) <= drift:
            return out
        delta = delta / 2
    return None


def descend(z: torch.Tensor, energy: Callable[[torch.Tensor], torch.Tensor | None], step_size: float,
            iterations: int, threshold: float, max_shift: float | None = None) -> tuple[torch.Tensor, list[float]]:
    """Up to ``iterations`` gradient steps ``z <- z - step_size * dE/dz`` while ``E > threshold``.
    With ``max_shift``, each step is bounded by :func:`bounded_step` against the starting latent's
    RMS, and guidance stops where it cannot be kept in range. Returns the new ``z`` (detached) and
    the energy seen before each step."""
    history: list[float] = []
    z = z.detach()
    start, reference = z, rms(z)
    for _ in range(iterations):
        z = z.requires_grad_(True)
        with torch.enable_grad():
            e = energy(z)
            if e is None:
                break
            history.append(float(e.detach()))
            if history[-1] <= threshold:
                break
            (grad,) = scaled_grad(e, [z])  # through a half-precision UNet at a loss scale (lib_regedit.precision)
        delta = (step_size * grad).detach()
        if max_shift is None:
            if not torch.isfinite(delta).all():  # an overflowed gradient: stop guiding this step
                break
            z = (z - delta).detach()
            continue
        moved = bounded_step(z.detach(), delta, max_shift, reference, start=start) if reference > 0 else None
        if moved is None:
            z = z.detach()
            break
        z = moved.detach()
    return z.detach(), history


def run_pass(forward: Callable, *args) -> None:
    """One guidance pass of the UNet, which the capture ends once it has its maps (``MapsComplete``)."""
    try:
        forward(*args)
    except MapsComplete:
        pass


class LayoutGuidance:
    """Guidance for one generation. ``forward(z, t)`` runs the UNet on the conditional rows at the
    model input ``z`` (the VP latent z_t) with the controller attached, so ``capture`` sees the maps."""

    def __init__(self, capture: GuidanceCapture, options, total_steps: int, alphas_cumprod: torch.Tensor):
        self.capture = capture
        self.options = options
        self.steps = guided_step_count(options.until, total_steps)
        self.alphas_cumprod = alphas_cumprod.detach().double().cpu()
        self.history: list[list[float]] = []
        self.model: torch.nn.Module | None = None  # the UNet, made lean while it is differentiated

    def lean(self):
        """The UNet for a gradient to the latent only (``lib_regedit/backward.lean``; ``docs/memory.md``)."""
        return lean(self.model) if self.model is not None else contextlib.nullcontext()

    def wants(self, step: int) -> bool:
        return step < self.steps and bool(self.capture.regions)

    def apply(self, z: torch.Tensor, t, forward: Callable[[torch.Tensor, object], object]) -> torch.Tensor:
        """The guided ``z`` for timestep ``t`` (an index into the training schedule)."""
        alpha_bar = float(self.alphas_cumprod[int(t)])

        def energy(zz):
            self.capture.start()
            try:
                run_pass(forward, zz, t)
                return capture_energy(self.capture)
            finally:
                self.capture.active = False

        try:
            with self.lean():
                out, history = descend(z, energy, self.options.scale * sigma_squared(alpha_bar),
                                       self.options.iterations, self.options.threshold, self.options.max_shift)
        finally:
            self.capture.stop()
        self.history.append(history)
        return out.to(z.dtype)

    def summary(self) -> str:
        """``E 0.61 -> 0.18 over 4 steps`` for the infotext and logs."""
        seen = [h for h in self.history if h]
        if not seen:
            return "-"
        return f"E {seen[0][0]:.2f} -> {seen[-1][-1]:.2f} over {len(seen)} steps"


def document_guidance(document, contexts, tokenize: Callable[[str], list], total_steps: int,
                      alphas_cumprod: torch.Tensor) -> LayoutGuidance:
    """The document's layout guidance: each object region bound to its prompt's tokens
    (:func:`bound_tokens`; extra-network tags such as ``<lora:...>`` are not words). ``contexts`` are the
    regions' prompts as region fusion encoded them: the same tensors, so each layer projects them once
    for both (``GenerationState.projected``). ``tokenize(prompt)`` gives (position, token text)."""
    from ..prompt_syntax import without_extra_networks

    regions = [GuidedRegion((r.x, r.y, r.w, r.h), context,
                            bound_tokens(tokenize(without_extra_networks(r.prompt)[0]), r.keywords), r.shape)
               for r, context in zip(document.object_regions, contexts)]
    options = document.guidance
    capture = GuidanceCapture(regions, downscale=options.downscale, levels=options.levels)
    return LayoutGuidance(capture, options, total_steps, alphas_cumprod)
