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


def test_the_example_drag_moves_the_circle(red_circle, tmp_path, capsys):
    if not (default_model_path() / "model_index.json").exists():
        pytest.skip("the bundled model is missing")
    out = tmp_path / "out.png"
    assert main(["drag", "--image", str(red_circle), "--drag", str(EXAMPLE), "--out", str(out),
                 "--prompt", "a red circle"]) == 0
    err = capsys.readouterr().err  # a bar per phase, each to its own total: 10 inverting, 10 dragging
    assert "inverting: 100%" in err and "dragging: 100%" in err and "10/10" in err and "20/20" not in err
    found = [d for d in detect(Image.open(out)) if (d.colour, d.shape) == ("red", "circle")]
    assert len(found) == 1  # moved, not copied
    x, y = found[0].centroid
    assert abs(x - 0.65) < 0.05 and abs(y - 0.65) < 0.05  # the handle square's centre moved by 0.4
    text = Image.open(out).text["parameters"]
    assert text.startswith("a red circle\n") and "RegEdit drag: " in text


@pytest.mark.parametrize("args,field", [
    (["--steps", "0"], "--steps"), (["--start-t", "0"], "--start-t"), (["--end-t", "2"], "--end-t"),
    (["--seed", "-3"], "--seed"),
    # end_t at or above start_t: the copy-paste would run at the first step only (it ran silently)
    (["--end-t", "0.6"], "--end-t: 0.6 is not below start_t 0.5"),
    (["--end-t", "0.5"], "--end-t: 0.5 is not below start_t 0.5"),
    (["--start-t", "0.1"], "--start-t: 0.2 is not below start_t 0.1"),  # the flag typed, with the default end_t
])
def test_bad_settings(red_circle, tmp_path, capsys, monkeypatch, args, field):
    import lib_regedit.models as models

    monkeypatch.setattr(models, "load_pipeline", lambda *a, **k: pytest.fail("loaded the model for a bad setting"))
    code = main(["drag", "--image", str(red_circle), "--drag", str(EXAMPLE), "--out", str(tmp_path / "o.png"), *args])
    assert code == 2 and capsys.readouterr().err.startswith(f"RegEdit: {field}")


def test_the_documents_end_t_is_checked_with_the_flags(red_circle, tmp_path, capsys, monkeypatch):
    import lib_regedit.models as models

    monkeypatch.setattr(models, "load_pipeline", lambda *a, **k: pytest.fail("loaded the model for a bad setting"))
    doc = json.loads(EXAMPLE.read_text())
    (tmp_path / "late.json").write_text(json.dumps(dict(doc, end_t=0.6)))
    args = ["drag", "--image", str(red_circle), "--drag", str(tmp_path / "late.json"), "--out", str(tmp_path / "o.png")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("RegEdit: --drag.end_t: 0.6 is not below start_t 0.5") and "copy_paste_every_step" in err


def test_end_t_with_every_step_pasting_gets_a_note(red_circle, tmp_path, capsys):
    if not (default_model_path() / "model_index.json").exists():
        pytest.skip("the bundled model is missing")
    assert main(["drag", "--image", str(red_circle), "--drag", str(EXAMPLE), "--out", str(tmp_path / "o.png"),
                 "--steps", "4", "--copy-paste-every-step", "--end-t", "0.6"]) == 0
    assert "note: --end-t is not read with --copy-paste-every-step" in capsys.readouterr().out


def test_a_drag_document_that_is_not_json_shows_a_drag_document(red_circle, tmp_path, capsys):
    """The fix shows what a drag document looks like (it used to show a region document)."""
    (tmp_path / "bad.json").write_text("{pairs: []}")
    assert main(["drag", "--image", str(red_circle), "--drag", str(tmp_path / "bad.json"),
                 "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("RegEdit: --drag: not valid JSON") and '{"pairs": [{"handle": {"type": "polygon"' in err
    assert '"regions"' not in err


def test_a_drag_document_with_no_pairs_is_refused_alike_by_the_command_and_the_webui_api(red_circle, tmp_path,
                                                                                        capsys, monkeypatch):
    """The command refuses it before loading the model; through the WebUI's API the same document ran a
    plain img2img without a word. From the page (whose sliders write their settings with no pairs) and
    with an empty drag field there is no drag, silently, as before."""
    import types

    import lib_regedit.models as models
    from lib_regedit.webui import image_tasks

    monkeypatch.setattr(models, "load_pipeline", lambda *a, **k: pytest.fail("loaded the model"))
    (tmp_path / "none.json").write_text('{"version": 1, "pairs": []}')
    assert main(["drag", "--image", str(red_circle), "--drag", str(tmp_path / "none.json"),
                 "--out", str(tmp_path / "o.png")]) == 2
    assert capsys.readouterr().err.startswith("RegEdit: --drag: the drag document has no pairs")

    def webui(drag_doc, is_api):
        p = types.SimpleNamespace(is_api=is_api, sample=None, extra_generation_params={})
        taken = image_tasks.start_drag(p, drag_doc)
        if p.sample is None:
            return taken, None
        with pytest.raises(Exception) as info:
            p.sample()
        return taken, info.value

    taken, error = webui({"pairs": []}, is_api=True)
    assert taken and error.field == "drag" and "has no pairs" in str(error) and error.status_code == 422
    assert webui('{"version": 1, "start_t": 0.6, "pairs": []}', is_api=False) == (False, None)  # the page
    for empty in ("", None, "  "):
        assert webui(empty, is_api=True) == (False, None)


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
