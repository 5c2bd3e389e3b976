"""The backend-neutral half of a real-image edit (MRGD Alg. 1 with inversion): invert the picture's
latent with the source's region fusion attached, then denoise the source (the reconstruction) and the
target together from the inverted latent with the inversion's unconditional contexts per step.

A backend gives ``forward(z, t, context, kinds)``, its UNet with the attention hooks attached, where
``kinds`` names each row's prompt ("cond_s", "cond_t" or "uncond") so SDXL's pooled text can follow,
and ``attach(controller)``, a context manager that hooks the controller into the UNet. The
denoising is the deterministic DDIM step the inversion reversed (``inversion.ddim``), in every
backend, so the reconstruction retraces the inversion whatever sampler the user picked.

An inverted latent holds the picture's objects where they were, so two things change in the edited
boxes (measured on the 8 rendered eval layouts with negative-prompt inversion, docs/picture-editing.md:
edits right 0.667 -> 0.815, SSIM-i 0.773 -> 0.771):

- inside added and removed boxes the target starts from seeded Gaussian noise, not the inverted
  latent (as layout init's ``pair_start.edited_start``): additions 1 of 3 -> 2 of 3;
- inside removed boxes the target's unconditional prediction is the plain negative prompt's, not the
  inversion's (the source's prompts, or null-text's contexts fitted to the picture, both of which
  hold the object): removals 1 of 8 -> 4 of 8, for one more UNet row per step. Applied to changed
  boxes as well it cost their kept objects (0.75 -> 0.5) for no gain, so it is not.

And outside the edited boxes (grown by ``KEEP_MARGIN``, soft-edged) the target's latent is the
reconstruction's after every step (``edit.keep_outside``, on by default; prompt-to-prompt's local
blending, Hertz et al. 2022, and Avrahami et al. 2023's *Blended Latent Diffusion*): MRGD's attention
control alone let the kept objects drift on pictures (negative-prompt inversion: SSIM-i 0.771 ->
0.855, kept 0.778 -> 0.963, edits right unchanged at 0.815).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch

from ..attention.call import RowLayout
from ..backends.checkpoint import forward_of
from ..backward import lean
from ..attention.controller import Controller, GenerationState
from ..inversion import ddim
from ..inversion.invert import DEFAULT_FIXED_POINT, Inversion, InversionCancelled, invert
from ..inversion.null_sets import NullSchedule, NullSet
from ..documents import RegionDocument
from ..documents.region import UNCHANGED_RESTORED_FROM
from ..inversion.null_text import NullTextOptions
from .pair_effects import PairEffects, build_pair_effects
from .pair_start import edit_start_mask

KEEP_MARGIN = 0.05
KEEP_FEATHER = 0.05
Forward = Callable[[torch.Tensor, int, torch.Tensor, tuple], torch.Tensor]
Attach = Callable[[Controller], contextlib.AbstractContextManager]


@dataclass
class RealEdit:
    """One edit's inputs: the pair's effects and its three text contexts (1, T, C)."""

    built: PairEffects
    cond_s: torch.Tensor
    cond_t: torch.Tensor
    uncond: torch.Tensor
    method: str
    steps: int
    guidance_scale: float
    nulltext: NullTextOptions
    fixed_point: int
    document: RegionDocument | None = None  # the edit document: its added and removed boxes
    plain_negative_in_removals: bool = True
    seed: int = 0  # the noise that starts added and removed boxes

    def edit_area(self, h: int, w: int) -> torch.Tensor | None:
        """(h, w) where the target may differ from the reconstruction, or None (``edit_area``)."""
        if self.document is None or not self.document.keeps_outside(picture=True):
            return None
        return edit_area(self.document, h, w)

    def removal_mask(self, h: int, w: int) -> torch.Tensor | None:
        """(h, w) where the target's unconditional prediction is the plain negative prompt's, or None."""
        if self.method == "ddim" or not self.plain_negative_in_removals or self.document is None:
            return None  # DDIM inversion's unconditional rows are the plain negative prompt's already
        mask = edit_start_mask(self.document, h, w, roles=("remove",))
        return mask if bool(mask.any()) else None


def cached_inversion(edit: RealEdit, picture, model_id: str, negative_prompt: str, cache,
                     run: Callable[[], Inversion]) -> tuple[Inversion, bool]:
    """The picture's inversion from ``cache`` when it holds one for this model, source document and
    settings, else ``run()``'s, stored there once finished. Returns it and whether it was cached."""
    from ..inversion import inversion_key

    settings = {"fixed_point": edit.fixed_point}
    if edit.method == "nulltext":
        settings.update(iterations=edit.nulltext.iterations, lr=edit.nulltext.learning_rate)
    key = inversion_key(picture, model_id, edit.built.documents.source.to_json(), negative_prompt, edit.method,
                        edit.steps, edit.guidance_scale, settings)
    inversion = cache.get(key) if cache is not None else None
    if inversion is not None:
        return inversion, True
    inversion = run()
    if cache is not None:
        cache.put(key, inversion)
    return inversion, False


