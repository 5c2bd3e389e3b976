"""``python -m lib_regedit drag``: RegionDrag on an image, or on every case of a DragBench-SR/DR folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import load_model, model_path, output_png, print_notes, read_image, save_png
from ..errors import RegEditError


def add_parser(subparsers) -> argparse.ArgumentParser:
    dr = subparsers.add_parser("drag", help="RegionDrag: move image regions onto targets (gradient-free)")
    dr.add_argument("--image", help="the image to edit (its sides multiples of 8 and the VAE factor)")
    dr.add_argument("--drag", help="drag document: handle and target regions (JSON file)")
    dr.add_argument("--dragbench", help="instead of --image/--drag: a DragBench-SR/DR folder, one result per case")
    dr.add_argument("--out", required=True, help="output PNG, carrying the parameters text (with --dragbench: a folder)")
    dr.add_argument("--model", help="diffusers folder or single-file checkpoint (default: the bundled ShapesWorld)")
    dr.add_argument("--config", help="for a single-file --model: a diffusers folder with the component configs")
    dr.add_argument("--prompt", default="", help="what the image shows (default: empty, a neutral prompt)")
    dr.add_argument("--seed", type=int, default=0)
    dr.add_argument("--steps", type=int, default=20)
    dr.add_argument("--start-t", type=float, help="how far to invert, a fraction of the schedule (default 0.5)")
    dr.add_argument("--end-t", type=float, help="copy-paste while the timestep is above this fraction (default 0.2)")
    dr.add_argument("--handle-noise", type=float,
                    help="noise share of the handle at the start (default 1.0; 0.6 tends to leave a copy behind)")
    dr.add_argument("--copy-paste-every-step", action="store_true",
                    help="paste at every step whatever --end-t says (the reference implementation's behaviour)")
    dr.add_argument("--no-mutual-self-attention", action="store_true",
                    help="for comparison: keep each branch's own keys and values")
    dr.add_argument("--no-match-surroundings", action="store_true",
                    help="RegionDrag's own fill: the handle turned to noise and the result pasted back with a feather "
                         "(drag document version 1's), not filled from its surroundings and blended in seamlessly")
    dr.add_argument("--no-grow-handles", action="store_true",
                    help="brush handles as painted (drag document version 1's), not grown to the objects they cover")
    dr.set_defaults(func=run)
    return dr


def run(args) -> int:
    """``regedit drag``: RegionDrag on an image (``lib_regedit.drag``). Everything is checked before the
    model loads: the flags, the document (a drag with no pairs is refused) and the two together."""
    from .. import generation_limits as limits
    from ..documents import DragDocument, parse_drag_document
    from ..documents.drag import require_pairs
    from .options import check_options, options_for

    limits.check_seed(args.seed, "--seed")
    limits.check_steps(args.steps, 1000, "--steps")
    overrides = _flag_settings(args)
    try:  # the flags over the default settings, before any work
        flagged = check_options(options_for(DragDocument(()), args.steps, **overrides), 1000)
    except RegEditError as exc:  # named as the flag the user typed
        raise RegEditError(_named(exc.field, overrides), exc.problem, exc.fix) from None
    notes = []
    if args.copy_paste_every_step and args.end_t is not None:
        notes.append("--end-t is not read with --copy-paste-every-step, which pastes at every step")
    if args.dragbench:
        return _dragbench(args, flagged, notes)
    for name in ("image", "drag"):
        if not getattr(args, name):
            raise RegEditError(f"--{name}", "is missing", "give --image IN.png and --drag DRAG.json "
                                                          "(or --dragbench DIR for a DragBench-SR/DR folder)")
    out = output_png(args.out, "--out")
    try:
        text = Path(args.drag).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegEditError("--drag", f"cannot read {args.drag} ({getattr(exc, 'strerror', None) or exc})",
                           "give a drag document (a JSON file; see examples/drag_square.json)")
    document = parse_drag_document(text, field="--drag")
    if document is None:
        raise RegEditError("--drag", f"{args.drag} is empty", "write a drag document (see examples/drag_square.json)")
    require_pairs(document, "--drag")
    try:  # the document's settings under the flags
        options = check_options(options_for(document, args.steps, **overrides), 1000)
    except RegEditError as exc:  # named as the flag, or the document's field
        raise RegEditError(_named(exc.field, overrides, "--drag"), exc.problem, exc.fix) from None
    image = read_image(args.image, "--image")
    model = model_path(args)
    pipe = load_model(model, config=args.config)
    from .diffusers_drag import drag

    result = drag(pipe, image, document, prompt=args.prompt, seed=args.seed, options=options, model_name=model.name)
    save_png(result.image, out, result.pnginfo())
    print_notes(notes)
    return 0


def _named(name: str, overrides: dict, document: str | None = None) -> str:
    """The field a setting's error names: the flag the user typed (``--end-t``), else the document's
    field (``--drag.end_t``). An ``end_t`` not below ``start_t`` is named by whichever of the two the
    user gave as a flag."""
    if name == "end_t" and overrides.get("end_t") is None and overrides.get("start_t") is not None:
        name = "start_t"
    if document is None or name not in overrides or overrides[name] is not None:
        return "--" + name.replace("_", "-")
    return f"{document}.{name}"


def _flag_settings(args) -> dict:
    """The drag settings the flags give; ``None`` where a flag is absent (the document's setting stays)."""
    return {"start_t": args.start_t, "end_t": args.end_t, "handle_noise": args.handle_noise,
            "mutual_self_attention": False if args.no_mutual_self_attention else None,
            "copy_paste_every_step": True if args.copy_paste_every_step else None,
            "match_surroundings": False if args.no_match_surroundings else None,
            "grow_handles": False if args.no_grow_handles else None}


def _dragbench(args, options, notes) -> int:
    """Every DragBench-SR/DR case below ``--dragbench``, one result per case under ``--out``, with
    ``options`` (the default settings under the flags: a case carries none of its own)."""
    import numpy as np
    from PIL import Image

    from .. import generation_limits as limits
    from ..api import native_size
    from ..compositing import paste_back, seamless_paste
    from . import dragbench
    from .diffusers_drag import drag_mapped

    root = Path(args.dragbench)
    cases = dragbench.find_cases(root) if root.is_dir() else []
    if not cases:
        raise RegEditError("--dragbench", f"no case under {root}", f"give a folder whose cases hold "
                                                                   f"{dragbench.IMAGE_NAME} and {dragbench.META_NAME}")
    model = model_path(args)
    pipe = load_model(model, config=args.config)
    native = native_size(pipe)
    out_root = Path(args.out)
    for folder in cases:
        case = dragbench.read_case(folder, root)
        size = dragbench.fitted_size(case.image, limits.size_multiple(pipe.vae_scale_factor), native)
        image = case.image.resize(size, Image.LANCZOS)
        mapping = dragbench.latent_mapping(case, *size, pipe.vae_scale_factor)
        edited = drag_mapped(pipe, image, mapping, prompt=args.prompt or case.prompt, seed=args.seed, options=options,
                             progress=False)
        mask = np.asarray(Image.fromarray(case.mask.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 0
        result = (seamless_paste if options.match_surroundings else paste_back)(image, edited, mask)
        save_png(result, (out_root / case.name).with_suffix(".png"))
    print_notes(notes)
    return 0
