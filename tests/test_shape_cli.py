"""Shapes on the command line: ``generate --regions DOC`` takes shapes, ``--mask-image PNG`` goes with a
document whose regions name its colours, the PNG it writes makes the image again, and bad input ends
in one ``RegEdit:`` line naming the flag or field and the fix."""

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lib_regedit.cli import main
from tiny_models import tiny_sd_pipeline

SHAPES = {"prompt": "a red circle and a blue square", "init": "noise", "regions": [
    {"shape": {"type": "polygon", "points": [[0.05, 0.1], [0.45, 0.1], [0.25, 0.8]]}, "prompt": "a red circle"},
    {"shape": {"type": "mask", "strokes": [{"points": [[0.7, 0.3], [0.75, 0.7]], "radius": 0.12}]},
     "prompt": "a blue square"}]}
COLOURS = {"prompt": "a red circle and a blue square", "init": "noise", "regions": [
    {"colour": "#ff0000", "prompt": "a red circle"}, {"colour": "#0000ff", "prompt": "a blue square"}]}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model")
    tiny_sd_pipeline().save_pretrained(path)
    return path


def write(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def mask_png(tmp_path, size=(32, 32)):
    image = Image.new("RGB", size, (0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((2, 4, 14, 24), fill=(255, 0, 0))
    draw.rectangle((18, 6, 29, 26), fill=(0, 0, 255))
    path = tmp_path / "mask.png"
    image.save(path)
    return path


def test_shapes_from_a_document_and_back_from_the_png(model_dir, tmp_path, capsys):
    out, again, preview = tmp_path / "out.png", tmp_path / "again.png", tmp_path / "preview.png"
    common = ["--model", str(model_dir), "--steps", "2", "--seed", "3"]
    assert main(["generate", "--regions", str(write(tmp_path, "d.json", SHAPES)), "--out", str(out),
                 "--preview", str(preview), *common]) == 0
    text = Image.open(out).text["parameters"]
    assert '"shape":{"type":"polygon"' in text.replace('\\"', '"') and '"strokes"' in text.replace('\\"', '"')
    assert main(["generate", "--regions", str(out), "--out", str(again), *common]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(again)))
    assert Image.open(preview).size[0] >= 256


def test_a_mask_image_with_a_document_naming_its_colours(model_dir, tmp_path, capsys):
    out, again = tmp_path / "out.png", tmp_path / "again.png"
    common = ["--model", str(model_dir), "--steps", "2", "--seed", "3"]
    assert main(["generate", "--regions", str(write(tmp_path, "c.json", COLOURS)), "--mask-image",
                 str(mask_png(tmp_path, (64, 48))), "--out", str(out), *common]) == 0
    printed = capsys.readouterr().out
    assert "note: mask_image: the picture is 64x48 and the image 32x32; it was scaled" in printed
    assert "note: mask_image: " in printed and "colours no region names (#000000" in printed
    # the PNG carries the picture as runs: it makes the same image without --mask-image
    assert '"runs"' in Image.open(out).text["parameters"].replace('\\"', '"')
    assert main(["generate", "--regions", str(out), "--out", str(again), *common]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(again)))


@pytest.mark.parametrize("doc, extra, start, words", [
    (COLOURS, [], "RegEdit: regions[0].colour: ", "--mask-image PNG"),
    (COLOURS, ["--mask-image", "MISSING"], "RegEdit: --mask-image: ", "does not exist"),
    (COLOURS, ["--mask-image", "NOT_A_PICTURE"], "RegEdit: --mask-image: ", "cannot read"),
    ({**COLOURS, "regions": [{"colour": "#00ff00", "prompt": "a green thing"}]}, ["--mask-image", "MASK"],
     "RegEdit: regions[0].colour: ", "has no #00ff00 pixels"),
    ({**SHAPES, "regions": [{"shape": {"type": "polygon", "points": [[0.1, 0.1], [0.2, 0.2]]}, "prompt": "a"}]}, [],
     "RegEdit: regions[0].shape.points: ", "at least 3 points"),
    ({**SHAPES, "regions": [{"x": 0, "y": 0, "w": 0.5, "h": 0.5, **SHAPES["regions"][0]}]}, [],
     "RegEdit: regions[0]: ", "both a box (x, y, w, h) and a shape"),
])
def test_bad_shapes_and_pictures_end_in_one_line(model_dir, tmp_path, capsys, monkeypatch, doc, extra, start, words):
    import lib_regedit.models as models

    monkeypatch.setattr(models, "load_pipeline", lambda *a, **k: pytest.fail("loaded the model for bad input"))
    not_a_picture = tmp_path / "notes.txt"
    not_a_picture.write_text("hello")
    paths = {"MISSING": str(tmp_path / "missing.png"), "NOT_A_PICTURE": str(not_a_picture),
             "MASK": str(mask_png(tmp_path))}
    extra = [paths.get(a, a) for a in extra]
    code = main(["generate", "--regions", str(write(tmp_path, "bad.json", doc)), "--out", str(tmp_path / "o.png"),
                 "--model", str(model_dir), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(start) and words in err[0] and ". Fix: " in err[0]