def edit_latents(checkpoint, document: RegionDocument, z0: torch.Tensor, picture, model_id: str, *,
                 negative_prompt: str, steps: int, guidance_scale: float, seed: int = 0,
                 source_prompt: str | None = None, target_prompt: str | None = None, progress=None, cancel=None,
                 cache=None, nulltext: NullTextOptions | None = None, fixed_point: int = DEFAULT_FIXED_POINT,
                 guidance: Callable[[PairEffects], Callable | None] | None = None):
    """A picture's region edit on ``checkpoint`` (the model interface, ``backends/checkpoint.py``): every
    host runs this. ``z0``: the picture's clean latent (1, C, h, w); ``model_id`` names the weights in the
    inversion ``cache``; ``source_prompt``/``target_prompt``: the host's own prompts for the pair (default:
    the document's); ``guidance(built)``: multi-region guidance's hook for :func:`denoise_pair`, or None.
    Returns (2, C, h, w) latents (the reconstruction, the edit), the inversion, whether it was cached,
    and the pair's effects."""
    nulltext = nulltext or NullTextOptions()
    prompts = {} if source_prompt is None else {"prompt": source_prompt, "target_prompt": target_prompt}
    with torch.no_grad():
        built = build_pair_effects(document, lambda p: checkpoint.conditioning(p).context, checkpoint.tokenize,
                                   ("source", "target"), **prompts)
        full = {"cond_s": checkpoint.conditioning(built.source_prompt if source_prompt is None else source_prompt),
                "cond_t": checkpoint.conditioning(built.target_prompt if target_prompt is None else target_prompt),
                "uncond": checkpoint.conditioning(negative_prompt, negative=True)}
    vectors = {k: v.vector for k, v in full.items()} if full["cond_s"].vector is not None else None
    edit = RealEdit(built, full["cond_s"].context, full["cond_t"].context, full["uncond"].context,
                    document.edit.inversion, steps, guidance_scale, nulltext, fixed_point, document, seed=seed)
    forward = forward_of(checkpoint, vectors)

    def run():
        with lean(checkpoint.unet):  # weights frozen, residual blocks recomputed: lib_regedit/backward
            return invert_source(forward, checkpoint.attach, z0.float().to(edit.cond_s.device), checkpoint.alphas,
                                 edit, progress, cancel)

    inversion, cached = cached_inversion(edit, picture, model_id, negative_prompt, cache, run)
    extra = guidance(built) if guidance is not None else None
    with torch.no_grad() if extra is None else contextlib.nullcontext():  # guidance differentiates the latent
        z = denoise_pair(forward, checkpoint.attach, inversion, checkpoint.alphas, edit, progress, cancel, extra)
    return z, inversion, cached, built


