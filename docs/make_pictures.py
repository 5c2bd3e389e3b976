"""Makes every picture of the README and of docs/ that shows a feature, from the bundled models.

    .venv/bin/python docs/make_pictures.py            # examples' input pictures, then docs/images/*.png

It first draws the input pictures that come with the examples (``examples/*.png``: ShapesWorld scenes
drawn by the data generator's renderer, so the model never made them), then runs the same commands as
the README (``python -m lib_regedit ...``, here in-process through ``lib_regedit.cli.main``) into a
temporary folder, and lays their inputs and results side by side, enlarged pixel for pixel (NEAREST)
so a 64×64 image is legible. Nothing is retouched: what the commands write is what the pictures show.

Not made here: ``docs/images/peers_seed_sweep.png`` (the real WebUI beside other extensions,
``tests/e2e/peers_bench.py``) and ``docs/images/seed_sweep_*.png`` (docs/placement.md's study).

This is a standalone script: the engine never imports it.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from PIL import Image, ImageDraw, ImageFont  # noqa: E402

IMAGES = ROOT / "docs" / "images"
EXAMPLES = ROOT / "examples"
SIDE = 256  # a 64×64 result is shown 4× enlarged
SMALL = 128  # the overview's tiles
FONT = ImageFont.load_default(size=14)
LABEL_FONT = ImageFont.load_default(size=11)  # labels inside boxes
GAP = 6
BOX_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231"]  # lib_regedit.preview's first four


# ---------------------------------------------------------------- the examples' input pictures

def example_pictures() -> None:
    """``examples/NAME.png`` is the input picture of ``examples/NAME.json``: its shapes sit inside the
    document's boxes (inset by 3% of the side), on the renderer's white background."""
    from lib_regedit.shapesworld.data import COLOURS, Scene, ShapeObject, render

    def scene(*objects):
        return Scene((250, 250, 250), tuple(ShapeObject(shape, colour, box, COLOURS[colour])
                                            for shape, colour, box in objects))

    def inset(box, margin=0.03):
        x, y, w, h = box
        return (x + margin, y + margin, w - 2 * margin, h - 2 * margin)

    pictures = {
        # edit_change.json's boxes: a red circle left, a green square right
        "edit_change": scene(("circle", "red", inset((0.05, 0.3, 0.4, 0.4))),
                             ("square", "green", inset((0.55, 0.3, 0.4, 0.4)))),
        # edit_add_remove.json's boxes: a red circle top left, a green square bottom right, the top right free
        "edit_add_remove": scene(("circle", "red", inset((0.05, 0.05, 0.4, 0.4))),
                                 ("square", "green", inset((0.55, 0.55, 0.4, 0.4)))),
        # drag_square.json: the handle quad (0.1-0.45 on both axes) holds the red circle, the target quad
        # (0.5-0.85) is free, the blue square stays out of both
        "drag_square": scene(("circle", "red", inset((0.1, 0.1, 0.35, 0.35))),
                             ("square", "blue", (0.6, 0.1, 0.3, 0.3))),
    }
    for name, s in pictures.items():
        render(s).save(EXAMPLES / f"{name}.png")
        print(f"wrote examples/{name}.png")


# ---------------------------------------------------------------- running the commands

class Runner:
    """Runs ``python -m lib_regedit ...`` command lines in-process with ``out/`` redirected to a
    temporary folder, and opens what they wrote."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __call__(self, command: str) -> None:
        from lib_regedit.cli import main

        words = shlex.split(command)
        assert words[:3] == ["python", "-m", "lib_regedit"], command
        argv = [str(self.folder / w[4:]) if w.startswith("out/") else w for w in words[3:]]
        print(f"$ {command}", flush=True)
        code = main(argv)
        if code != 0:
            raise SystemExit(f"{command} exited with {code}")

    def image(self, name: str) -> Image.Image:
        return Image.open(self.folder / name).convert("RGB")


