"""img2img's tasks on the init image: RegionDrag, LIME and a picture's region edit.

Each checks its document and the checkpoint before any work, then replaces (drag, picture edit) or
wraps (LIME) ``p.sample``; the model is reached through ``checkpoints.current(p)``. Runs inside the
WebUI only.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from ..documents import parse_drag_document
from ..documents.drag import EXAMPLE as DRAG_EXAMPLE, require_pairs
from ..documents.fields import load_json_object
from ..documents.lime import parse_lime_document
from ..drag import batch as drag_batch
from ..drag.grow import grown_handles
from ..drag.region_drag import options_for
from ..editing.real_edit import edit_latents
from ..inversion import InversionCache
from ..editing.webui_pair import pair_batch
from ..errors import RegEditError
from ..infotext import DRAG_INFOTEXT_KEY, INFOTEXT_KEY, INVERSION_KEY, LIME_INFOTEXT_KEY, PAIR_IMAGE_KEY
from ..lime.diffusers_lime import check_instruction
from ..lime.roi import uncertainty_note
from . import checkpoints, xyz_axes
from .run import run_of
from .ui_documents import drawn_boxes

# a picture's inversions, per picture, checkpoint, source prompts and settings, bounded by the *Inversion
# cache* setting: a second edit of the same picture skips its inversion
INVERSIONS = InversionCache()
WEBUI_LIME_FIX = ("draw a box around the object on the region canvas with LIME on, or paint an inpaint mask; "
                  "tick the preview to see the region")


def _state():
    from modules import shared

    return shared.state


def _cancelled() -> bool:
    state = _state()
    return bool(state.interrupted or state.skipped)


def _drag_problem(p) -> RegEditError | None:
    """What stops a drag before it starts: no image, an image-conditioned checkpoint, a mask."""
    if not getattr(p, "init_images", None):
        return RegEditError("drag", "dragging moves part of an image, and this generation has none",
                            "use the img2img tab with an image (the API: /sdapi/v1/img2img with init_images)")
    if checkpoints.current(p).needs_image_conditioning():
        return RegEditError("drag", "this checkpoint is an inpainting or instruct-pix2pix model, which RegionDrag "
                                    "does not support", "load an ordinary SD 1.x or SDXL checkpoint")
    if getattr(p, "image_mask", None) is not None:
        return RegEditError("drag", "an inpainting mask is set; a drag edits the regions it moves",
                            "clear the mask, or use the img2img tab without one")
    return None


def start_drag(p, drag_doc) -> bool:
    """RegionDrag in img2img when the drag document has pairs: check it and the checkpoint, then
    replace the sampling. Returns whether a drag (or its error) took this generation."""
    from .generation import fail_sampling, xyz_overrides

    try:
        document = parse_drag_document(xyz_axes.apply_overrides(load_json_object(drag_doc, "drag", DRAG_EXAMPLE),
                                                                xyz_overrides(p), "drag"), field="drag")
        if document is not None and not document.pairs and getattr(p, "is_api", False):
            require_pairs(document, "drag")  # sent through the API, a drag document that moves nothing is a mistake
    except RegEditError as exc:
        fail_sampling(p, exc)
        return True
    if document is None or not document.pairs:  # the page writes the sliders' settings with no pairs: no drag
        return False
    problem = _drag_problem(p)
    if problem is not None:
        fail_sampling(p, problem)
        return True
    run_of(p).drag = document
    p.extra_generation_params[DRAG_INFOTEXT_KEY] = document.to_json()
    original = p.sample

    @functools.wraps(original)
    def sample(conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        return _drag_sample(p, document, seeds, prompts)

    p.sample = sample
    return True


def _drag_sample(p, document, seeds, prompts):
    """img2img's sampling replaced by RegionDrag on the init images (``drag/batch.py``), each row
    with its own prompt and seed, with the WebUI's progress bar and interrupt."""
    checkpoint = checkpoints.current(p)
    conds = [checkpoint.conditioning(prompt) for prompt in prompts]
    rows = p.init_latent.shape[0]
    state = _state()
    state.sampling_steps = options_for(document, p.steps).evaluations * rows
    state.sampling_step = 0

    def progress(done, total):
        state.sampling_step += 1

    def eps_of_row(i, x, t):
        with torch.no_grad():
            return checkpoint.eps(x, t, conds[min(i, len(conds) - 1)]).cpu()

    init = checkpoints.init_means(p)
    run = run_of(p)
    run.drag_growth = grown_handles(document, checkpoints.init_image(p), tuple(init.shape[-2:]))
    latents = drag_batch.drag_batch(eps_of_row, init, seeds, document, p.steps, checkpoint.alphas, checkpoint.attach,
                                    progress, _cancelled, grown=run.drag_growth)
    return latents.to(p.init_latent.device, p.init_latent.dtype)


