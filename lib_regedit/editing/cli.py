"""``python -m lib_regedit edit-regions``: an edit pair (MRGD): the source image and the target image
in which the document's edited regions are added, removed or changed and the rest stays."""

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
    ed.add_argument("--out-source", required=True, help="the source image (PNG)")
    ed.add_argument("--out-target", required=True, help="the edited image (PNG)")
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
