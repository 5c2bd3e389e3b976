"""``python -m lib_regedit edit``: an instruction edit of an image, localised with LIME (``--lime``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import RegEditError
from ..documents.lime import MAPS, PICKS


def add_parser(subparsers) -> argparse.ArgumentParser:
    ed = subparsers.add_parser("edit", help="edit an image from an instruction; --lime keeps the edit in its region")
    ed.add_argument("--image", required=True, help="the image to edit (its sides multiples of 8 and the VAE factor)")
    ed.add_argument("--instruction", required=True,
                    help='what to change, e.g. "make the red circle blue" (an ordinary text-to-image --model takes '
                         "the edit prompt: what the image should show)")
    ed.add_argument("--out", required=True, help="output PNG, carrying the parameters text")
    ed.add_argument("--lime", action="store_true", help="LIME: find the region of interest and regularise the edit "
                                                        "inside it (Simsar et al. 2025)")
    ed.add_argument("--model", help="an instruct-pix2pix pipeline folder or checkpoint, or an ordinary SD 1.x/SDXL "
                                    "one (default: the bundled ShapesWorld instruct model)")
    ed.add_argument("--config", help="for a single-file --model: a diffusers folder with the component configs")
    ed.add_argument("--roi-preview", help="also write the image with the RoI tinted here (with --lime)")
    ed.add_argument("--roi-mask", help="a mask image (white = edit here) to use instead of the RoI LIME finds: the "
                                       "image's size, or its shape at another size (scaled, with a note)")
    ed.add_argument("--seed", type=int, default=0)
    ed.add_argument("--steps", type=int, default=20)
    ed.add_argument("--guidance-scale", type=float, default=7.5, help="text CFG scale (default 7.5)")
    ed.add_argument("--image-guidance-scale", type=float, default=1.5,
                    help="image CFG scale of an instruct-pix2pix model (default 1.5)")
    ed.add_argument("--strength", type=float, default=0.75,
                    help="an ordinary model's denoising strength: how far from the image the edit starts (default 0.75)")
    ed.add_argument("--negative-prompt", default="")
    ed.add_argument("--clusters", type=int, help="LIME: k of k-means on the features (default 8)")
    ed.add_argument("--points", type=int, help="LIME: most attended positions whose clusters form the RoI (default 1)")
    ed.add_argument("--feature-step", type=float, help="LIME: the step whose features find the RoI (fraction, default 1/3)")
    ed.add_argument("--regularise-until", type=float,
                    help="LIME: fraction of the steps regularised (default 0.35; the paper's 0.9)")
    ed.add_argument("--grow", type=int, help="LIME: latent cells added around the RoI it finds (default 0)")
    ed.add_argument("--no-snap", dest="snap", action="store_const", const=False,
                    help="LIME: keep the feature clusters it finds, not snapped to the object's superpixels and boxed")
    ed.add_argument("--pick", choices=PICKS,
                    help="LIME: where the RoI's clusters are picked: 'object', the peak inside the superpixel the "
                         "edit words attend most (default); 'peak', the paper's peak anywhere")
    ed.add_argument("--maps", choices=MAPS,
                    help="LIME: the edit words' attention maps that pick the RoI: 'first', the first step's at the "
                         "finest resolution (default); 'feature', the paper's, read with the features")
    ed.set_defaults(func=run)
    return ed


def _lime_document(args) -> dict | None:
    """The LIME flags as a LIME document (checked by the one parser before any work)."""
    names = ("clusters", "points", "feature_step", "regularise_until", "grow", "snap", "pick", "maps")
    flags = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    if flags and not args.lime:
        first = next(iter(flags))
        raise RegEditError("--no-snap" if first == "snap" else "--" + first.replace("_", "-"),
                           "is a LIME setting, and --lime is not given",
                           "add --lime, or leave the setting out")
    for name in ("roi_preview", "roi_mask"):
        if getattr(args, name) and not args.lime:
            raise RegEditError("--" + name.replace("_", "-"), "needs --lime", "add --lime")
    return dict(flags) if args.lime else None


def model_path(args) -> Path:
    from ..models import default_instruct_model_path

    if args.model:
        return Path(args.model)
    model = default_instruct_model_path()
    if not (model / "model_index.json").exists():
        raise RegEditError("--model", f"the bundled instruct model is not at {model}",
                           "pass --model PATH, or set REGEDIT_INSTRUCT_MODEL to a checkout's models/shapesworld_instruct")
    return model


def run(args) -> int:
    from .. import generation_limits as limits
    from ..cli import load_model, output_png, print_notes, read_image, save_png
    from ..documents.lime import parse_lime_document
    from .edit_tokens import check_instruction

    limits.check_seed(args.seed, "--seed")
    limits.check_steps(args.steps, 1000, "--steps")
    limits.check_guidance_scale(args.guidance_scale, "--guidance-scale")
    limits.check_guidance_scale(args.image_guidance_scale, "--image-guidance-scale")
    if not 0 < args.strength <= 1:
        raise RegEditError("--strength", f"{args.strength:g} is out of range", "use a denoising strength in (0, 1]")
    check_instruction(args.instruction, "--instruction", lime=args.lime)
    try:
        document = parse_lime_document(_lime_document(args), field="--lime")
        if document is not None:
            document.options.checked()
    except RegEditError as exc:  # named as the flag the user typed
        name = exc.field.split(".")[-1].replace("_", "-")
        raise RegEditError(f"--{name}" if "." in exc.field else exc.field, exc.problem, exc.fix) from None
    out = output_png(args.out, "--out")
    roi_preview = output_png(args.roi_preview, "--roi-preview") if args.roi_preview else None
    image = read_image(args.image, "--image")
    notes, mask = [], None
    if args.roi_mask:
        from ..images import fit_mask

        mask, note = fit_mask(read_image(args.roi_mask, "--roi-mask", mask=True), image.size, "--roi-mask")
        notes += [note] if note else []
    path = model_path(args)
    pipe = load_model(path, config=args.config, instruct=True)
    from .diffusers_lime import lime_edit
    from .roi import uncertainty_note

    result = lime_edit(pipe, image, args.instruction, lime=document if document is not None else False,
                       seed=args.seed, steps=args.steps, guidance_scale=args.guidance_scale,
                       image_guidance_scale=args.image_guidance_scale, strength=args.strength,
                       negative_prompt=args.negative_prompt, roi=mask, model_name=path.name)
    save_png(result.image, out, result.pnginfo())
    if roi_preview is not None and result.preview is not None:
        save_png(result.preview, roi_preview, what="the region of interest")
    if result.found is not None and (note := uncertainty_note(result.found, CLI_FIX)):
        notes.append(note)
    print_notes(notes)
    if result.timings.get("clustering") is not None:
        print("LIME: first pass {first_pass:.1f} s, clustering {clustering:.2f} s, edit {edit:.1f} s".format(**result.timings))
    return 0


CLI_FIX = "give the region with --roi-mask MASK.png (white on the object)"