def invert_source(forward: Forward, attach: Attach, z0: torch.Tensor, alphas_cumprod: torch.Tensor, edit: RealEdit,
                  progress=None, cancel=None) -> Inversion:
    """The inversion with the source's region fusion attached. The fusion's negative contexts are
    given back as they were (null-text writes its sets into them)."""
    fusion = edit.built.plan.source
    saved = ([r.negative_context for r in fusion.regions], fusion.background_negative, fusion.fuse_uncond)
    state = GenerationState(total_steps=edit.steps)
    kind = {"cond": ("cond_s",), "uncond": ("uncond",)}
    try:
        with attach(Controller([fusion], state)):
            return invert(lambda z, t, c, k: forward(z, t, c, kind[k]), z0, alphas_cumprod, method=edit.method,
                          steps=edit.steps, guidance_scale=edit.guidance_scale, state=state, fusion=fusion,
                          cond=edit.cond_s, uncond=edit.uncond, options=edit.nulltext, fixed_point=edit.fixed_point,
                          progress=progress, cancel=cancel)
    finally:
        for region, negative in zip(fusion.regions, saved[0]):
            region.negative_context = negative
        fusion.background_negative, fusion.fuse_uncond = saved[1], saved[2]


def denoise_pair(forward: Forward, attach: Attach, inversion: Inversion, alphas_cumprod: torch.Tensor,
                 edit: RealEdit, progress=None, cancel=None, extra: Callable | None = None) -> torch.Tensor:
    """(2, C, h, w): the source (the reconstruction) and the target. ``extra(stack, state)`` may enter
    more context managers (multi-region guidance) once the controller is attached."""
    plan = edit.built.plan
    if edit.method == "nulltext":
        sets = inversion.null_sets
    elif edit.method == "negative":  # the source's prompts are the negative (Miyake et al. 2023)
        sets = [NullSet.of_source(plan.source, edit.cond_s)]
    else:
        sets = None
    state = GenerationState(total_steps=edit.steps, cond_reference=torch.cat([edit.cond_s, edit.cond_t]),
                            cond_first=False)
    effects = ([NullSchedule(sets, plan)] if sets else []) + list(edit.built.effects)
    uncond_kind = "cond_s" if edit.method == "negative" else "uncond"
    kinds = (uncond_kind, uncond_kind, "cond_s", "cond_t")
    w = edit.guidance_scale
    mask = edit.removal_mask(*inversion.latent.shape[-2:])
    keep = edit.edit_area(*inversion.latent.shape[-2:])
    keep = None if keep is None else keep.to(inversion.latent.device, inversion.latent.dtype)
    schedule = effects[0] if sets else None
    with contextlib.ExitStack() as stack:
        stack.enter_context(attach(Controller(effects, state)))
        if schedule is not None:
            stack.callback(schedule.restore)
        guided = extra(stack, state) if extra is not None else False
        z = torch.cat([inversion.latent, _target_start(inversion.latent, edit)])
        for k, (t, a, a_prev) in enumerate(ddim.denoise_schedule(alphas_cumprod, edit.steps)):
            if cancel is not None and cancel():
                raise InversionCancelled(after_inversion=True)
            state.step = k
            null = sets[min(k, len(sets) - 1)].total if edit.method == "nulltext" else \
                edit.cond_s if edit.method == "negative" else edit.uncond
            null = null.to(edit.cond_s.device, edit.cond_s.dtype)
            state.uncond_reference = torch.cat([null, null])
            state.fixed_rows = RowLayout((2, 3), (0, 1))
            context = torch.cat([null, null, edit.cond_s, edit.cond_t])
            with torch.no_grad() if not guided else contextlib.nullcontext():
                eps = forward(torch.cat([z, z]), t, context, kinds).float()
            eps_u, eps_c = eps.detach().chunk(2)
            if mask is not None:
                plain = _plain_uncond(forward, schedule, state, z[1:2], t, edit).to(eps_u.dtype)
                m = mask.to(eps_u.device, eps_u.dtype)
                eps_u = torch.cat([eps_u[:1], m * plain + (1 - m) * eps_u[1:2]])
            z = ddim.move(z, eps_u + w * (eps_c - eps_u), a, a_prev)
            if keep is not None:
                z = torch.cat([z[:1], keep * z[1:2] + (1 - keep) * z[:1]])
            if progress is not None:
                progress(k + 1, edit.steps, "editing")
    return z


