"""``python -m lib_regedit drag`` on the bundled model: a shape moves to its target; bad input is named."""

import json
from pathlib import Path

import pytest
from PIL import Image

from lib_regedit.cli import main
from lib_regedit.evaluation.detector import detect
from lib_regedit.models import default_model_path
from lib_regedit.shapesworld.data import Scene, ShapeObject, render

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "drag_square.json"


@pytest.fixture
def red_circle(tmp_path):
    path = tmp_path / "in.png"
    render(Scene((235, 235, 230), (ShapeObject("circle", "red", (0.12, 0.12, 0.3, 0.3), (220, 40, 40)),))).save(path)
    return path


def test_the_example_drag_moves_the_circle(red_circle, tmp_path):
    if not (default_model_path() / "model_index.json").exists():
        pytest.skip("the bundled model is missing")
    out = tmp_path / "out.png"
    assert main(["drag", "--image", str(red_circle), "--drag", str(EXAMPLE), "--out", str(out),
                 "--prompt", "a red circle"]) == 0
    found = [d for d in detect(Image.open(out)) if (d.colour, d.shape) == ("red", "circle")]
    assert len(found) == 1  # moved, not copied
    x, y = found[0].centroid
    assert abs(x - 0.65) < 0.05 and abs(y - 0.65) < 0.05  # the handle square's centre moved by 0.4
    text = Image.open(out).text["parameters"]
    assert text.startswith("a red circle\n") and "RegEdit drag: " in text


@pytest.mark.parametrize("args,field", [
    (["--steps", "0"], "--steps"), (["--start-t", "0"], "--start-t"), (["--end-t", "2"], "--end-t"),
    (["--seed", "-3"], "--seed"),
])
def test_bad_settings(red_circle, tmp_path, capsys, args, field):
    code = main(["drag", "--image", str(red_circle), "--drag", str(EXAMPLE), "--out", str(tmp_path / "o.png"), *args])
    assert code == 2 and capsys.readouterr().err.startswith(f"RegEdit: {field}: ")


def test_bad_files(red_circle, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"pairs": [{"handle": {"type": "polygon", "points": [[0.1, 0.1], [0.2, 0.1], [0.1, 0.2]]},
                                          "target": {"type": "mask", "strokes": [{"points": [[0.5, 0.5]], "radius": 0.1}]}}]}))
    assert main(["drag", "--image", str(red_circle), "--drag", str(bad), "--out", str(tmp_path / "o.png")]) == 2
    assert capsys.readouterr().err.startswith("RegEdit: --drag.pairs[0]")
    odd = tmp_path / "odd.png"
    Image.new("RGB", (60, 64)).save(odd)
    assert main(["drag", "--image", str(odd), "--drag", str(EXAMPLE), "--out", str(tmp_path / "o.png")]) == 2
    assert "RegEdit: image: its size 60x64 is not a multiple of 8" in capsys.readouterr().err
    assert main(["drag", "--image", str(tmp_path / "none.png"), "--drag", str(EXAMPLE), "--out", str(tmp_path / "o.png")]) == 2
    assert capsys.readouterr().err.startswith("RegEdit: --image: ")


def test_dragbench_folder(tmp_path, capsys):
    """A DragBench-SR style folder the test writes: each case's dense points drive a drag."""
    import pickle

    import numpy as np

    case = tmp_path / "bench" / "animals" / "case1"
    case.mkdir(parents=True)
    image = render(Scene((235, 235, 230), (ShapeObject("circle", "red", (0.12, 0.12, 0.3, 0.3), (220, 40, 40)),)))
    image.resize((128, 128)).save(case / "original_image.png")
    ys, xs = np.mgrid[10:58, 10:58]  # the handle square, in pixels of the 128x128 image
    source = np.stack([xs.ravel(), ys.ravel()], 1)
    points = np.empty((2 * len(source), 2), dtype=np.int64)
    points[0::2], points[1::2] = source, source + 56
    mask = np.zeros((128, 128), dtype=np.uint8)
    mask[5:120, 5:120] = 1
    with open(case / "meta_data_region.pkl", "wb") as f:
        pickle.dump({"prompt": "a red circle", "mask": mask, "points": points}, f)
    out = tmp_path / "out"
    assert main(["drag", "--dragbench", str(tmp_path / "bench"), "--out", str(out), "--handle-noise", "1"]) == 0
    result = Image.open(out / "animals" / "case1.png")
    assert result.size == (64, 64)  # fitted to the bundled model's native size
    found = [d for d in detect(result) if (d.colour, d.shape) == ("red", "circle")]
    assert len(found) == 1 and min(found[0].centroid) > 0.55, [d.centroid for d in found]
    # a pickle that is not plain data is refused, not run
    with open(case / "meta_data_region.pkl", "wb") as f:
        pickle.dump({"prompt": "x", "mask": mask, "points": points, "evil": Path("/")}, f)
    assert main(["drag", "--dragbench", str(tmp_path / "bench"), "--out", str(out)]) == 2
    assert "is not plain data" in capsys.readouterr().err
