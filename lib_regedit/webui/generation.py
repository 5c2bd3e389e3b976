"""One WebUI generation with RegEdit: the script's hooks, from the documents to the sampler.

``scripts/regedit.py`` builds the documents from the accordion (or takes the API's) and calls
:func:`process`; this module checks them, picks the task (a drag, LIME, a picture's region edit, an
edit pair, region prompts), wraps ``p.sample`` and cleans up in :func:`postprocess`. The checkpoint is
reached through ``checkpoints.current(p)``, the model interface, whichever WebUI loaded it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import time

import torch

from ..backends.checkpoint import empty_prompt_eps
from ..documents import parse_region_document
from ..documents.fields import load_json_object
from ..editing.pair_start import pair_starts
from ..editing.webui_pair import WebUIPairSession, pair_batch
from ..errors import RegEditError
from ..infotext import INFOTEXT_KEY, KEYWORDS_KEY, PAIR_IMAGE_KEY
from ..preview import draw_layout
from ..regions import layout_init
from ..regions.prompting import region_lora_tags
from . import checkpoints, image_tasks, run, xyz_axes
from .run import run_of
from .session import WebUISession
from .ui_documents import (LIME_SETTINGS, drag_settings_to_doc, has_edit_roles, lime_settings_to_doc,
                           task_documents, with_settings)


def process(p, values: dict) -> None:
    """RegEdit's part of ``Script.process``. ``values``: the script's arguments by name (``doc``,
    ``enabled``, ``preview``, ``drag_doc``, ``lime_doc``, and from the page the controls' values). From
    the img2img page, ``task`` picks the one task that runs (``ui_documents.task_documents``); the API
    has none, and its documents run in the order drag, LIME, regions."""
    from modules import processing, shared

    from . import latent_scale

    run.start(p)
    # before the WebUI makes this generation's noise: a model switched by override_settings or
    # taken from the checkpoint cache fires no on_model_loaded
    latent_scale.sync(processing, shared.sd_model)
    doc, drag_doc, lime_doc = values.get("doc"), values.get("drag_doc"), values.get("lime_doc")
    from_page = not getattr(p, "is_api", False) and "mode" in values
    active = bool(values.get("enabled")) or bool(getattr(p, "is_api", False))
    task = values.get("task") if from_page else None  # img2img's task choice: the chosen task runs, only it
    if from_page and "start_t" in values:
        drag_doc = drag_settings_to_doc(drag_doc, values["start_t"], values["end_t"], values["handle_noise"])
    if from_page and "lime_on" in values:
        lime_on = values["lime_on"] if task is None else task == "LIME"
        lime_doc = lime_settings_to_doc(lime_doc, lime_on, *(values[k] for k in LIME_SETTINGS[1:]))
        active = active or (task is None and bool(lime_on))  # without a task choice, the LIME box alone
    if active and task is not None:
        try:
            doc, drag_doc, lime_doc = task_documents(task, doc, drag_doc, lime_doc)
        except RegEditError as exc:
            fail_sampling(p, exc)
            return
    preview = bool(values.get("preview")) or bool(shared.opts.data.get("regedit_always_preview", False))
    if active and image_tasks.start_drag(p, drag_doc):
        return
    if active and image_tasks.start_lime(p, lime_doc, doc, preview):
        return
    if not active or doc in (None, "") or (isinstance(doc, str) and not doc.strip()):
        return
    try:
        document = _region_document(p, doc, values if from_page else None)
    except RegEditError as exc:
        fail_sampling(p, exc)
        return
    except Exception as exc:  # noqa: BLE001 - anything unreadable fails this generation, with a message
        fail_sampling(p, RegEditError("regedit", f"the document could not be read ({type(exc).__name__})",
                                      'send a JSON object such as {"prompt": "...", "regions": [...]}'))
        return
    if document is None or not document.regions:
        return
    run_of(p).preview = preview
    for text in document.notes(getattr(p, "width", None), getattr(p, "height", None)):
        note(p, text)  # a mask picture's unnamed colours, its scaling to the image
    if document.is_pair:
        _start_pair(p, document)
        return
    loras = checkpoints.region_loras()
    if loras is not None:
        try:  # names and files checked now: sampling has not started
            region_lora_tags(document, loras)
        except RegEditError as exc:
            fail_sampling(p, exc)
            return
    checkpoint = checkpoints.current(p)
    run_of(p).session = WebUISession(document, lambda prompt: checkpoint.conditioning(prompt).context,
                                     checkpoint.tokenize, loras=loras)
    p.extra_generation_params[INFOTEXT_KEY] = document.to_json()
    _wrap_sample(p)


def _region_document(p, doc, page: dict | None):
    """The region document this generation runs: what the page shows (``page``: the controls' values)
    or the API's, the X/Y/Z plot's values applied, the WebUI's prompt boxes as its prompts."""
    obj = load_json_object(doc, "regedit")
    if obj is not None and page is not None:  # what the page shows runs
        from .ui_documents import REGION_SETTINGS

        obj = json.loads(with_settings(obj, *(page[k] for k in REGION_SETTINGS)))
        if page.get("inversion") and has_edit_roles(obj) and isinstance(obj.get("edit", {}), dict):
            obj["edit"] = {**obj.get("edit", {}), "inversion": page["inversion"]}  # img2img's, for a picture's edit
    obj = xyz_axes.apply_overrides(obj, xyz_overrides(p), "regions")
    if obj is None:
        return None
    obj = dict(obj)
    # the WebUI's prompt boxes are r_total's prompts (the rows' own conditioning); a document's
    # negative_prompt is still validated, then replaced by the negative prompt box
    obj["prompt"] = p.prompt if isinstance(p.prompt, str) else str(p.prompt)
    document = parse_region_document(obj)
    if document is not None:
        negative = p.negative_prompt if isinstance(p.negative_prompt, str) else ""
        document = dataclasses.replace(document, negative_prompt=negative)
    return document


def _start_pair(p, document) -> None:
    """An edit pair (MRGD): each image of the batch becomes a source and a target (``editing/webui_pair.py``),
    in the gallery side by side, each infotext saying which it is."""
    if getattr(p, "init_images", None):
        image_tasks.start_picture_edit(p, document)
        return
    checkpoint = checkpoints.current(p)
    segmenter = None
    if document.edit.guidance.enabled:
        problem = checkpoints.needs_gradient(p, "edit.guidance", "multi-region guidance")
        if problem is not None:
            fail_sampling(p, problem)
            return
        try:
            segmenter = checkpoints.segmenter()
        except RegEditError as exc:
            fail_sampling(p, RegEditError("edit.guidance", f"needs a segmenter: {exc.problem}",
                                          f"set Settings → RegEdit → Segmenter folder: {exc.fix}; or turn "
                                          "guidance off"))
            return
    batch = pair_batch(document, p.batch_size, p.all_prompts, p.all_negative_prompts, p.all_seeds, p.all_subseeds,
                       getattr(p, "all_hr_prompts", None), getattr(p, "all_hr_negative_prompts", None))
    p.batch_size = batch.batch_size
    p.all_prompts, p.all_negative_prompts = batch.prompts, batch.negative_prompts
    p.all_seeds, p.all_subseeds = batch.seeds, batch.subseeds
    if batch.hr_prompts is not None:
        p.all_hr_prompts, p.all_hr_negative_prompts = batch.hr_prompts, batch.hr_negative_prompts
    run_of(p).session = WebUIPairSession(document, lambda prompt: checkpoint.conditioning(prompt).context,
                                         checkpoint.tokenize, batch.batch_size // 2,
                                         source_prompt=batch.prompts[0], target_prompt=batch.prompts[1])
    if segmenter is not None:
        guidance = run_of(p).session.enable_guidance(segmenter, lambda z: ((checkpoint.decode(z) + 1) / 2).clamp(0, 1),
                                                     checkpoint.alphas)
        guidance.model = checkpoint.model.first_stage_model  # made lean while differentiated
    p.extra_generation_params[INFOTEXT_KEY] = document.to_json()
    p.extra_generation_params[PAIR_IMAGE_KEY] = batch.roles
    _wrap_sample(p)


def _wrap_sample(p) -> None:
    original = p.sample

    @functools.wraps(original)
    def sample(*args, **kwargs):
        session = run_of(p).session
        if session is None:
            return original(*args, **kwargs)
        if session.document.uses_layout_init(from_image=bool(getattr(p, "init_images", None))) \
                or session.document.init == "layout":  # an explicit "layout" in img2img gets the note
            _start_from_layout(p, session.document, session)  # before effects attach: the plain model inverts
        layout = _layout_guidance(p, session)
        started = time.perf_counter()
        try:
            with session.attached(checkpoints.current(p)), _guiding_first_sampler(p, session, layout):
                result = original(*args, **kwargs)
        finally:
            if isinstance(session, WebUIPairSession):
                session.restore_denoisers()
        if layout is not None:
            note(p, layout.summary(time.perf_counter() - started))
        for text in session.built.notes if session.built else []:
            note(p, text, once=True)
        guidance = getattr(session, "guidance", None)
        if guidance is not None and guidance.history:
            note(p, guidance.summary())
        keywords = session.keywords_text()
        if keywords is not None:  # before the images are saved, so the PNG infotext carries it
            p.extra_generation_params[KEYWORDS_KEY] = keywords
        return result

    p.sample = sample


def _layout_guidance(p, session):
    """The document's layout guidance for this txt2img generation (``webui/layout_guidance.py``), or
    None with a note where it does not run."""
    document = session.document
    if not document.guidance.enabled:
        return None
    reason = None
    if not checkpoints.current(p).differentiable:
        reason = ("layout guidance does not run in WebUI Forge (its gradient runs through the UNet, whose weights "
                  "Forge holds as inference tensors); the image was made without it")
    elif isinstance(session, WebUIPairSession):
        reason = "layout guidance does not run in an edit pair; the pair was made without it"
    elif document.mode == "latent":
        reason = "layout guidance runs in attention mode only; it was skipped in latent mode"
    elif getattr(p, "init_images", None):
        reason = "layout guidance applies to txt2img; img2img starts from your image"
    if reason is None:
        guidance = session.layout_guidance(p.steps, checkpoints.current(p).alphas)
        if guidance is not None:
            guidance.guidance.model = checkpoints.current(p).unet  # made lean while differentiated
            return guidance
        reason = "layout guidance found no word to bind in the region prompts; nothing was guided"
    if not run_of(p).guidance_noted:
        run_of(p).guidance_noted = True
        note(p, reason)
    return None


@contextlib.contextmanager
def _guiding_first_sampler(p, session, guidance):
    """While the ``with`` block runs, the first sampler the WebUI creates (the txt2img first pass, not
    hires fix's) guides the latent its denoiser receives: ``sd_samplers.create_sampler`` is wrapped and
    restored, and the denoiser's ``forward`` is patched on that instance only."""
    if guidance is None:
        yield
        return
    from modules import sd_samplers

    create = sd_samplers.create_sampler
    patched = []

    def create_sampler(*args, **kwargs):
        sampler = create(*args, **kwargs)
        if not patched:
            _guide_denoiser(sampler.model_wrap_cfg, p, session, guidance)
            patched.append(sampler.model_wrap_cfg)
        return sampler

    sd_samplers.create_sampler = create_sampler
    try:
        yield
    finally:
        sd_samplers.create_sampler = create
        for denoiser in patched:
            denoiser.__dict__.pop("forward", None)


def _guide_denoiser(denoiser, p, session, guidance) -> None:
    """Layout guidance on the latent ``denoiser`` receives, before each guided step's prediction."""
    from modules import prompt_parser, sd_samplers_common, shared
    from modules.sd_samplers_timesteps import CFGDenoiserTimesteps

    original = denoiser.forward
    predicts_noise = isinstance(denoiser, CFGDenoiserTimesteps)

    def forward(x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
        step = int(shared.state.sampling_step)  # the sampler's step (``denoiser.step`` counts model calls)
        if guidance.wants(step):
            if shared.state.interrupted or shared.state.skipped:
                raise sd_samplers_common.InterruptedException
            conds_list, tensor = prompt_parser.reconstruct_multicond_batch(cond, denoiser.step)
            session.on_cfg_denoiser(step, p.steps, tensor, prompt_parser.reconstruct_cond_batch(uncond, denoiser.step))
            first = [conds[0][0] for conds in conds_list]  # each image's first prompt (AND: the first part)

            def model(x_rows, rows):
                index = torch.tensor([first[r] for r in rows], device=x.device)
                text = ({k: v.index_select(0, index) for k, v in tensor.items()} if isinstance(tensor, dict)
                        else tensor.index_select(0, index))
                concat = image_cond[rows[0]:rows[-1] + 1]
                conditioning = ({**text, "c_concat": [concat]} if isinstance(text, dict)
                                else {"c_crossattn": [text], "c_concat": [concat]})
                return denoiser.inner_model(x_rows, sigma[rows[0]:rows[-1] + 1], cond=conditioning)

            guidance.guide(x, sigma, step, predicts_noise, model)
        return original(x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond)

    denoiser.forward = forward


def _start_from_layout(p, document, session=None) -> None:
    """Layout init (``regions/layout_init.py``): invert the boxes' sketch now, and mix the seed's noise
    into it when the sampler draws its first noise (``p.rng.next``, seeds and subseeds kept)."""
    if getattr(p, "init_images", None):
        note(p, "init layout applies to txt2img; img2img starts from your image")
        return
    rng = getattr(p, "rng", None)
    if rng is None:
        return
    inverted = run_of(p).layout  # the same for every batch of this generation
    pair = session.documents if isinstance(session, WebUIPairSession) else None
    sketches = (pair.source, pair.target) if pair is not None else (document,)
    if inverted is None:
        checkpoint = checkpoints.current(p)
        try:
            inverted = [layout_init.inverted_sketch(d, width=p.width, height=p.height, steps=p.steps,
                                                    encode=checkpoint.posterior_mean,
                                                    eps=empty_prompt_eps(checkpoint),
                                                    alphas_cumprod=checkpoint.alphas, model_key=checkpoint.key)
                        for d in sketches]
        except Exception as exc:  # noqa: BLE001 - e.g. an inpainting checkpoint needs image conditioning
            note(p, f"init layout skipped on this checkpoint ({type(exc).__name__}: {exc})"[:300])
            return
        run_of(p).layout = inverted
    draw = rng.next

    def first_next():
        rng.next = draw  # only the starting noise; hires fix and ancestral samplers draw plain noise
        noise = draw()
        if pair is None:
            start = layout_init.start_for(document, inverted[0], noise)
        else:  # a pair's rows are (source, target) per image; the target keeps the source's start away
            source, target = pair_starts(document, pair, inverted, noise)  # from its edits (editing/pair_start.py)
            start = source.clone()
            start[1::2] = target[1::2]
        return start.to(noise.device, noise.dtype)

    rng.next = first_next


def postprocess(p, processed) -> None:
    """The previews, and every effect taken off whatever happened; the generation's state dropped."""
    state = getattr(p, "_regedit_run", None)
    if state is None:
        return
    try:
        if state.lime is not None:
            image_tasks.lime_preview(p, state.lime, processed)
        session = state.session
        if session is not None and state.preview and processed.images:
            info = processed.infotexts[0] if processed.infotexts else ""
            processed.images.append(draw_layout(processed.images[0], session.document))
            processed.infotexts.append(info)
            keyword_maps = session.keyword_preview(processed.images[0])
            if keyword_maps is not None:
                processed.images.append(keyword_maps)
                processed.infotexts.append(info)
    finally:
        if state.lime is not None or state.session is not None:
            checkpoints.remove_leftovers()
        run.end(p)


def note(p, text: str, once: bool = False) -> None:
    """A note under the image in the UI, and in the console (the API's info has no comments); with
    ``once``, printed once per generation however many batches repeat it."""
    p.comment(f"RegEdit: {text}")
    printed = run_of(p).printed
    if not once or text not in printed:
        printed.add(text)
        print(f"RegEdit: {text}")


def fail_sampling(p, exc: Exception) -> None:
    """Fail this generation with the message (script errors in ``process`` are only logged). The API
    answers 422 (the WebUI's exception handler reads ``status_code``)."""
    exc.status_code = 422

    def sample(*args, **kwargs):
        raise exc

    p.sample = sample


def xyz_overrides(p) -> dict:
    return getattr(p, "_regedit_xyz", None) or {}


_AFTER_CFG: list = []  # the pair whose denoiser call is under way (on_cfg_after_cfg's params name no generation)


def on_cfg_after_cfg(params) -> None:
    """An edit pair's target takes its source's prediction outside the edited boxes (``keep_denoised``)."""
    if not _AFTER_CFG:
        return
    session = _AFTER_CFG.pop()
    params.x = session.keep_denoised(params.x)


def on_cfg_denoiser(params) -> None:
    _AFTER_CFG.clear()  # a call that raised before its after-CFG callback leaves nothing behind
    p = getattr(params.denoiser, "p", None)
    state = getattr(p, "_regedit_run", None)
    if state is None:
        return
    for session in (state.session, state.lime):
        if session is not None:
            session.on_cfg_denoiser(params.sampling_step, params.total_sampling_steps, params.text_cond,
                                    params.text_uncond)
    session = state.session
    if isinstance(session, WebUIPairSession):
        _AFTER_CFG[:] = [session]  # on_cfg_after_cfg, later in this denoiser call, keeps the pair's rest
    if isinstance(session, WebUIPairSession) and session.guidance is not None:
        from modules.sd_samplers_timesteps import CFGDenoiserTimesteps

        session.watch_denoiser(params.denoiser, params.x, params.sigma, p.batch_size,
                               predicts_noise=isinstance(params.denoiser, CFGDenoiserTimesteps))