# ---------------------------------------------------------------- laying pictures out

def enlarge(image: Image.Image, side: int = SIDE) -> Image.Image:
    scale = max(1, side // max(image.size))
    if image.width * scale != side and max(image.size) < side:
        return image.resize((side * image.width // max(image.size), side * image.height // max(image.size)),
                            Image.NEAREST)
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST) if scale > 1 else image


def boxes(image: Image.Image, regions, labels: bool = False) -> Image.Image:
    """Outlines of the document's boxes (fractions, top-left origin) over an enlarged image."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    for i, r in enumerate(regions):
        colour = r.get("colour", BOX_COLOURS[i % len(BOX_COLOURS)])
        x0, y0 = r["x"] * out.width, r["y"] * out.height
        x1, y1 = (r["x"] + r["w"]) * out.width - 1, (r["y"] + r["h"]) * out.height - 1
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=2)
        if labels and r.get("label"):
            tag(draw, (x0 + 2, y0 + 2), r["label"], colour)
    return out


def tag(draw: ImageDraw.ImageDraw, at, text: str, colour: str) -> None:
    """A small label on a white patch, legible over any shape."""
    width = draw.textlength(text, font=LABEL_FONT)
    draw.rectangle((at[0], at[1], at[0] + width + 3, at[1] + 13), fill="white")
    draw.text((at[0] + 2, at[1]), text, fill=colour, font=LABEL_FONT)


def polygons(image: Image.Image, pairs) -> Image.Image:
    """A drag document's handle (red) and target (green) polygons over an enlarged image."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    for pair in pairs:
        for part, colour in (("handle", "#e6194b"), ("target", "#3cb44b")):
            points = [(x * out.width, y * out.height) for x, y in pair[part]["points"]]
            draw.line(points + points[:1], fill=colour, width=2)
            tag(draw, (points[0][0] + 2, points[0][1] + 2), part, colour)
    return out


def labelled(image: Image.Image, label: str) -> Image.Image:
    """The image under a one-line label."""
    height = 20
    width = max(image.width, int(ImageDraw.Draw(image).textlength(label, font=FONT)) + 6)
    out = Image.new("RGB", (width, image.height + height), "white")
    out.paste(image, ((width - image.width) // 2, height))
    ImageDraw.Draw(out).text((3, 2), label, fill="black", font=FONT)
    return out


def row(images, gap: int = GAP, arrow: bool = False) -> Image.Image:
    space = 28 if arrow else gap
    height = max(i.height for i in images)
    out = Image.new("RGB", (sum(i.width for i in images) + space * (len(images) - 1), height), "white")
    x = 0
    draw = ImageDraw.Draw(out)
    for n, image in enumerate(images):
        out.paste(image, (x, 0))
        x += image.width
        if arrow and n < len(images) - 1:
            y = 20 + (height - 20) // 2
            draw.line((x + 5, y, x + space - 6, y), fill="black", width=2)
            draw.polygon([(x + space - 6, y - 5), (x + space - 6, y + 5), (x + space - 1, y)], fill="black")
        x += space
    return out


def column(images, gap: int = GAP) -> Image.Image:
    width = max(i.width for i in images)
    out = Image.new("RGB", (width, sum(i.height for i in images) + gap * (len(images) - 1)), "white")
    y = 0
    for image in images:
        out.paste(image, (0, y))
        y += image.height + gap
    return out


def with_row_label(image: Image.Image, label: str, width: int = 150) -> Image.Image:
    out = Image.new("RGB", (image.width + width, image.height), "white")
    out.paste(image, (width, 0))
    draw = ImageDraw.Draw(out)
    y = 20 + (image.height - 20) // 2 - 18
    for k, line in enumerate(label.split("\n")):
        draw.text((4, y + 17 * k), line, fill="black", font=FONT)
    return out


def save(image: Image.Image, name: str) -> None:
    path = IMAGES / name
    image.save(path, optimize=True)
    print(f"wrote {path.relative_to(ROOT)} ({image.width}×{image.height}, {path.stat().st_size // 1024} kB)")


# ---------------------------------------------------------------- the pictures

def outlines(image: Image.Image, regions) -> Image.Image:
    """Outlines of the document's shapes (polygons, brush dots and strokes) over an enlarged image."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    W, H = out.size
    for i, r in enumerate(regions):
        colour, shape = BOX_COLOURS[i % len(BOX_COLOURS)], r["shape"]
        if shape["type"] == "polygon":
            draw.polygon([(x * W, y * H) for x, y in shape["points"]], outline=colour, width=2)
            continue
        for stroke in shape["strokes"]:
            radius = stroke["radius"] * W
            for x, y in stroke["points"]:
                draw.ellipse((x * W - radius, y * H - radius, x * W + radius, y * H + radius), outline=colour, width=2)
    return out


def shape_pictures(run: Runner) -> None:
    """Regions of any shape (docs/documents.md): a triangle and a circle in its empty corner, whose boxes
    overlap, drawn as boxes, as shapes and as a mask picture, seeds 1-4."""
    import json

    seeds = (1, 2, 3, 4)
    for seed in seeds:
        run(f"python -m lib_regedit generate --regions examples/overlap_boxes.json --seed {seed} "
            f"--out out/overlap-boxes-{seed}.png")
        run(f"python -m lib_regedit generate --regions examples/overlap_shapes.json --seed {seed} "
            f"--out out/overlap-shapes-{seed}.png")
        run(f"python -m lib_regedit generate --regions examples/overlap_colours.json --mask-image "
            f"examples/overlap_mask.png --seed {seed} --out out/overlap-mask-{seed}.png")
    box_regions = json.loads((EXAMPLES / "overlap_boxes.json").read_text())["regions"]
    shape_regions = json.loads((EXAMPLES / "overlap_shapes.json").read_text())["regions"]
    mask = Image.open(EXAMPLES / "overlap_mask.png").convert("RGB").resize((160, 160), Image.NEAREST)

    def sweep(prefix, draw):
        return row([labelled(draw(enlarge(run.image(f"overlap-{prefix}-{s}.png"), 160)), f"seed {s}") for s in seeds])

    save(column([with_row_label(sweep("boxes", lambda t: boxes(t, box_regions)), "boxes"),
                 with_row_label(sweep("shapes", lambda t: outlines(t, shape_regions)), "shapes"),
                 with_row_label(row([labelled(mask, "--mask-image"), sweep("mask", lambda t: t)]), "a mask\npicture")]),
         "shapes.png")


def shape_mark_pictures(run: Runner) -> None:
    """Layout init's mark for a shape (docs/regions.md): a triangle and a circle whose boxes are apart,
    as a version 6 document (the disc inside the triangle) and as today's (at its box's centre), seeds 1-4."""
    import json

    seeds = (1, 2, 3, 4)
    doc = json.loads((EXAMPLES / "apart_shapes.json").read_text())
    (run.folder / "apart_shapes_v6.json").write_text(json.dumps(dict(doc, version=6)))
    for seed in seeds:
        run(f"python -m lib_regedit generate --regions out/apart_shapes_v6.json --seed {seed} "
            f"--out out/apart-v6-{seed}.png")
        run(f"python -m lib_regedit generate --regions examples/apart_shapes.json --seed {seed} "
            f"--out out/apart-v7-{seed}.png")

    def sweep(prefix):
        return row([labelled(outlines(enlarge(run.image(f"apart-{prefix}-{s}.png"), 160), doc["regions"]), f"seed {s}")
                    for s in seeds])

    save(column([with_row_label(sweep("v6"), "version 6:\nthe disc\ninside"),
                 with_row_label(sweep("v7"), "version 7:\nat the box's\ncentre")]), "shape_marks.png")


def two_shapes_regions():
    import json

    return json.loads((EXAMPLES / "two_shapes.json").read_text())["regions"]


def pictures(run: Runner) -> None:
    import json

    regions = two_shapes_regions()
    seeds = (1, 2, 3, 4)
    shape_pictures(run)
    shape_mark_pictures(run)

    # The main job (the README's first command) and its plain-prompt comparison, seeds 1-4.
    run("python -m lib_regedit generate --regions examples/two_shapes.json --out out/two_shapes.png "
        "--preview out/two_shapes-boxes.png")
    plain = run.folder / "plain.json"
    plain.write_text(json.dumps({"prompt": "a red circle and a blue square", "regions": []}))
    for seed in seeds:
        run(f"python -m lib_regedit generate --regions {plain} --seed {seed} --out out/plain-{seed}.png")
        run(f"python -m lib_regedit generate --regions examples/two_shapes.json --seed {seed} "
            f"--out out/regions-{seed}.png")
        run(f"python -m lib_regedit generate --regions examples/two_shapes.json --seed {seed} --init noise "
            f"--out out/noise-{seed}.png")

    def sweep(prefix, label, outline=True):
        tiles = [enlarge(run.image(f"{prefix}-{s}.png"), 160) for s in seeds]
        tiles = [boxes(t, regions) if outline else t for t in tiles]
        return with_row_label(row([labelled(t, f"seed {s}") for t, s in zip(tiles, seeds)]), label)

    save(column([sweep("plain", "plain prompt\n(no regions)"),
                 sweep("regions", "RegEdit,\nthe defaults")]), "regions.png")
    save(column([sweep("noise", "--init noise\n(regions alone)"),
                 sweep("regions", "the defaults\n(layout init)")]), "layout_init.png")

    # KSSA: the main job with and without it, and the keyword maps its preview writes.
    run("python -m lib_regedit generate --regions examples/two_shapes.json --kssa --out out/kssa.png "
        "--preview out/kssa-boxes.png")
    save(row([labelled(boxes(enlarge(run.image("two_shapes.png")), regions), "the defaults"),
              labelled(boxes(enlarge(run.image("kssa.png")), regions), "--kssa"),
              labelled(enlarge(run.image("kssa-boxes-keywords.png"), 2 * SIDE), "out/kssa-boxes-keywords.png")]),
         "kssa.png")

    # Region edits of a generated image: change, and add + remove.
    run("python -m lib_regedit edit-regions --regions examples/edit_change.json "
        "--out-source out/change-source.png --out-target out/change-target.png")
    run("python -m lib_regedit edit-regions --regions examples/edit_add_remove.json "
        "--out-source out/add-remove-source.png --out-target out/add-remove-target.png")
    change = json.loads((EXAMPLES / "edit_change.json").read_text())["regions"]
    add_remove = json.loads((EXAMPLES / "edit_add_remove.json").read_text())["regions"]
    change_boxes = [dict(r, label=r.get("edit", "keep")) for r in change]
    add_remove_boxes = [dict(r, label=r.get("edit", "keep")) for r in add_remove]
    save(column([
        with_row_label(row([labelled(boxes(enlarge(run.image("change-source.png")), change_boxes, True), "source"),
                            labelled(enlarge(run.image("change-target.png")), "target")], arrow=True),
                       "edit_change.json:\nred circle ->\nblue circle"),
        with_row_label(row([labelled(boxes(enlarge(run.image("add-remove-source.png")), add_remove_boxes, True),
                                     "source"),
                            labelled(enlarge(run.image("add-remove-target.png")), "target")], arrow=True),
                       "edit_add_remove.json:\nremove the square,\nadd a yellow\ntriangle"),
    ]), "region_edits.png")

    # A picture's edit: the same documents on pictures the model never made.
    run("python -m lib_regedit edit-regions --image examples/edit_change.png --regions examples/edit_change.json "
        "--out out/picture-edit.png --out-source out/picture-reconstruction.png")
    run("python -m lib_regedit edit-regions --image examples/edit_add_remove.png "
        "--regions examples/edit_add_remove.json --out out/picture-add-remove.png "
        "--out-source out/picture-add-remove-reconstruction.png")
    picture = Image.open(EXAMPLES / "edit_change.png").convert("RGB")
    picture2 = Image.open(EXAMPLES / "edit_add_remove.png").convert("RGB")
    save(column([
        row([labelled(boxes(enlarge(picture), change_boxes, True), "examples/edit_change.png"),
             labelled(enlarge(run.image("picture-reconstruction.png")), "reconstruction"),
             labelled(enlarge(run.image("picture-edit.png")), "edit")], arrow=True),
        row([labelled(boxes(enlarge(picture2), add_remove_boxes, True), "examples/edit_add_remove.png"),
             labelled(enlarge(run.image("picture-add-remove-reconstruction.png")), "reconstruction"),
             labelled(enlarge(run.image("picture-add-remove.png")), "edit")], arrow=True),
    ]), "picture_edit.png")

    # LIME: the instruct model alone, the region LIME finds, LIME's edit.
    instruction = '"make the red circle blue"'
    run(f"python -m lib_regedit edit --image examples/edit_change.png --instruction {instruction} "
        "--out out/instruct.png")
    run(f"python -m lib_regedit edit --image examples/edit_change.png --instruction {instruction} --lime "
        "--roi-preview out/lime-roi.png --out out/lime.png")
    run(f"python -m lib_regedit edit --image examples/edit_change.png --instruction {instruction} --lime "
        "--no-snap --roi-preview out/lime-nosnap-roi.png --out out/lime-nosnap.png")
    save(row([labelled(enlarge(picture), "examples/edit_change.png"),
              labelled(enlarge(run.image("instruct.png")), "instruct model alone"),
              labelled(enlarge(run.image("lime-roi.png")), "LIME's region"),
              labelled(enlarge(run.image("lime.png")), "LIME")]), "lime.png")
    save(row([labelled(enlarge(run.image("lime-roi.png")), "region (snapped)"),
              labelled(enlarge(run.image("lime.png")), "LIME (defaults)"),
              labelled(enlarge(run.image("lime-nosnap-roi.png")), "region, --no-snap"),
              labelled(enlarge(run.image("lime-nosnap.png")), "LIME --no-snap")]), "lime_snap.png")

    # RegionDrag: the input with the handle and target, the result; and handle noise 0.6 for docs/.
    run("python -m lib_regedit drag --image examples/drag_square.png --drag examples/drag_square.json "
        "--out out/drag.png")
    run("python -m lib_regedit drag --image examples/drag_square.png --drag examples/drag_square.json "
        "--handle-noise 0.6 --out out/drag-noise06.png")
    pairs = json.loads((EXAMPLES / "drag_square.json").read_text())["pairs"]
    drag_input = Image.open(EXAMPLES / "drag_square.png").convert("RGB")
    save(row([labelled(polygons(enlarge(drag_input), pairs), "examples/drag_square.png"),
              labelled(enlarge(run.image("drag.png")), "out/drag.png")], arrow=True), "drag.png")
    save(row([labelled(enlarge(run.image("drag.png")), "handle noise 1.0 (default)"),
              labelled(enlarge(run.image("drag-noise06.png")), "--handle-noise 0.6")]), "drag_handle_noise.png")

    # The first screen: one before -> after of each kind, small.
    def pair(before, after, label):
        return labelled(row([enlarge(before, SMALL), enlarge(after, SMALL)], arrow=True), label)

    blank = Image.new("RGB", (64, 64), (250, 250, 250))
    save(row([
        pair(boxes(enlarge(blank, SMALL), [dict(r, label=r["prompt"][2:]) for r in regions], True),
             run.image("two_shapes.png"), "region prompts"),
        pair(run.image("change-source.png"), run.image("change-target.png"), "region edit: change"),
        pair(picture, run.image("lime.png"), "LIME: " + instruction.strip('"')),
        pair(polygons(enlarge(drag_input, SMALL), pairs), run.image("drag.png"), "RegionDrag"),
    ], gap=18), "overview.png")


def fill_pictures() -> None:
    """Fills that match their surroundings (docs/regiondrag.md, docs/picture-editing.md): held-out cases
    of ``eval --drag`` and ``eval --inversion`` on the bundled model, each with the old behaviour and
    the new default. The drag runs once per document version; the picture edit runs once with
    ``paste_outside`` off and both pastes are applied to that one result, as the eval does."""
    from dataclasses import replace

    from lib_regedit.documents import parse_drag_document, parse_region_document
    from lib_regedit.drag.diffusers_drag import drag
    from lib_regedit.editing.diffusers_real import edit_image
    from lib_regedit.editing.real_edit import paste_outside
    from lib_regedit.evaluation import drag_eval
    from lib_regedit.evaluation.edit_eval import edit_cases, layouts_for
    from lib_regedit.evaluation.inversion_eval import picture
    from lib_regedit.models import default_model_path, load_pipeline
    from lib_regedit.shapesworld.data import render

    pipe = load_pipeline(default_model_path())
    pipe.set_progress_bar_config(disable=True)

    def outlined(image, case):
        (hx, hy, hw, hh), (tx, ty, tw, th) = case["handle"], case["target"]
        return boxes(enlarge(image), [dict(x=hx, y=hy, w=hw, h=hh, colour="#e6194b", label="handle"),
                                      dict(x=tx, y=ty, w=tw, h=th, colour="#3cb44b", label="target")], True)

    cases = drag_eval.cases(16)
    rows = []
    for i in (1, 2, 11, 15):  # brush, polygon, brush, brush: the cases where version 1 left something behind
        case = cases[i]
        source = render(case["scene"])
        document = parse_drag_document(case["document"])
        results = [drag(pipe, source, document, prompt=case["scene"].caption, seed=0, progress=False,
                        options=replace(drag_eval.EVAL_OPTIONS, **fields)).image
                   for fields in (drag_eval.ORIGINAL, {})]
        rows.append(with_row_label(row([labelled(outlined(source, case), f"case {i + 1}: {case['kind']}"),
                                        labelled(enlarge(results[0]), "version 1 (RegionDrag's fill)"),
                                        labelled(enlarge(results[1]), "version 2 (the default)")]),
                                   f"held-out drag\n{i + 1} of 16"))
    save(column(rows), "drag_fills.png")

    rows = []
    layouts = layouts_for(0)
    for li, kind in ((0, "remove"), (2, "change colour"), (4, "remove"), (6, "change kind")):
        case = next(c for c in edit_cases(layouts[li], li) if c["kind"] == kind)
        image = picture(layouts[li], li, 64)
        raw = edit_image(pipe, image, dict(case["document"], edit={"paste_outside": False}), steps=20).target
        pasted = [paste_outside(image, raw, parse_region_document(dict(case["document"], version=v))) for v in (3, 4)]
        x, y, w, h = case["box"]
        rows.append(with_row_label(row([labelled(boxes(enlarge(image), [dict(x=x, y=y, w=w, h=h, label=kind)], True),
                                                 f"layout {li + 1}"),
                                        labelled(enlarge(pasted[0]), "version 3 (feathered paste)"),
                                        labelled(enlarge(pasted[1]), "version 4 (seamless)")]),
                                   f"picture edit:\n{kind}"))
    save(column(rows), "picture_edit_seams.png")


def main() -> int:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    IMAGES.mkdir(parents=True, exist_ok=True)
    example_pictures()
    with tempfile.TemporaryDirectory(prefix="regedit-pictures-") as folder:
        previous = os.getcwd()
        os.chdir(ROOT)  # the commands name examples/ as the README does, from the repository root
        try:
            pictures(Runner(Path(folder)))
        finally:
            os.chdir(previous)
    fill_pictures()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
