"""LIME's entry points: the LIME document, the ``edit`` command on a pipeline folder the test writes,
the instruct model's loading and export, and the WebUI's noise replay."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lib_regedit.cli import main
from lib_regedit.documents import parse_lime_document
from lib_regedit.errors import RegEditError


def test_lime_document_defaults_shorthands_and_round_trip():
    assert parse_lime_document(None) is None and parse_lime_document("") is None
    assert parse_lime_document(False) is None and parse_lime_document({"enabled": False}) is None
    default = parse_lime_document(True)
    assert default == parse_lime_document({}) == parse_lime_document("true")
    assert default.to_json() == '{"version": 4}' and default.options.keep_outside
    doc = parse_lime_document({"clusters": 4, "keep_outside": False, "snap": False,
                               "roi": [{"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4}]})
    assert parse_lime_document(doc.to_json()) == doc and not doc.options.snap and default.options.snap
    assert doc.roi == ((0.1, 0.2, 0.3, 0.4),) and doc.options.clusters == 4 and not doc.options.keep_outside


def test_lime_documents_keep_the_defaults_of_their_version():
    assert parse_lime_document({}).options.regularise_until == 0.35  # the current defaults
    old = parse_lime_document("{}", untagged_version=1)  # an infotext written before versions existed
    assert old.version == 1 and old.options.regularise_until == 0.9
    assert old.to_json() == '{"version": 1}' and parse_lime_document(old.to_json()) == old
    assert parse_lime_document({"version": 1, "regularise_until": 0.35}).to_json() == \
        '{"version": 1, "regularise_until": 0.35}'
    assert parse_lime_document({"version": 2}, untagged_version=1).options.regularise_until == 0.35
    current = parse_lime_document({}).options
    assert (current.pick, current.segment_cells, current.colour_merge, current.maps) == ("object", 4, 40, "first")
    for version in (1, 2, 3):  # the paper's maps, read with the features
        assert parse_lime_document({"version": version}).options.maps == "feature"
    paper_maps = parse_lime_document({"maps": "feature"})
    assert paper_maps.to_json() == '{"version": 4, "maps": "feature"}' and parse_lime_document(paper_maps.to_json()) == paper_maps
    for version in (1, 2):  # the peak anywhere on the coarser superpixels
        options = parse_lime_document({"version": version}).options
        assert (options.pick, options.segment_cells, options.colour_merge) == ("peak", 16, 20)
    peak = parse_lime_document({"version": 3, "pick": "peak", "segment_cells": 16})
    assert peak.to_json() == '{"version": 3, "pick": "peak", "segment_cells": 16}'
    assert parse_lime_document(peak.to_json()) == peak
    with pytest.raises(RegEditError, match="lime.version"):
        parse_lime_document({"version": 5})


@pytest.mark.parametrize("value,field", [
    ({"clusters": 2.5}, "lime.clusters"),
    ({"points": 0}, "lime.points"),
    ({"regularise_until": -1}, "lime.regularise_until"),
    ({"snap": "yes"}, "lime.snap"),
    ({"pick": "middle"}, "lime.pick"),
    ({"segment_cells": 0}, "lime.segment_cells"),
    ({"colour_merge": -1}, "lime.colour_merge"),
    ({"maps": "last"}, "lime.maps"),
    ({"roi": [{"x": 0.8, "y": 0, "w": 0.5, "h": 0.1}]}, "lime.roi[0]"),
    ({"roi": "box"}, "lime.roi"),
    ({"colour": "red"}, "lime.colour"),
    ("[1]", "lime"),
])
def test_bad_lime_documents_name_the_field(value, field):
    with pytest.raises(RegEditError) as e:
        parse_lime_document(value)
    assert e.value.field == field


@pytest.fixture(scope="module")
def instruct_folder(tmp_path_factory):
    from tiny_models import tiny_instruct_pipeline

    folder = tmp_path_factory.mktemp("instruct") / "pipe"
    tiny_instruct_pipeline().save_pretrained(folder)
    return folder


def _image(tmp_path, size=32):
    arr = np.full((size, size, 3), 200, np.uint8)
    arr[4:14, 4:14] = (220, 30, 30)
    path = tmp_path / "in.png"
    Image.fromarray(arr).save(path)
    return path


def test_edit_command_writes_the_edit_the_roi_preview_and_the_infotext(tmp_path, instruct_folder, capsys):
    out, roi = tmp_path / "out.png", tmp_path / "roi.png"
    code = main(["edit", "--image", str(_image(tmp_path)), "--instruction", "make the red square blue", "--lime",
                 "--clusters", "4", "--pick", "peak", "--maps", "feature", "--model", str(instruct_folder), "--steps", "4", "--out", str(out),
                 "--roi-preview", str(roi)])
    assert code == 0, capsys.readouterr().err
    text = Image.open(out).text["parameters"]
    assert text.startswith("make the red square blue\n")
    assert 'RegEdit LIME: "{\\"version\\": 4, \\"clusters\\": 4, \\"pick\\": \\"peak\\", \\"maps\\": \\"feature\\"}"' in text
    assert Image.open(roi).size == (32, 32)
    assert "clustering" in capsys.readouterr().out


@pytest.mark.parametrize("uncertain", [True, False])
def test_edit_command_says_when_the_found_roi_is_uncertain(tmp_path, instruct_folder, capsys, monkeypatch, uncertain):
    from lib_regedit.lime import roi

    monkeypatch.setattr(roi, "UNCERTAIN", 0.0 if uncertain else 1.01)  # every found RoI, or none
    assert main(["edit", "--image", str(_image(tmp_path)), "--instruction", "make the red square blue", "--lime",
                 "--clusters", "4", "--model", str(instruct_folder), "--steps", "3",
                 "--out", str(tmp_path / "o.png")]) == 0
    out = capsys.readouterr().out  # a note, as every command prints them
    assert ("note: LIME: the edit words point at two places" in out and "--roi-mask" in out) == uncertain


def test_edit_command_takes_a_mask_as_the_roi(tmp_path, instruct_folder):
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (0, 0, 16, 16))
    mask.save(tmp_path / "mask.png")
    assert main(["edit", "--image", str(_image(tmp_path)), "--instruction", "make the red square blue", "--lime",
                 "--roi-mask", str(tmp_path / "mask.png"), "--model", str(instruct_folder), "--steps", "3",
                 "--out", str(tmp_path / "o.png")]) == 0
    assert "roi" not in Image.open(tmp_path / "o.png").text["parameters"]  # a mask is not a box to record


def test_a_mask_of_the_images_shape_at_another_size_is_scaled_with_a_note(tmp_path, instruct_folder, capsys):
    """A 16x16 --roi-mask for a 32x32 image gives the edit its 32x32 copy gives, and says it was scaled
    (it used to run without a word, on the latent's cells only)."""
    image = _image(tmp_path)
    outputs = []
    for size in (16, 32):
        mask = Image.new("L", (size, size), 0)
        mask.paste(255, (0, 0, size // 2, size // 2))
        mask.save(tmp_path / f"mask{size}.png")
        assert main(["edit", "--image", str(image), "--instruction", "make the red square blue", "--lime",
                     "--roi-mask", str(tmp_path / f"mask{size}.png"), "--model", str(instruct_folder), "--steps", "3",
                     "--out", str(tmp_path / f"o{size}.png")]) == 0
        outputs.append(np.asarray(Image.open(tmp_path / f"o{size}.png")))
        out = capsys.readouterr().out
        assert ("note: --roi-mask: the 16x16 mask was scaled to the image's 32x32" in out) == (size == 16)
    assert np.array_equal(outputs[0], outputs[1])


def test_a_mask_of_another_shape_is_refused(tmp_path, capsys, monkeypatch):
    import lib_regedit.models as models

    monkeypatch.setattr(models, "load_pipeline", lambda *a, **k: pytest.fail("loaded the model for a bad mask"))
    Image.new("L", (16, 32), 255).save(tmp_path / "tall.png")
    assert main(["edit", "--image", str(_image(tmp_path)), "--instruction", "make the red square blue", "--lime",
                 "--roi-mask", str(tmp_path / "tall.png"), "--out", str(tmp_path / "o.png")]) == 2
    assert capsys.readouterr().err.startswith("RegEdit: --roi-mask: the mask is 16x32 and the image 32x32, a "
                                              "different shape. Fix: give the mask at the image's size, 32x32")


def test_edit_shows_one_bar_per_phase_with_its_total(tmp_path, instruct_folder, capsys):
    """LIME's first pass stops at the feature step: its bar counts to that step (it used to show the
    pipeline's bar stopped part way); the edit's counts every step."""
    assert main(["edit", "--image", str(_image(tmp_path)), "--instruction", "make the red square blue", "--lime",
                 "--clusters", "4", "--model", str(instruct_folder), "--steps", "6", "--out", str(tmp_path / "o.png")]) == 0
    err = capsys.readouterr().err
    assert "finding the region: 100%" in err and "3/3" in err  # steps 0 to round(6 / 3) = 2
    assert "editing: 100%" in err and "6/6" in err and "/6 [" not in err.split("editing")[0]


@pytest.mark.parametrize("args,message", [
    (["--instruction", "the of ,", "--lime"], "--instruction: no edit tokens"),
    (["--instruction", "make it red", "--clusters", "3"], "--clusters: is a LIME setting"),
    (["--instruction", "make it red", "--lime", "--points", "0"], "--points: 0 is out of range"),
    (["--instruction", "make it red", "--roi-preview", "r.png"], "--roi-preview: needs --lime"),
    (["--instruction", "make it red", "--no-snap"], "--no-snap: is a LIME setting"),
    (["--instruction", "make it red", "--pick", "peak"], "--pick: is a LIME setting"),
    (["--instruction", "make it red", "--maps", "feature"], "--maps: is a LIME setting"),
    (["--instruction", "make it red", "--strength", "0"], "--strength"),
    (["--instruction", "make it red", "--model", "/nonexistent"], "--model: /nonexistent does not exist"),
])
def test_edit_command_refuses_bad_input_before_work(tmp_path, capsys, args, message):
    code = main(["edit", "--image", str(_image(tmp_path)), "--out", str(tmp_path / "o.png"), *args])
    assert code == 2 and message in capsys.readouterr().err


def test_instruct_models_load_only_where_accepted(instruct_folder):
    from lib_regedit.models import load_pipeline

    assert type(load_pipeline(instruct_folder, instruct=True)).__name__ == "StableDiffusionInstructPix2PixPipeline"
    with pytest.raises(RegEditError) as e:
        load_pipeline(instruct_folder)
    assert "instruct-pix2pix" in e.value.problem and "edit" in e.value.fix


def test_exported_instruct_model_loads_as_diffusers_folder_and_single_file(tmp_path, instruct_folder):
    from diffusers import StableDiffusionInstructPix2PixPipeline

    from lib_regedit.models import load_pipeline
    from lib_regedit.shapesworld import export

    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(str(instruct_folder))
    export.export(pipe.vae, pipe.unet, pipe.text_encoder, tmp_path, name="base", zero_unused=False)
    info = export.export(pipe.vae, pipe.unet, pipe.text_encoder, tmp_path, name="edit", instruct=True,
                         clip_name="base", zero_unused=False)
    yaml = info["yaml"].read_text()
    assert "ddpm_edit.LatentDiffusion" in yaml and "conditioning_key: hybrid" in yaml and "in_channels: 8" in yaml
    assert json.loads((info["folder"] / "model_index.json").read_text())["_class_name"] == \
        "StableDiffusionInstructPix2PixPipeline"
    folder = load_pipeline(info["folder"], instruct=True)
    single = load_pipeline(info["checkpoint"], config=str(info["folder"]), instruct=True)
    assert type(single).__name__ == "StableDiffusionInstructPix2PixPipeline"
    x = torch.randn(1, 8, 16, 16)
    ctx = torch.randn(1, 77, 32)
    with torch.no_grad():
        a = folder.unet(x, 10, encoder_hidden_states=ctx).sample
        b = single.unet(x.half().float(), 10, encoder_hidden_states=ctx).sample
    torch.testing.assert_close(a, b, atol=2e-2, rtol=2e-2)  # fp16 weights in both


def test_noise_replay_gives_the_first_pass_draws_again_then_fresh_ones():
    from lib_regedit.lime.webui_lime import NoiseReplay

    class Rng:
        def __init__(self):
            self.n = 0

        def next(self):
            self.n += 1
            return self.n

    rng = Rng()
    replay = NoiseReplay(rng)
    replay.record()
    assert [rng.next(), rng.next()] == [1, 2]
    replay.replay()
    assert [rng.next(), rng.next(), rng.next()] == [1, 2, 3]  # what one uninterrupted run would draw
    replay.restore()
    assert "next" not in vars(rng) and rng.next() == 4


def test_the_bundled_instruct_model_runs_the_edit_command(tmp_path, capsys):
    from lib_regedit.models import default_instruct_model_path
    from lib_regedit.shapesworld.data import Scene, ShapeObject, render

    if not (default_instruct_model_path() / "model_index.json").exists():
        pytest.skip("the bundled instruct model is missing")
    render(Scene((235, 235, 230), (ShapeObject("circle", "red", (0.1, 0.1, 0.4, 0.4), (220, 40, 40)),))).save(
        tmp_path / "in.png")
    assert main(["edit", "--image", str(tmp_path / "in.png"), "--instruction", "make the red circle blue", "--lime",
                 "--steps", "4", "--out", str(tmp_path / "out.png")]) == 0, capsys.readouterr().err
    out = Image.open(tmp_path / "out.png")
    assert out.size == (64, 64) and "Model: shapesworld_instruct" in out.text["parameters"]
