"""The command line on a diffusers folder the test writes (nothing downloads)."""

import json

import pytest
from PIL import Image

from lib_regedit.cli import main
from lib_regedit.infotext import quote, unquote
from tiny_models import tiny_sd_pipeline


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model")
    tiny_sd_pipeline().save_pretrained(path)
    return path


def test_generate_writes_a_png_with_parameters(model_dir, tmp_path):
    regions = tmp_path / "regions.json"
    regions.write_text(json.dumps({"prompt": "a red circle and a dog", "regions": [
        {"x": 0.0, "y": 0.1, "w": 0.45, "h": 0.8, "prompt": "a red circle"}]}))
    out = tmp_path / "out.png"
    preview = tmp_path / "boxes.png"
    assert main(["generate", "--regions", str(regions), "--out", str(out), "--model", str(model_dir), "--steps", "2",
                 "--seed", "7", "--mode", "latent", "--preview", str(preview)]) == 0
    kssa_out = tmp_path / "kssa.png"
    assert main(["generate", "--regions", str(regions), "--out", str(kssa_out), "--model", str(model_dir), "--steps", "3",
                 "--keywords", "2", "--kssa-scale", "1.8"]) == 0
    assert "RegEdit keywords: " in Image.open(kssa_out).text["parameters"]
    image = Image.open(out)
    text = image.text["parameters"]
    assert text.startswith("a red circle and a dog\n") and "Seed: 7" in text and "Steps: 2" in text
    doc_text = unquote(text.split("RegEdit regions: ", 1)[1].split("\n")[0])
    assert json.loads(doc_text)["regions"][0]["prompt"] == "a red circle"
    scale = -(-256 // min(image.size))  # small images are enlarged so labels stay legible
    assert Image.open(preview).size == (image.width * scale, image.height * scale)


def test_bad_document_exits_with_the_message(model_dir, tmp_path, capsys):
    regions = tmp_path / "bad.json"
    regions.write_text('{"prompt": "p", "regions": [{"x": 0.8, "y": 0, "w": 0.5, "h": 0.5, "prompt": "a"}]}')
    assert main(["generate", "--regions", str(regions), "--out", str(tmp_path / "o.png"), "--model", str(model_dir)]) == 2
    assert "regions[0].w" in capsys.readouterr().err


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    regions = tmp_path / "r.json"
    regions.write_text('{"prompt": "p", "regions": []}')
    assert main(["generate", "--regions", str(regions), "--out", str(tmp_path / "o.png"), "--model",
                 str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith("RegEdit: --model: ")


def test_infotext_quoting_round_trips():
    for text in ["plain", 'a, b: "c"\nd', '{"x": 1}']:
        assert unquote(quote(text)) == text


def test_single_file_checkpoint_loads_with_its_config_folder(tmp_path):
    """The real loading code on a single-file checkpoint the test writes (LDM key layout + yaml)."""
    import torch

    from lib_regedit.models import load_pipeline
    from lib_regedit.shapesworld.export import export
    from test_shapesworld_export import tiny_models

    vae, unet, text = tiny_models()
    info = export(vae, unet, text, tmp_path, name="tiny", dtype=torch.float32)
    pipe = load_pipeline(info["checkpoint"])  # finds tmp_path/tiny/ beside tiny.safetensors
    folder = load_pipeline(info["folder"])
    for a, b in zip(pipe.unet.state_dict().values(), folder.unet.state_dict().values()):
        assert torch.equal(a, b)
    moved = tmp_path / "elsewhere.safetensors"
    moved.write_bytes(info["checkpoint"].read_bytes())
    assert type(load_pipeline(moved, config=str(info["folder"]))).__name__ == "StableDiffusionPipeline"


def test_a_png_from_before_versions_regenerates_with_its_old_defaults(model_dir, tmp_path):
    """``--regions IMAGE.png`` reads the document from the PNG's parameters; one written before
    document versions (no "version") keeps version 1's defaults and reproduces its image."""
    import numpy as np
    from PIL import PngImagePlugin

    regions = {"prompt": "a red circle and a dog", "regions": [
        {"x": 0.0, "y": 0.1, "w": 0.45, "h": 0.8, "prompt": "a red circle"}]}
    common = ["--model", str(model_dir), "--steps", "3", "--seed", "4"]
    v1, v2 = tmp_path / "v1.json", tmp_path / "v2.json"
    v1.write_text(json.dumps(dict(regions, version=1)))
    v2.write_text(json.dumps(regions))
    assert main(["generate", "--regions", str(v1), "--out", str(tmp_path / "v1.png"), *common]) == 0
    assert main(["generate", "--regions", str(v2), "--out", str(tmp_path / "v2.png"), *common]) == 0
    old = Image.open(tmp_path / "v1.png")
    text = old.text["parameters"]
    assert '\\"version\\":1,' in text
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text.replace('\\"version\\":1,', ""))  # as written before versions
    old.save(tmp_path / "saved.png", pnginfo=info)
    assert main(["generate", "--regions", str(tmp_path / "saved.png"), "--out", str(tmp_path / "again.png"),
                 *common]) == 0
    pixels = [np.asarray(Image.open(tmp_path / n), dtype=np.int16) for n in ("v1.png", "again.png", "v2.png")]
    assert np.array_equal(pixels[0], pixels[1])
    assert np.abs(pixels[0] - pixels[2]).max() > 0  # the defaults did change


def test_regions_from_a_png_without_them(tmp_path, capsys):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    assert main(["generate", "--regions", str(tmp_path / "plain.png"), "--out", str(tmp_path / "o.png")]) == 2
    assert capsys.readouterr().err.startswith("RegEdit: --regions: ")
