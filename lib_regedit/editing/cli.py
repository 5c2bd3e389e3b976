"""``python -m lib_regedit edit-regions``: an edit pair (MRGD): the source image and the target image
in which the document's edited regions are added, removed or changed and the rest stays. With
``--image`` the source is a real picture, inverted first (``lib_regedit.inversion``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import RegEditError


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
    ed.add_argument("--nulltext-lr", type=float, default=1e-2,
                    help="null-text inversion's Adam learning rate (the paper's 0.01)")
    ed.add_argument("--nulltext-iterations", type=int, default=10, help="null-text's most Adam steps per step")
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
    from ..cli import _read_regions, model_path
    from ..documents import parse_region_document
    from ..models import load_pipeline
    from .diffusers_edit import edit_pair, parse_pair

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
    else:
        args.out = args.out or args.out_target
        if not args.out:
            raise RegEditError("--out", "is needed with --image", "add --out OUT.png")
        if args.batch_size != 1:
            raise RegEditError("--batch-size", "a picture's edit is deterministic, so a batch repeats it",
                               "leave --batch-size out with --image")
    if not Path(args.regions).exists():
        raise RegEditError("--regions", f"{args.regions} does not exist", "check the path")
    text, untagged = _read_regions(args.regions)
    document = parse_pair(parse_region_document(text, field=f"--regions {args.regions}", untagged_version=untagged))
    if args.guidance:
        document = replace(document, edit=replace(document.edit, guidance=replace(document.edit.guidance, enabled=True)))
    segmenter = None
    if document.edit.guidance.enabled:
        from .segmenter import load_segmenter

        segmenter = load_segmenter(_segmenter_path(args))
    model = model_path(args)
    if args.image is not None:
        return _run_image(args, document, segmenter, model)
    pipe = load_pipeline(model, config=args.config, field="--model")
    result = edit_pair(pipe, document, seed=args.seed, steps=args.steps, guidance_scale=args.cfg, width=args.width,
                       height=args.height, batch_size=args.batch_size, segmenter=segmenter, model_name=model.name,
                       allow_large=args.allow_large)
    for which, images, out in (("source", result.sources, args.out_source), ("target", result.targets, args.out_target)):
        for i, image in enumerate(images):
            path = Path(out) if i == 0 else Path(out).with_name(f"{Path(out).stem}-{i + 1}{Path(out).suffix}")
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path, pnginfo=result.pnginfo(which))
            print(f"wrote {path}")
    for note in result.extras.get("notes", []):
        print(note)
    if "guidance" in result.extras:
        print(result.extras["guidance"])
    return 0


def _run_image(args, document, segmenter, model) -> int:
    import sys

    from ..cli import read_image
    from ..inversion import InversionCache
    from ..inversion.invert import InversionCancelled
    from ..inversion.null_text import NullTextOptions
    from ..models import load_pipeline
    from .diffusers_real import edit_image

    image = read_image(args.image, "--image")
    if args.width or args.height:
        raise RegEditError("--width/--height", "a picture is edited at its own size",
                           "leave them out, or resize the picture first")
    options = NullTextOptions(args.nulltext_iterations, args.nulltext_lr)
    pipe = load_pipeline(model, config=args.config, field="--model")
    cache = InversionCache(folder=args.cache_dir) if args.cache_dir else None

    def progress(done, total, phase):
        print(f"\r{phase} {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    try:
        result = edit_image(pipe, image, document, inversion=args.inversion, seed=args.seed, steps=args.steps,
                            guidance_scale=args.cfg, cache=cache, nulltext=options, segmenter=segmenter,
                            progress=progress, model_name=model.name, allow_large=args.allow_large)
    except KeyboardInterrupt:
        raise InversionCancelled() from None
    outputs = [("target", result.target, args.out)] + \
        ([("source", result.source, args.out_source)] if args.out_source else [])
    for which, image_out, out in outputs:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        image_out.save(path, pnginfo=result.pnginfo(which))
        print(f"wrote {path}" + (" (the reconstruction)" if which == "source" else ""))
    for note in result.extras.get("notes", []):
        print(note)
    return 0
