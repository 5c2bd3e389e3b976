"""A first try at the command line that goes wrong ends in one `RegEdit:` line naming the field and
the fix, before any work, never a traceback (the cases a new user met with the bundled model)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lib_regedit.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "two_shapes.json"


def run(args, capsys):
    code = main(["generate", "--regions", str(EXAMPLE), *args])
    return code, capsys.readouterr().err.strip().splitlines()[-1]  # after any loading progress bar


@pytest.mark.parametrize("args,field,fix", [
    (["--steps", "0"], "--steps", "from 1 to 1000"),
    (["--steps", "100000"], "--steps", "from 1 to 1000"),
    (["--width", "100"], "--width", "multiple of 8"),
    (["--height", "-8"], "--height", "multiple of 8"),
    (["--cfg", "nan"], "--cfg", "7.5 is typical"),
    (["--seed", "-1"], "--seed", "whole number"),
])
def test_bad_settings_fail_before_the_model_loads(tmp_path, capsys, monkeypatch, args, field, fix):
    import lib_regedit.models as models

    monkeypatch.setattr(models, "load_pipeline", lambda *a, **k: pytest.fail("loaded the model for a bad setting"))
    code, err = run(["--out", str(tmp_path / "o.png"), *args], capsys)
    assert code == 2
    assert err.startswith(f"RegEdit: {field}: ") and fix in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_a_folder_that_is_not_a_pipeline(tmp_path, capsys):
    folder = tmp_path / "not_a_model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\0" * 16)
    code, err = run(["--out", str(tmp_path / "o.png"), "--model", str(folder)], capsys)
    assert code == 2 and err.startswith("RegEdit: --model: ") and "model_index.json" in err


def test_a_broken_pipeline_folder(tmp_path, capsys):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                         "unet": ["diffusers", "UNet2DConditionModel"]}))
    code, err = run(["--out", str(tmp_path / "o.png"), "--model", str(folder)], capsys)
    assert code == 2 and err.startswith("RegEdit: --model: ") and "could not be loaded" in err


def test_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    code, err = run(["--out", str(tmp_path / "o.png"), "--model", str(EXAMPLE)], capsys)
    assert code == 2 and err.startswith("RegEdit: --model: ") and "not a checkpoint" in err


def test_a_broken_checkpoint_file(tmp_path, capsys):
    broken = tmp_path / "model.safetensors"
    broken.write_bytes(b"not a checkpoint")
    code, err = run(["--out", str(tmp_path / "o.png"), "--model", str(broken)], capsys)
    assert code == 2 and err.startswith("RegEdit: --model: ")


def test_missing_regions_file(tmp_path, capsys):
    code = main(["generate", "--regions", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("RegEdit: --regions: ")


def test_a_size_far_beyond_the_native_one_is_refused_with_its_cost(tmp_path, capsys):
    code, err = run(["--out", str(tmp_path / "o.png"), "--width", "4096", "--height", "4096"], capsys)
    assert code == 2 and err.startswith("RegEdit: width/height: 4096x4096 is far beyond this model's native 64x64")
    assert "4096x the native area" in err and "--allow-large" in err


def test_a_document_without_a_prompt_joins_its_region_prompts(tmp_path):
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps({"regions": [{"x": 0.05, "y": 0.3, "w": 0.4, "h": 0.4, "prompt": "a red circle"},
                                           {"x": 0.55, "y": 0.3, "w": 0.4, "h": 0.4, "prompt": "a blue square"}]}))
    out = tmp_path / "o.png"
    assert main(["generate", "--regions", str(doc), "--out", str(out), "--steps", "2"]) == 0
    from PIL import Image

    assert Image.open(out).text["parameters"].startswith("a red circle and a blue square\n")


def test_a_run_prints_only_what_the_user_can_act_on(tmp_path):
    """No transformers lines about torchvision (RegEdit uses no image processor), no traceback."""
    out = tmp_path / "o.png"
    res = subprocess.run([sys.executable, "-m", "lib_regedit", "generate", "--regions", str(EXAMPLE), "--out",
                          str(out), "--steps", "2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "torchvision" not in res.stderr + res.stdout and "Traceback" not in res.stderr
    assert out.exists()
    bad = subprocess.run([sys.executable, "-m", "lib_regedit", "generate", "--regions", str(EXAMPLE), "--out",
                          str(out), "--steps", "0"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("RegEdit: --steps")


def test_a_lora_folder_that_is_not_one_and_an_unknown_lora(tmp_path, capsys, monkeypatch):
    import lib_regedit.models as models

    monkeypatch.setattr(models, "load_pipeline", lambda *a, **k: pytest.fail("loaded the model for a bad folder"))
    code, err = run(["--out", str(tmp_path / "o.png"), "--lora-dir", str(tmp_path / "nope")], capsys)
    assert code == 2 and err.startswith("RegEdit: --lora-dir: ") and "is not a folder" in err
    monkeypatch.undo()
    doc = json.loads(EXAMPLE.read_text())
    doc["regions"][0]["prompt"] += " <lora:ink:0.7>"
    (tmp_path / "doc.json").write_text(json.dumps(doc))
    (tmp_path / "loras").mkdir()
    code = main(["generate", "--regions", str(tmp_path / "doc.json"), "--out", str(tmp_path / "o.png"),
                 "--steps", "2", "--lora-dir", str(tmp_path / "loras")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("RegEdit: regions[0].prompt: no LoRA named 'ink' (known: none)"), err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("args,field", [(["--lime-cases", "0"], "--lime-cases"), (["--lime-skip", "-1"], "--lime-skip")])
def test_the_lime_eval_refuses_an_empty_range_before_loading(capsys, monkeypatch, args, field):
    import lib_regedit.evaluation.cli as eval_cli

    monkeypatch.setattr(eval_cli, "load", lambda *a, **k: pytest.fail("loaded the model for a bad setting"))
    assert main(["eval", "--lime", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"RegEdit: {field}: ") and "whole number" in err
