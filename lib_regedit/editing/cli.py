"""``python -m lib_regedit edit-regions``: an edit pair (MRGD): the source image and the target image
in which the document's edited regions are added, removed or changed and the rest stays. With
``--image`` the source is a real picture, inverted first (``lib_regedit.inversion``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import RegEditError

DEFAULTS = {"nulltext_lr": 1e-2, "nulltext_iterations": 10}  # null-text inversion's (the paper's)


def add_parser(subparsers) -> argparse.ArgumentParser:
    ed = subparsers.add_parser("edit-regions", help="make a source image and its region edit (add, remove or "
                                                    "change a region's object; MRGD)")
    ed.add_argument("--regions", required=True,
                    help="a region document with edit roles (JSON; see examples/edit_change.json), or a PNG made "
                         "by RegEdit whose document has them")
    ed.add_argument("--image", help="edit this picture instead of a generated one: its regions' prompts describe it "
                                    "as it is (PNG or JPEG, 8-bit RGB)")
    ed.add_argument("--inversion", default=None, choices=("negative", "ddim", "nulltext"),
                    help="with --image: negative-prompt inversion (fast, the default), null-text inversion (slow, "
                         "the closest reconstruction) or plain DDIM inversion (the baseline); default: the document's "
                         "edit.inversion, else negative")
    ed.add_argument("--out", help="with --image: the edited picture (PNG)")
    ed.add_argument("--out-source", help="the source image (PNG); with --image, the reconstruction (optional)")
    ed.add_argument("--out-target", help="the edited image (PNG); with --image, the same as --out")
    ed.add_argument("--cache-dir", help="with --image: keep inversions in this folder, so a second edit of the same "
                                        "picture, prompts and settings skips the inversion")
    ed.add_argument("--nulltext-lr", type=float, default=DEFAULTS["nulltext_lr"],
                    help="null-text inversion's Adam learning rate (the paper's 0.01)")
    ed.add_argument("--nulltext-iterations", type=int, default=DEFAULTS["nulltext_iterations"],
                    help="null-text's most Adam steps per step")
    ed.add_argument("--model", help="diffusers folder or .safetensors (default: the bundled ShapesWorld model)")
    ed.add_argument("--config", help="for a single-file --model: a diffusers folder with the component configs")
    ed.add_argument("--guidance", action="store_true",
                    help="multi-region guidance through a segmenter (MRGD Eq. 2-4; slower, its cost is printed)")
    ed.add_argument("--segmenter", help="a CLIPSeg folder for --guidance (default: the bundled ShapesWorld CLIPSeg, "
                                        "or REGEDIT_SEGMENTER)")
    ed.add_argument("--seed", type=int, default=0)
    ed.add_argument("--steps", type=int, default=20)
    ed.add_argument("--cfg", type=float, default=7.5)
    ed.add_argument("--width", type=int)
    ed.add_argument("--height", type=int)
    ed.add_argument("--batch-size", type=int, default=1, help="pairs made at once (each its own seed: seed + i)")
    ed.add_argument("--allow-large", action="store_true", help="allow sizes beyond 4x the model's native area")
    ed.set_defaults(func=run)
    return ed


def _segmenter_path(args) -> Path:
    from ..models import default_segmenter_path

    return Path(args.segmenter) if args.segmenter else default_segmenter_path()


def run(args) -> int:
    from dataclasses import replace

    from .. import generation_limits as limits
    from ..cli import _read_regions, model_path, output_png
    from ..documents import parse_region_document
    from .pair_documents import parse_pair

    limits.check_seed(args.seed, "--seed")
    limits.check_steps(args.steps, 1000, "--steps")
    limits.check_guidance_scale(args.cfg, "--cfg")
    limits.check_batch_size(args.batch_size, "--batch-size")
    if args.segmenter and not args.guidance:
        raise RegEditError("--segmenter", "is read only with --guidance", "add --guidance, or leave --segmenter out")
    if args.image is None:
        for flag, value in (("--out-source", args.out_source), ("--out-target", args.out_target)):
            if not value:
                raise RegEditError(flag, "is needed to make an edit pair", f"add {flag} PATH.png (or edit a picture "
                                   "with --image IN.png --out OUT.png)")
        for flag, value in (("--out", args.out), ("--cache-dir", args.cache_dir)):
            if value:
                raise RegEditError(flag, "is read only with --image", f"add --image IN.png, or leave {flag} out")
        for flag in ("nulltext_lr", "nulltext_iterations"):
            if getattr(args, flag) != DEFAULTS[flag]:
                raise RegEditError("--" + flag.replace("_", "-"), "is read only with --image --inversion nulltext",
                                   f"add --image IN.png --inversion nulltext, or leave --{flag.replace('_', '-')} out")
        if args.inversion is not None:
            raise RegEditError("--inversion", "is read only with --image (a generated pair has no inversion)",
                               "add --image IN.png, or leave --inversion out")
    else:
        if args.out and args.out_target and args.out != args.out_target:
            raise RegEditError("--out-target", f"names another file than --out ({args.out}), and with --image they "
                                               "are the same picture", "give one of them")
        args.out = args.out or args.out_target
        if not args.out:
            raise RegEditError("--out", "is needed with --image", "add --out OUT.png")
        if args.batch_size != 1:
            raise RegEditError("--batch-size", "a picture's edit is deterministic, so a batch repeats it",
                               "leave --batch-size out with --image")
        if args.width or args.height:
            raise RegEditError("--width/--height", "a picture is edited at its own size",
                               "leave them out, or resize the picture first")
    for flag in ("out", "out_source", "out_target"):
        if getattr(args, flag):
            output_png(getattr(args, flag), "--" + flag.replace("_", "-"))
    if not Path(args.regions).exists():
        raise RegEditError("--regions", f"{args.regions} does not exist", "check the path")
    text, untagged = _read_regions(args.regions)
    document = parse_pair(parse_region_document(text, field=f"--regions {args.regions}", untagged_version=untagged))
    if args.guidance:
        document = replace(document, edit=replace(document.edit, guidance=replace(document.edit.guidance, enabled=True)))
    model = model_path(args)
    if args.image is not None:
        return _run_image(args, document, model)
    return _run_pair(args, document, model)


def _segmenter(document, args):
    """The CLIPSeg segmenter multi-region guidance needs, or None."""
    if not document.edit.guidance.enabled:
        return None
    from .segmenter import load_segmenter

    return load_segmenter(_segmenter_path(args))


def _run_pair(args, document, model) -> int:
    from ..cli import load_model, print_notes, save_png

    segmenter = _segmenter(document, args)
    pipe = load_model(model, config=args.config)
    from .diffusers_edit import edit_pair

    result = edit_pair(pipe, document, seed=args.seed, steps=args.steps, guidance_scale=args.cfg, width=args.width,
                       height=args.height, batch_size=args.batch_size, segmenter=segmenter, model_name=model.name,
                       allow_large=args.allow_large)
    for which, images, out in (("source", result.sources, args.out_source), ("target", result.targets, args.out_target)):
        for i, image in enumerate(images):
            path = Path(out) if i == 0 else Path(out).with_name(f"{Path(out).stem}-{i + 1}{Path(out).suffix}")
            save_png(image, path, result.pnginfo(which))
    print_notes(result.extras.get("notes", []))
    return 0


def _run_image(args, document, model) -> int:
    from ..cli import load_model, print_notes, read_image, save_png
    from ..inversion.invert import InversionCancelled
    from ..progress import PhaseBars

    image = read_image(args.image, "--image")
    segmenter = _segmenter(document, args)
    pipe = load_model(model, config=args.config)
    from ..inversion import InversionCache
    from ..inversion.null_text import NullTextOptions
    from .diffusers_real import edit_image

    options = NullTextOptions(args.nulltext_iterations, args.nulltext_lr)
    cache = InversionCache(folder=args.cache_dir) if args.cache_dir else None
    bars = PhaseBars()
    try:
        result = edit_image(pipe, image, document, inversion=args.inversion, seed=args.seed, steps=args.steps,
                            guidance_scale=args.cfg, cache=cache, nulltext=options, segmenter=segmenter,
                            progress=bars, model_name=model.name, allow_large=args.allow_large)
    except KeyboardInterrupt:
        raise InversionCancelled() from None
    finally:
        bars.close()
    if (result.extras["inversion"].method != "nulltext"
            and (args.nulltext_lr, args.nulltext_iterations) != (DEFAULTS["nulltext_lr"], DEFAULTS["nulltext_iterations"])):
        result.extras["notes"].append(f"--nulltext-lr and --nulltext-iterations are read by null-text inversion "
                                      f"only; this edit used {result.extras['inversion'].method} inversion")
    save_png(result.target, Path(args.out), result.pnginfo("target"))
    if args.out_source:
        save_png(result.source, Path(args.out_source), result.pnginfo("source"), what="the reconstruction")
    print_notes(result.extras.get("notes", []))
    return 0
