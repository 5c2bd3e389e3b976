"""Command line: ``regedit generate|drag|edit|edit-regions|eval`` (also ``python -m lib_regedit``;
``drag`` lives in ``lib_regedit/drag/cli.py``, ``edit`` in ``lib_regedit/lime/cli.py``, ``edit-regions``
in ``lib_regedit/editing/cli.py``).

Every command keeps one discipline:

- its options are read and checked before torch, diffusers and the model load (``--help`` and a bad
  option answer at once), and bad input ends in one ``RegEdit:`` line naming the field and the fix;
- a mistyped option prints that command's own usage;
- it writes PNG files only, each carrying the parameters text that makes it again (its folder is made);
- its progress is tqdm bars on stderr, one per phase with its true total (``lib_regedit.progress``);
- an input it leaves unread, or changes, is named in a note.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import RegEditError

PROG = "python -m lib_regedit"


def _generate(args) -> int:
    from dataclasses import replace

    from .documents import parse_region_document
    from .documents.region import check_one_image

    _check_arguments(args)
    out = output_png(args.out, "--out")
    preview = output_png(args.preview, "--preview") if args.preview else None
    text, untagged = _read_regions(args.regions)
    notes = []
    if args.mask_image is not None:
        text, notes = with_mask_image(text, args.mask_image, f"--regions {args.regions}")
    document = parse_region_document(text, field=f"--regions {args.regions}", untagged_version=untagged)
    if document is None:
        raise RegEditError("--regions", f"{args.regions} is empty",
                           "write a region document (see examples/two_shapes.json)")
    check_one_image(document, f"run `{args.prog} edit-regions --regions {args.regions} --out-source SOURCE.png "
                              "--out-target TARGET.png` for the pair, or remove the region's \"edit\" (and "
                              "\"target_prompt\") to generate one image")
    document = _with_kssa_options(document, args)
    if args.init:
        document = replace(document, init=args.init)
    if args.guidance is not None:
        data = document.to_dict()
        data["guidance"] = dict(data["guidance"], enabled=True, scale=args.guidance)
        document = replace(document, guidance=parse_region_document(data, field="--guidance").guidance)
    if args.lora_dir is not None and not Path(args.lora_dir).is_dir():
        raise RegEditError("--lora-dir", f"{args.lora_dir} is not a folder", "give the folder that holds your LoRA files")
    model = model_path(args)
    pipe = load_model(model, config=args.config)
    from .api import generate
    from .preview import draw_layout

    loras = None
    if args.lora_dir is not None:
        from .regions.lora_files import DiffusersLoras

        loras = DiffusersLoras.from_folder(pipe, args.lora_dir)
    result = generate(pipe, document, seed=args.seed, steps=args.steps, guidance_scale=args.cfg,
                      width=args.width, height=args.height, mode=args.mode, model_name=model.name,
                      allow_large=args.allow_large, loras=loras)
    save_png(result.image, out, result.pnginfo())
    print_notes(notes + result.extras.get("notes", []))
    if "keywords" in result.extras:
        for i, words in enumerate(result.extras["keywords"]):
            print(f"region {i + 1} keywords: {', '.join(words) or '-'}")
    if preview is not None:
        save_png(draw_layout(result.image, document), preview)
        if result.extras.get("keyword_maps"):
            from .preview import draw_keyword_maps

            maps_path = preview.with_name(preview.stem + "-keywords.png")
            save_png(draw_keyword_maps(result.image, document, result.extras["keyword_maps"],
                                       result.extras["keywords"]), maps_path)
    return 0


def output_png(value: str, flag: str) -> Path:
    """The path of an image the command writes: a ``.png``, checked before any work. RegEdit writes PNG
    only: its parameters text makes the image again (``--regions OUT.png``, the WebUI's PNG Info), and a
    JPEG or WebP would silently lose it."""
    path = Path(value)
    if path.suffix.lower() != ".png":
        raise RegEditError(flag, f"{value} is not a .png file: RegEdit writes PNG, whose parameters text makes the "
                                 "image again (a JPEG or WebP would lose it)",
                           f"name it {path.with_suffix('.png')} (convert a copy afterwards for another format)")
    return path


def save_png(image, path: Path, pnginfo=None, what: str = "") -> None:
    """Write ``image`` as a PNG at ``path`` (its folder made), and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", pnginfo=pnginfo)
    print(f"wrote {path}" + (f" ({what})" if what else ""))


def print_notes(notes) -> None:
    """What the user should know about a run (an input left unread, a setting changed): one line each."""
    for note in notes:
        print(f"note: {note}")


def load_model(path, *, config=None, instruct: bool = False):
    """``models.load_pipeline`` for a command: one loading bar (diffusers' components; the text
    encoders' own weight bars inside it are turned off)."""
    from transformers.utils import logging as transformers_logging

    from . import models

    transformers_logging.disable_progress_bar()
    return models.load_pipeline(path, config=config, field="--model", instruct=instruct)


def read_image(path: str, flag: str, mask: bool = False):
    """The picture file at ``path`` in 8-bit RGB (``mask``: a mask, in 8-bit grey), by the one rule of
    every command (:mod:`lib_regedit.images`), or a message naming ``flag`` (``--image``) before any work."""
    from PIL import Image, UnidentifiedImageError

    from .images import to_mask, to_rgb

    try:
        image = Image.open(path)
        image.load()
    except (OSError, UnidentifiedImageError) as exc:
        raise RegEditError(flag, f"cannot read {path} as an image ({exc})", "give a PNG or JPEG file") from None
    return to_mask(image, flag) if mask else to_rgb(image, flag)


def with_mask_image(text: str, path: str, field: str) -> tuple[dict, list[str]]:
    """The document ``text`` with the picture at ``path`` as its ``mask_image`` (its colours named by the
    regions' ``colour``), and a note when the document recorded another picture's SHA-256."""
    from PIL import Image, UnidentifiedImageError

    from .documents.fields import load_json_object

    obj = load_json_object(text, field)
    if obj is None:
        raise RegEditError("--regions", "the document is empty",
                           'write one whose regions name the picture\'s colours, e.g. {"regions": [{"colour": '
                           '"#ff0000", "prompt": "a red circle"}]}')
    try:
        with Image.open(path) as image:
            image.load()
            picture = image.copy()
    except (OSError, UnidentifiedImageError) as exc:
        raise RegEditError("--mask-image", f"cannot read {path} as a picture ({getattr(exc, 'strerror', None) or exc})",
                           "give a PNG painted in flat colours, one per region") from None
    recorded = obj.get("mask_image") if isinstance(obj.get("mask_image"), dict) else {}
    obj = dict(obj, mask_image=picture)
    notes = []
    if recorded.get("sha256"):
        from .documents.mask_picture import picture_from_image

        colours = [r.get("colour") for r in obj.get("regions", []) if isinstance(r, dict) and r.get("colour")]
        try:
            from .documents.mask_picture import normalise_colour

            digest = picture_from_image(picture, [normalise_colour(c, "") for c in colours], "--mask-image").digest
        except RegEditError:
            digest = None
        if digest is not None and digest != recorded["sha256"]:
            notes.append(f"--mask-image: {path} is not the picture the document recorded (its SHA-256 differs)")
    return obj, notes


def _read_regions(path: str) -> tuple[str, int]:
    """The document text, and the version a document without one is read as: a JSON file is read as
    today's; a PNG's parameters text (ours or the WebUI's) was written before versions existed when it
    has none, so it keeps the defaults it was made with."""
    from PIL import Image, UnidentifiedImageError

    from .documents.region import VERSION
    from .infotext import regions_entry

    fix = "give a region document (a JSON file; see examples/two_shapes.json) or a PNG made with RegEdit"
    if Path(path).suffix.lower() == ".png":
        try:
            with Image.open(path) as image:
                parameters = image.text.get("parameters", "")
        except (OSError, UnidentifiedImageError) as exc:
            raise RegEditError("--regions", f"cannot read {path} as a PNG ({exc})", fix)
        entry = regions_entry(parameters)
        if entry is None:
            raise RegEditError("--regions", f"{path} carries no RegEdit regions in its parameters", fix)
        return entry, 1
    try:
        return Path(path).read_text(encoding="utf-8"), VERSION
    except (OSError, UnicodeDecodeError) as exc:
        raise RegEditError("--regions", f"cannot read {path} ({getattr(exc, 'strerror', None) or exc})", fix)


def model_path(args) -> Path:
    """``--model``, or the bundled ShapesWorld model, which must then be there."""
    from .models import default_model_path

    if args.model:
        return Path(args.model)
    model = default_model_path()
    if not (model / "model_index.json").exists():
        raise RegEditError("--model", f"the bundled model is not at {model} (an installed package has no checkout "
                                      "beside it)", "pass --model PATH, or set REGEDIT_MODEL to a checkout's "
                                                    "models/shapesworld")
    return model


def _check_arguments(args) -> None:
    """What can be checked before the model loads; the rest (sizes against the model's native size,
    steps against its schedule) is checked by ``api.generate`` before sampling."""
    from . import generation_limits as limits

    limits.check_seed(args.seed, "--seed")
    limits.check_steps(args.steps, 1000, "--steps")
    limits.check_guidance_scale(args.cfg, "--cfg")
    for name in ("width", "height"):
        if getattr(args, name) is not None:
            limits.check_side(getattr(args, name), limits.PIPELINE_MULTIPLE, f"--{name}")
    for name in ("regions", "config", "mask_image"):
        value = getattr(args, name)
        if value and not Path(value).exists():
            raise RegEditError(f"--{name.replace('_', '-')}", f"{value} does not exist", "check the path")


def _with_kssa_options(document, args):
    """--kssa and its options override the document's ``kssa`` object."""
    from dataclasses import replace

    from .documents import parse_region_document

    given = {k: v for k, v in (("keywords", args.keywords), ("scale", args.kssa_scale), ("reweight", args.kssa_reweight),
                               ("levels", args.kssa_levels.split(",") if args.kssa_levels else None)) if v is not None}
    if not args.kssa and not given:
        return document
    data = document.to_dict()
    data["kssa"] = dict(data["kssa"], enabled=True, **given)
    return replace(document, kssa=parse_region_document(data, field="--kssa options").kssa)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The command line's parser. Its ``subcommands`` are the commands' own parsers, whose usage a
    mistyped option prints (:func:`main`)."""
    parser = argparse.ArgumentParser(prog=prog, description="Region-level control for Stable Diffusion.")
    parser.set_defaults(prog=prog)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate an image from a region document")
    gen.add_argument("--regions", required=True,
                     help="region document (JSON file), or a PNG made with RegEdit (its document, its defaults)")
    gen.add_argument("--mask-image", metavar="PNG",
                     help="a mask picture painted in flat colours: each colour is the region of the document whose "
                          "\"colour\" names it (docs/documents.md, *Regions of any shape*)")
    gen.add_argument("--out", required=True, help="output PNG (carries the parameters text)")
    gen.add_argument("--model", help="diffusers folder or single-file checkpoint (default: the bundled ShapesWorld)")
    gen.add_argument("--config", help="for a single-file --model: a diffusers folder with the component configs")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--steps", type=int, default=20)
    gen.add_argument("--cfg", type=float, default=7.5, help="classifier-free guidance scale")
    gen.add_argument("--width", type=int)
    gen.add_argument("--height", type=int)
    gen.add_argument("--mode", choices=["attention", "latent"], help="override the document's mode")
    gen.add_argument("--init", choices=["auto", "noise", "layout"],
                     help="override the document's init: layout = spatial-aware initial latent from the boxes")
    gen.add_argument("--guidance", nargs="?", type=float, const=30.0, metavar="ETA",
                     help="layout guidance: backward guidance on each region's attention maps (eta, default 30)")
    gen.add_argument("--allow-large", action="store_true",
                     help="allow sizes beyond 4x the model's native area (refused by default: hours and GBs)")
    gen.add_argument("--preview", help="also write the layout preview (boxes over the result) here")
    gen.add_argument("--lora-dir", help="a folder of LoRA .safetensors: a region's <lora:NAME:WEIGHT> (NAME: the "
                                        "file name without .safetensors) applies to that region")
    gen.add_argument("--kssa", action="store_true", help="keyword selection + keyword-selected self-attention (MRGD)")
    gen.add_argument("--keywords", type=int, help="keywords kept per region (N, default 15); implies --kssa")
    gen.add_argument("--kssa-scale", type=float, help="KSSA scale (default 1.5); implies --kssa")
    gen.add_argument("--kssa-reweight", choices=["logit", "softmax"], help="pre-softmax (default) or post-softmax")
    gen.add_argument("--kssa-levels", help="comma-separated UNet levels for KSSA: down,mid,up (default down)")
    gen.set_defaults(func=_generate)
    from .drag.cli import add_parser as add_drag_parser

    add_drag_parser(sub)
    from .lime.cli import add_parser as add_edit_parser

    add_edit_parser(sub)
    from .editing.cli import add_parser as add_edit_regions_parser

    add_edit_regions_parser(sub)
    ev = sub.add_parser("eval", help="ShapesWorld evaluation: plain prompt against regions", add_help=False)
    ev.set_defaults(func=None)
    parser.subcommands = sub.choices
    return parser


def console() -> None:
    """The ``regedit`` command that ``pip install .`` (and ``setup.sh``) puts on the PATH."""
    run_as_command("regedit")


def run_as_command(prog: str) -> None:
    """Run :func:`main` as this process's command (``regedit``, ``python -m lib_regedit``) and exit.

    Two things only a whole process may decide. OpenMP's idle threads sleep rather than spin
    (``OMP_WAIT_POLICY=PASSIVE`` unless the user set it): on a small machine shared with other work,
    spinning threads made a 64x64 generation 15x slower. And once the outputs are written and the
    streams flushed, the process ends without tearing down the ~3,400 modules torch, diffusers and
    transformers import (a second on 2 cores, spent on nothing the user sees)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its threads
    code = main(prog=prog)
    if "torch" in sys.modules:
        import atexit

        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        atexit._run_exitfuncs()  # what the libraries registered still runs
        os._exit(code)
    sys.exit(code)


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "eval":
            from .evaluation.cli import main as eval_main

            return eval_main(argv[1:], prog=f"{prog} eval")
        parser = build_parser(prog)
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # argparse would print the top-level usage; the command's own is the useful one
            parser.subcommands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
        return args.func(args)
    except RegEditError as exc:
        print(str(exc), file=sys.stderr)
        return 2
