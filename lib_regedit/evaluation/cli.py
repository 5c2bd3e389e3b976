"""``python -m lib_regedit eval``: plain multi-object prompt against region prompts on ShapesWorld.

For each fixed layout and seed:

- **plain**: the whole caption ("a red circle and a blue square") with no regions;
- **defaults**: what a new user writes, the whole caption and one region per object and nothing
  else, so every setting is the document's default (version 2: the rest of the prompt outside the
  boxes, layout init); **old defaults**: the same document at version 1 (the whole prompt outside the
  boxes, noise init). ``--no-defaults`` leaves these two out;
- **regions**: the same caption as the whole prompt plus one region per object ("a red circle" in
  its box) and a background region with the model's blank caption, from the seed's noise, through
  ``lib_regedit.api.generate``;
- **regions+layout**: the same document with ``"init": "layout"``, the spatial-aware initial latent
  of ``lib_regedit.regions.layout_init`` (Sun et al. 2024);
- with ``--guidance [ETA]``, both region columns add layout guidance (``lib_regedit.regions.layout_guidance``).

Scores (see ``metrics.py``): per-box adherence (right colour and shape inside each box), the
centroid distance from the box centre (of the nearest right object, where one exists), and a
one-region edit: the first object's colour is changed and the image regenerated with the same seed;
SSIM between the two images inside that box (should drop) and outside it (should stay high).
Token localisation is read from the plain runs (a property of the model): per block, the attention
share of a colour or shape word on its detected object's pixels over their area share.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import RegEditError
from ..shapesworld.data import BLANK_CAPTION, COLOURS, caption_for, scene_for
from . import metrics
from .attention_probe import AttentionRecorder, block_of
from .detector import detect

# (colour, shape, box) per object; boxes are (x, y, w, h) image fractions, top-left origin.
LAYOUTS = [
    [("red", "circle", (0.05, 0.30, 0.40, 0.40)), ("blue", "square", (0.55, 0.30, 0.40, 0.40))],
    [("green", "triangle", (0.05, 0.05, 0.40, 0.40)), ("yellow", "circle", (0.55, 0.55, 0.40, 0.40))],
    [("blue", "circle", (0.30, 0.05, 0.40, 0.40)), ("red", "square", (0.30, 0.55, 0.40, 0.40))],
    [("yellow", "square", (0.05, 0.55, 0.40, 0.40)), ("green", "circle", (0.55, 0.05, 0.40, 0.40))],
    [("red", "triangle", (0.05, 0.30, 0.40, 0.40)), ("green", "square", (0.55, 0.30, 0.40, 0.40))],
    [("blue", "triangle", (0.55, 0.05, 0.40, 0.40)), ("yellow", "circle", (0.05, 0.55, 0.40, 0.40))],
    [("red", "circle", (0.03, 0.05, 0.32, 0.32)), ("green", "square", (0.65, 0.05, 0.32, 0.32)),
     ("blue", "triangle", (0.34, 0.60, 0.32, 0.32))],
    [("yellow", "triangle", (0.05, 0.60, 0.32, 0.32)), ("blue", "circle", (0.34, 0.05, 0.32, 0.32)),
     ("red", "square", (0.63, 0.60, 0.32, 0.32))],
]


HELD_OUT_SEED = 7  # the training data is seed 0


def held_out_layouts(n: int, seed: int = HELD_OUT_SEED) -> list:
    """``n`` layouts of 2-3 objects drawn by the data generator from a seed training never saw. Their
    boxes fit the shapes tightly and run down to 0.2 of the image, so they are harder than ``LAYOUTS``."""
    layouts, index = [], 1000
    while len(layouts) < n:
        scene = scene_for(seed, index)
        index += 1
        if len(scene.objects) >= 2:
            layouts.append([(o.colour, o.shape, o.box) for o in scene.objects])
    return layouts


def region_document(layout, prompt: str | None = None, background: str | None = BLANK_CAPTION,
                    mode: str | None = None, init: str | None = None, guidance: dict | None = None) -> dict:
    """One region per object; the whole caption as the whole prompt; a background region saying
    "a blank background" (the model's caption for shape-less scenes) unless ``background`` is None."""
    phrases = [f"a {c} {s}" for c, s, _ in layout]
    regions = [{"x": b[0], "y": b[1], "w": b[2], "h": b[3], "prompt": p} for p, (_, _, b) in zip(phrases, layout)]
    if background:
        regions.append({"x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0, "prompt": background, "role": "background"})
    doc = {"prompt": prompt if prompt is not None else caption_for(phrases), "negative_prompt": "",
           "regions": regions}
    if mode:
        doc["mode"] = mode
    if init:
        doc["init"] = init
    if guidance:
        doc["guidance"] = guidance
    return doc


def edited(layout):
    """The layout with the first object's colour changed to the next palette colour."""
    names = list(COLOURS)
    c, s, b = layout[0]
    new = names[(names.index(c) + 1) % len(names)]
    if any(new == oc and s == os_ for oc, os_, _ in layout[1:]):
        new = names[(names.index(c) + 2) % len(names)]
    return [(new, s, b)] + list(layout[1:])


class Generator:
    """Plain and region generation through ``lib_regedit.api`` (falls back to the bare pipeline for plain)."""

    def __init__(self, pipe, steps: int, cfg: float, size: int):
        self.pipe, self.steps, self.cfg, self.size = pipe, steps, cfg, size
        try:
            from .. import api
            self.api = api
        except ImportError:
            self.api = None

    def plain(self, prompt: str, seed: int):
        if self.api is not None:
            return self.api.generate_plain(self.pipe, prompt, seed=seed, steps=self.steps, guidance_scale=self.cfg,
                                           width=self.size, height=self.size).image
        import torch
        return self.pipe(prompt, num_inference_steps=self.steps, guidance_scale=self.cfg, width=self.size,
                         height=self.size, generator=torch.Generator().manual_seed(seed)).images[0]

    def regions(self, document: dict, seed: int):
        if self.api is None:
            return None
        return self.api.generate(self.pipe, document, seed=seed, steps=self.steps, guidance_scale=self.cfg,
                                 width=self.size, height=self.size).image


def token_positions(tokenizer, prompt: str, word: str) -> list[int]:
    ids = tokenizer(prompt).input_ids
    wid = tokenizer(word, add_special_tokens=False).input_ids
    if len(wid) != 1:
        return []
    return [i for i, t in enumerate(ids) if t == wid[0]]


def localisation_scores(recorder: AttentionRecorder, tokenizer, prompt: str, layout, detections) -> dict:
    """{(block, 'colour'|'shape'): [ratios]} for the words of objects that the detector found."""
    out: dict = {}
    for colour, shape, _ in layout:
        for kind, word in (("colour", colour), ("shape", shape)):
            if kind == "colour":
                objs = [d for d in detections if d.colour == colour]
            else:
                objs = [d for d in detections if d.shape == shape and d.colour == colour] or \
                       [d for d in detections if d.shape == shape]
            if not objs:
                continue
            mask = np.logical_or.reduce([d.mask for d in objs])
            for pos in token_positions(tokenizer, prompt, word):
                for layer in recorder.layers():
                    r = metrics.localisation_ratio(recorder.maps(layer)[pos], mask)
                    if not math.isnan(r):
                        out.setdefault((block_of(layer), kind), []).append(r)
    return out


def load(model: str | None):
    from ..models import default_model_path, load_pipeline
    path = Path(model) if model else default_model_path()
    pipe = load_pipeline(path)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def evaluate(pipe, *, seeds=(0, 1, 2), steps: int = 20, cfg: float = 7.5, size: int | None = None,
             layouts=None, image_dir: Path | None = None, background: str | None = BLANK_CAPTION,
             mode: str | None = None, inits=("noise", "layout"), guidance: dict | None = None,
             defaults_rows: bool = False, log=print) -> dict:
    size = size or pipe.unet.config.sample_size * (2 ** (len(pipe.vae.config.block_out_channels) - 1))
    layouts = layouts or LAYOUTS
    gen = Generator(pipe, steps, cfg, size)
    latent = size // (2 ** (len(pipe.vae.config.block_out_channels) - 1))
    columns = {"noise": "regions", "layout": "regions+layout"}
    if guidance:
        columns = {k: v + "+guidance" for k, v in columns.items()}
    defaults = {"defaults": {}, "old defaults": {"version": 1}} if defaults_rows else {}
    rows = {m: {"adherence": [], "centroid": [], "ssim_in": [], "ssim_out": []}
            for m in ["plain"] + list(defaults) + [columns[i] for i in inits]}
    loc: dict = {}
    t0 = time.time()
    for li, layout in enumerate(layouts):
        prompt = region_document(layout)["prompt"]
        edit_prompt = region_document(edited(layout))["prompt"]
        docs = {init: (region_document(layout, background=background, mode=mode, init=init, guidance=guidance),
                       region_document(edited(layout), background=background, mode=mode, init=init,
                                       guidance=guidance))
                for init in inits}
        for column, fields in defaults.items():
            docs[column] = tuple(dict(region_document(lay, background=None), **fields) for lay in (layout, edited(layout)))
        for seed in seeds:
            with AttentionRecorder(pipe.unet, (latent, latent)) as rec:
                plain = gen.plain(prompt, seed)
            dets = detect(plain)
            for key, vals in localisation_scores(rec, pipe.tokenizer, prompt, layout, dets).items():
                loc.setdefault(key, []).extend(vals)
            images = {"plain": (plain, gen.plain(edit_prompt, seed))}
            for key, (doc, doc_edit) in docs.items():
                reg = gen.regions(doc, seed)
                if reg is not None:
                    images[columns.get(key, key)] = (reg, gen.regions(doc_edit, seed))
            for column, (img, img_edit) in images.items():
                d = dets if column == "plain" else detect(img)
                for colour, shape, box in layout:
                    rows[column]["adherence"].append(metrics.box_adherence(d, box, colour, shape))
                    rows[column]["centroid"].append(metrics.centroid_distance(d, box, colour, shape))
                s_in, s_out = metrics.region_ssim(img, img_edit, layout[0][2])
                rows[column]["ssim_in"].append(s_in)
                rows[column]["ssim_out"].append(s_out)
                if image_dir is not None:
                    image_dir.mkdir(parents=True, exist_ok=True)
                    name = column.replace(" ", "_")
                    img.save(image_dir / f"layout{li}_seed{seed}_{name}.png")
                    img_edit.save(image_dir / f"layout{li}_seed{seed}_{name}_edit.png")
        log(f"layout {li + 1}/{len(layouts)} done ({time.time() - t0:.0f}s)")
    return summarise(rows, loc)


def _mean(xs):
    xs = [float(x) for x in xs if not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else float("nan")


def summarise(rows: dict, loc: dict) -> dict:
    out = {"modes": {}, "localisation": {}}
    for mode, r in rows.items():
        if not r["adherence"]:
            continue
        found = [c for c in r["centroid"] if not math.isnan(c)]
        out["modes"][mode] = {"boxes": len(r["adherence"]), "adherence": _mean(r["adherence"]),
                              "centroid_distance": _mean(found), "objects_found": len(found) / len(r["centroid"]),
                              "edit_ssim_inside": _mean(r["ssim_in"]), "edit_ssim_outside": _mean(r["ssim_out"])}
    for (block, kind), vals in sorted(loc.items()):
        out["localisation"].setdefault(block, {})[kind] = {"ratio": _mean(vals), "n": len(vals)}
    return out


def format_table(summary: dict) -> str:
    lines = ["mode                     boxes  adherence  centroid_dist  found  edit_SSIM_in  edit_SSIM_out"]
    for mode, m in summary["modes"].items():
        lines.append(f"{mode:23s}  {m['boxes']:5d}  {m['adherence']:9.3f}  {m['centroid_distance']:13.3f}  "
                     f"{m['objects_found']:5.2f}  {m['edit_ssim_inside']:12.3f}  {m['edit_ssim_outside']:13.3f}")
    modes = summary["modes"]
    for column in modes:
        if column != "plain" and "plain" in modes:
            gain = modes[column]["adherence"] - modes["plain"]["adherence"]
            lines.append(f"adherence gain ({column} - plain): {gain:+.3f}")
    lines.append("")
    lines.append("token localisation (plain prompt; attention share on object / area share, 1.0 = none)")
    lines.append("block            colour_words   shape_words")
    for block, kinds in summary["localisation"].items():
        c = kinds.get("colour", {}).get("ratio", float("nan"))
        s = kinds.get("shape", {}).get("ratio", float("nan"))
        lines.append(f"{block:15s}  {c:12.2f}  {s:12.2f}")
    return "\n".join(lines)


def main(argv=None, prog: str = "python -m lib_regedit eval") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="diffusers folder or .safetensors (default: bundled ShapesWorld)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=7.5)
    p.add_argument("--layouts", type=int, default=len(LAYOUTS), help="use the first N layouts")
    p.add_argument("--held-out", type=int, default=0, metavar="N",
                   help=f"instead of the fixed layouts, N layouts from the data generator's seed {HELD_OUT_SEED} "
                        "(training used seed 0)")
    p.add_argument("--images", default=None, help="folder to save every generated image")
    p.add_argument("--json", default=None, help="write the summary as JSON here")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--background", default=BLANK_CAPTION,
                   help="prompt of the background region ('' for none: the whole prompt fills the background)")
    p.add_argument("--mode", choices=("attention", "latent"), default=None, help="region fusion mode")
    p.add_argument("--init", choices=("noise", "layout", "both"), default="both",
                   help="initial latent of the region runs: the seed's noise, layout init, or both columns")
    p.add_argument("--guidance", nargs="?", type=float, const=30.0, metavar="ETA",
                   help="add layout guidance (eta, default 30) to the region runs")
    p.add_argument("--drag", action="store_true",
                   help="evaluate RegionDrag instead (lib_regedit/evaluation/drag_eval.py): success, SSIM outside, time")
    p.add_argument("--drag-cases", type=int, default=16, help="with --drag: how many cases")
    p.add_argument("--lime", action="store_true",
                   help="evaluate LIME instead (lib_regedit/evaluation/lime_eval.py): edit right, rest unchanged")
    p.add_argument("--lime-cases", type=int, default=60, help="with --lime: how many edit pairs (default 60)")
    p.add_argument("--lime-skip", type=int, default=0,
                   help="with --lime: start after this many pairs (60: the next 60, which took no part in choosing "
                        "LIME's defaults)")
    p.add_argument("--instruct-model", default=None,
                   help="with --lime: the instruct-pix2pix model (default: the bundled ShapesWorld instruct model); "
                        "--model is the ordinary one")
    p.add_argument("--edit", action="store_true",
                   help="evaluate region editing instead (lib_regedit/evaluation/edit_eval.py): SSIM-i, SSIM-e, "
                        "edit right, per edit kind, against regenerating and prompt-to-prompt")
    p.add_argument("--edit-methods", default=None, metavar="LIST",
                   help="with --edit: which methods, comma-separated (default all: regenerate, prompt-to-prompt, "
                        "MRGD (keep off), ours, ours + guidance)")
    p.add_argument("--segmenter", default=None,
                   help="with --edit: a CLIPSeg folder for the guided column (e.g. models/shapesworld_clipseg)")
    p.add_argument("--inversion", action="store_true",
                   help="evaluate real-image inversion instead (lib_regedit/evaluation/inversion_eval.py): "
                        "reconstruction PSNR and time, and region edits on rendered pictures, per inversion")
    p.add_argument("--inversions", default="ddim,negative,nulltext",
                   help="with --inversion: which inversions, comma-separated")
    p.add_argument("--nulltext-lr", type=float, default=1e-2, help="with --inversion: null-text's learning rate")
    p.add_argument("--picture-background", default=None, metavar="TEXT",
                   help="with --inversion: describe the pictures' background with a background region, e.g. "
                        "'a blank background'")
    p.add_argument("--fixed-point", type=int, default=None,
                   help="with --inversion: fixed-point refinements per inversion step (default 1)")
    p.add_argument("--no-defaults", action="store_true",
                   help="leave out the rows of a document with only regions (the defaults, and version 1's)")
    args = p.parse_args(argv)
    for name, value, lo in (("--lime-cases", args.lime_cases, 1), ("--lime-skip", args.lime_skip, 0)):
        if value < lo:
            raise RegEditError(name, f"{value} is out of range", f"use a whole number >= {lo}")
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    pipe = load(args.model)
    if args.lime:
        from ..models import default_instruct_model_path, load_pipeline
        from . import lime_eval

        instruct = load_pipeline(args.instruct_model or default_instruct_model_path(), field="--instruct-model",
                                 instruct=True)
        for p_ in (pipe, instruct):
            p_.set_progress_bar_config(disable=True)
        lime_summary = lime_eval.evaluate(instruct, pipe, n=args.lime_cases, steps=args.steps, cfg=args.cfg,
                                          skip=args.lime_skip, log=lambda m: print(m, file=sys.stderr))
        return _report(lime_summary, lime_eval.format_table(lime_summary), args)
    if args.edit:
        from . import edit_eval

        segmenter = None
        if args.segmenter:
            from ..editing.segmenter import load_segmenter

            segmenter = load_segmenter(args.segmenter)
        edit_summary = edit_eval.evaluate(pipe, layouts=edit_eval_layouts(args),
                                          seeds=[int(s) for s in args.seeds.split(",")], steps=args.steps,
                                          cfg=args.cfg, segmenter=segmenter, methods=_edit_methods(args),
                                          image_dir=Path(args.images) if args.images else None,
                                          log=lambda m: print(m, file=sys.stderr))
        return _report(edit_summary, edit_eval.format_table(edit_summary), args)
    if args.inversion:
        from ..inversion.invert import check_method
        from ..inversion.null_text import NullTextOptions
        from . import inversion_eval

        methods = [check_method(m.strip()) for m in args.inversions.split(",") if m.strip()]
        summary = inversion_eval.evaluate(pipe, edit_eval_layouts(args), methods=methods, steps=args.steps,
                                          cfg=args.cfg, nulltext=NullTextOptions(10, args.nulltext_lr),
                                          fixed_point=args.fixed_point, background=args.picture_background,
                                          image_dir=Path(args.images) if args.images else None,
                                          log=lambda m: print(m, file=sys.stderr))
        return _report(summary, inversion_eval.format_table(summary), args)
    if args.drag:
        from . import drag_eval

        drag_summary = drag_eval.evaluate(pipe, n=args.drag_cases, image_dir=Path(args.images) if args.images else None,
                                          log=lambda m: print(m, file=sys.stderr))
        return _report(drag_summary, drag_eval.format_table(drag_summary), args)
    summary = evaluate(pipe, seeds=[int(s) for s in args.seeds.split(",")], steps=args.steps, cfg=args.cfg,
                       layouts=held_out_layouts(args.held_out) if args.held_out else LAYOUTS[:args.layouts],
                       image_dir=Path(args.images) if args.images else None,
                       background=args.background or None, mode=args.mode,
                       inits=("noise", "layout") if args.init == "both" else (args.init,),
                       guidance={"scale": args.guidance} if args.guidance is not None else None,
                       defaults_rows=not args.no_defaults, log=lambda m: print(m, file=sys.stderr))
    return _report(summary, format_table(summary), args)


def _report(summary: dict, table: str, args) -> int:
    """The table on stdout, and the summary as JSON where ``--json`` says."""
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0


def _edit_methods(args) -> list | None:
    from .edit_eval import METHODS

    if not args.edit_methods:
        return None
    methods = [m.strip() for m in args.edit_methods.split(",") if m.strip()]
    for m in methods:
        if m not in METHODS:
            raise RegEditError("--edit-methods", f"{m!r} is not a method", f"use some of: {', '.join(METHODS)}")
    return methods


def edit_eval_layouts(args) -> list:
    from .edit_eval import layouts_for

    return layouts_for(args.held_out)[:args.layouts]


if __name__ == "__main__":
    from ..cli import main as cli_main  # its RegEditError handler prints the message

    sys.exit(cli_main(["eval", *sys.argv[1:]]))