def _plain_uncond(forward, schedule, state, z_target, t, edit: RealEdit) -> torch.Tensor:
    """The target's unconditional prediction with the plain negative prompt: one row, the fusions'
    own negative contexts (the null schedule stands aside for this call)."""
    if schedule is not None:
        schedule.standing_aside = True
    try:
        state.uncond_reference = edit.uncond
        state.fixed_rows = RowLayout((), (0,))
        with torch.no_grad():
            return forward(z_target, t, edit.uncond.to(edit.cond_s.dtype), ("uncond",)).float()
    finally:
        if schedule is not None:
            schedule.standing_aside = False


def _target_start(latent: torch.Tensor, edit: RealEdit) -> torch.Tensor:
    """The target's start: the inverted latent, except inside added and removed boxes, where it is
    Gaussian noise (seeded): an inverted latent holds the picture's objects where they were, so a
    removed object would come back and an added one find its box taken (as with layout init,
    ``pair_start.edited_start``)."""
    if edit.document is None:
        return latent
    mask = edit_start_mask(edit.document, *latent.shape[-2:], roles=("add", "remove"))
    if not bool(mask.any()):
        return latent
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(edit.seed)).to(latent.device,
                                                                                             latent.dtype)
    m = mask.to(latent.device, latent.dtype)
    return latent * (1 - m) + noise * m


def edit_area(document: RegionDocument, h: int, w: int) -> torch.Tensor | None:
    """(h, w) in [0, 1]: the edited boxes grown by ``KEEP_MARGIN`` of the image, with a soft edge
    ``KEEP_FEATHER`` wide, at any resolution (the latent's, or the picture's for the paste-back);
    None when a background edit makes the whole image the edit's (``keep_outside.edit_area``, its
    margin growing over kept boxes as it always has for pictures)."""
    from .keep_outside import edit_area as area_of

    return area_of(document, h, w, KEEP_MARGIN, KEEP_FEATHER, stop_at_kept=False)


def paste_outside(picture, edited, document: RegionDocument):
    """The edit with the picture itself outside its edit area (``edit.paste_outside``): pixels the edit
    does not touch stay the picture's exactly, as the WebUI's inpainting composites its result.
    Returns ``edited`` unchanged when the option is off or the whole image is edited.

    From region document version 4 the paste is seamless (:func:`harmonises`): the model painted the
    edited boxes' background a few levels off the picture's (a pale lavender rectangle on white), and
    a feather alone leaves that patch with a soft edge; documents of earlier versions keep the plain
    feathered paste. From version 5 the pixels the edit changed by only a few levels inside its area (a
    glow of the new colour in the background) are the picture's again (``compositing.restore_unchanged``)."""
    from ..compositing import paste_back, restore_unchanged, seamless_paste

    if not (document.keeps_outside(picture=True) and document.edit.paste_outside):
        return edited
    area = edit_area(document, edited.height, edited.width)
    if area is None:
        return edited
    pasted = (seamless_paste if harmonises(document) else paste_back)(picture, edited, area.numpy())
    if document.version >= UNCHANGED_RESTORED_FROM:
        pasted = restore_unchanged(picture, pasted, area.numpy())
    return pasted


def harmonises(document: RegionDocument) -> bool:
    """Whether a picture's edit is pasted back seamlessly (Poisson image editing, Pérez et al. 2003;
    ``lib_regedit/compositing.py``): the edit's colours matched to the picture's along the edit area's
    boundary, so what it painted keeps its shapes and loses its tone offset. On from region document
    version 4 (``eval --inversion``'s seam column, docs/picture-editing.md)."""
    return document.version >= 4