def start_lime(p, lime_doc, region_doc, preview: bool) -> bool:
    """LIME in img2img when the LIME document is on: check it and the prompt, then run the sampling
    twice (``lime/webui_lime.py``). Returns whether LIME (or its error) took this generation."""
    from ..lime.webui_lime import LimeSession
    from .generation import fail_sampling, note, xyz_overrides

    try:
        document = parse_lime_document(lime_doc)
        if document is None:
            return False
        document = parse_lime_document(xyz_axes.apply_overrides(document.to_dict(), xyz_overrides(p), "lime"))
        if not getattr(p, "init_images", None):
            raise RegEditError("lime", "LIME edits an image, and this generation has none",
                               "use the img2img tab with an image (the API: /sdapi/v1/img2img with init_images)")
        check_instruction(p.prompt if isinstance(p.prompt, str) else "", "prompt", lime=True)
        document.options.checked()
        if not document.roi:  # boxes drawn on the region canvas replace the region LIME finds
            boxes = drawn_boxes(region_doc)
            document = dataclasses.replace(document, roi=boxes) if boxes else document
    except RegEditError as exc:
        fail_sampling(p, exc)
        return True
    run_of(p).preview = preview
    p.extra_generation_params[LIME_INFOTEXT_KEY] = document.to_json()
    original = p.sample

    @functools.wraps(original)
    def sample(conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        state = run_of(p)
        if not state.lime_mask_read:  # before a first batch's RoI blend sets one
            state.lime_user_mask, state.lime_mask_read = getattr(p, "nmask", None), True
        nmask = state.lime_user_mask  # an inpaint mask at the latent's resolution, (C, h, w): 1 where it edits
        mask = nmask.reshape(-1, *nmask.shape[-2:])[0].float().cpu() > 0.5 \
            if isinstance(nmask, torch.Tensor) and nmask.ndim >= 2 else None
        checkpoint = checkpoints.current(p)
        try:
            session = LimeSession(document, checkpoint.tokenize(prompts[0]), tuple(p.init_latent.shape[-2:]), mask,
                                  checkpoints.init_image(p))
        except RegEditError as exc:
            exc.status_code = 422
            raise
        run_of(p).lime = session
        # the posterior's mean, not the WebUI's unseeded sample of it: both passes, and a repeat of the
        # seed or a pasted infotext, start from the same latent
        p.init_latent = checkpoints.init_means(p)
        result = session.run(checkpoint.attach,
                             lambda: original(conditioning, unconditional_conditioning, seeds, subseeds,
                                              subseed_strength, prompts), getattr(p, "rng", None),
                             keep_outside=lambda roi: _blend_outside(p, roi))
        if session.found is not None:
            print(f"RegEdit: LIME found its region in {session.found.seconds:.2f} s of clustering "
                  f"({int(session.roi.sum())} of {session.roi.numel()} latent cells)")
            text = uncertainty_note(session.found, WEBUI_LIME_FIX)
            if text:
                note(p, text, once=True)
        return result

    p.sample = sample
    return True


def _blend_outside(p, roi) -> None:
    """The WebUI's inpainting blend with LIME's RoI as the mask: outside it the sampler's prediction
    is the source's latent at every step, and the result is blended once more at the end."""
    channels = p.init_latent.shape[1]
    nmask = roi.float()[None].repeat(channels, 1, 1).to(p.init_latent.device, p.init_latent.dtype)
    p.nmask, p.mask = nmask, 1.0 - nmask


def lime_preview(p, lime, processed) -> None:
    """The found region over the init image, when the preview is on."""
    from ..lime.preview import roi_preview

    if lime.roi is not None and run_of(p).preview and processed.images:
        processed.images.append(roi_preview(checkpoints.init_image(p), lime.roi if lime.pixel_roi is None
                                            else lime.pixel_roi > 0.5))
        processed.infotexts.append(processed.infotexts[0] if processed.infotexts else "")


def paste_outside(p, pp) -> None:
    """``postprocess_image``: the original kept outside a drag's, a picture edit's or LIME's regions,
    and a generated pair's source outside its target's edited boxes."""
    from ..editing.webui_pair import WebUIPairSession

    session = run_of(p).session
    if isinstance(session, WebUIPairSession) and not getattr(p, "init_images", None):
        pp.image = session.composite(pp.image, getattr(p, "batch_index", 0))
    if not getattr(p, "init_images", None):
        return
    drag = run_of(p).drag
    if drag is not None:
        from ..drag.composite import composite

        pp.image = composite(checkpoints.init_image(p), pp.image, drag, run_of(p).drag_growth)
    edit = run_of(p).picture_edit
    if edit is not None and getattr(p, "batch_index", 0) % 2 == 1:  # the edit of each (reconstruction, edit)
        from ..editing.real_edit import paste_outside as paste

        pp.image = paste(checkpoints.init_image(p), pp.image, edit)
    lime = run_of(p).lime
    if lime is not None:
        pp.image = lime.paste_outside(checkpoints.init_image(p), pp.image)


def start_picture_edit(p, document) -> None:
    """A region edit of the img2img picture (MRGD with inversion, ``editing/real_edit.py``): each image
    becomes (the reconstruction, the edit), in the gallery side by side."""
    from modules import shared

    from .generation import fail_sampling

    problem = None
    if getattr(p, "image_mask", None) is not None:
        problem = RegEditError("regions", "an inpainting mask is set; a region edit changes its boxes itself",
                               "clear the mask (use the img2img tab, not inpaint)")
    elif document.edit.inversion == "nulltext" and not checkpoints.current(p).differentiable:
        problem = RegEditError("edit.inversion", "null-text inversion optimises through the UNet, and WebUI Forge "
                                                 "holds its weights as inference tensors, which cannot be differentiated",
                               'use "negative" (the default) or "ddim" in Forge, or null-text in AUTOMATIC1111\'s '
                               "WebUI v1.10, the Python API or the command line")
    elif checkpoints.current(p).needs_image_conditioning():
        problem = RegEditError("regions", "this checkpoint is an inpainting or instruct-pix2pix model, which region "
                                          "editing of a picture does not support",
                               "load an ordinary SD 1.x or SDXL checkpoint")
    if problem is not None:
        fail_sampling(p, problem)
        return
    batch = pair_batch(document, p.batch_size, p.all_prompts, p.all_negative_prompts, p.all_seeds, p.all_subseeds)
    p.batch_size = batch.batch_size
    p.all_prompts, p.all_negative_prompts = batch.prompts, batch.negative_prompts
    p.all_seeds, p.all_subseeds = batch.seeds, batch.subseeds
    p.extra_generation_params[INFOTEXT_KEY] = document.to_json()
    p.extra_generation_params[PAIR_IMAGE_KEY] = batch.roles
    p.extra_generation_params[INVERSION_KEY] = document.edit.inversion
    run_of(p).picture_edit = document
    INVERSIONS.resize(int(shared.opts.data.get("regedit_inversion_cache_mb", 512)) << 20)
    original = p.sample

    @functools.wraps(original)
    def sample(conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        try:
            return _picture_edit_sample(p, document, prompts)
        except RegEditError as exc:
            exc.status_code = 422
            raise

    p.sample = sample


def _picture_edit_sample(p, document, prompts):
    from ..inversion.image_input import check_regions_cover
    from .generation import note

    check_regions_cover(document, p.width, p.height, max(1, p.width // p.init_latent.shape[-1]))
    if document.edit.guidance.enabled:
        note(p, "multi-region guidance does not run on a picture in the WebUI yet; the edit was made without it")
    if p.sampler_name != "DDIM":
        note(p, f"a picture's edit follows its DDIM inversion back, so it was sampled with DDIM, not {p.sampler_name}")
    checkpoint = checkpoints.current(p)
    rows = p.init_latent.shape[0]
    z0 = checkpoints.init_means(p, rows=1)  # every row is the same picture: its one inversion serves them
    state = _state()
    state.textinfo = "RegEdit: inverting"
    state.sampling_step = 0
    state.sampling_steps = p.steps * (3 if document.edit.inversion == "nulltext" else 2)

    def progress(done, total, phase):
        state.textinfo = f"RegEdit: {phase}"
        state.sampling_step += 1

    z, inversion, cached, built = edit_latents(
        checkpoint, document, z0, checkpoints.init_image(p), repr(checkpoint.key), source_prompt=prompts[0],
        target_prompt=prompts[1], negative_prompt=p.all_negative_prompts[0], steps=p.steps,
        guidance_scale=p.cfg_scale, seed=int(p.all_seeds[0]), progress=progress, cancel=_cancelled, cache=INVERSIONS)
    for text in list(built.notes) + [inversion.summary(cached)]:
        note(p, text)
    return z.repeat(rows // 2, 1, 1, 1).to(p.init_latent.device, p.init_latent.dtype)
