"""A first try at the command line that goes wrong ends in one `RegEdit:` line naming the field and
the fix, before any work, never a traceback (the cases a new user met with the bundled model)."""

import json
import re
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


# --- one discipline for every command (issue 35) ---------------------------------------------------------

HEAVY = ("torch", "numpy", "PIL", "diffusers", "transformers", "sklearn")


def test_help_and_a_bad_setting_answer_before_torch_is_imported():
    """``--help`` and a setting refused by its range read no model library: they answer at once."""
    probe = ("import sys\nfrom lib_regedit.cli import main\n"
             "for argv in (['generate', '--regions', sys.argv[1], '--out', 'o.png', '--steps', '0'],\n"
             "             ['drag', '--image', 'in.png', '--drag', 'd.json', '--out', 'o.png', '--end-t', '0.7'],\n"
             "             ['edit', '--image', 'in.png', '--instruction', 'x', '--out', 'o.png', '--strength', '2'],\n"
             "             ['edit-regions', '--regions', sys.argv[1], '--out-source', 's.png']):\n"
             "    assert main(argv) == 2\n"
             "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             f"print([m for m in {HEAVY!r} if m in sys.modules])")
    res = subprocess.run([sys.executable, "-c", probe, str(EXAMPLE)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]", res.stdout
    assert res.stderr.count("RegEdit: ") == 4


@pytest.mark.parametrize("command,args", [
    ("generate", ["--regions", "r.json", "--out", "o.png"]),
    ("drag", ["--image", "in.png", "--drag", "d.json", "--out", "o.png"]),
    ("edit", ["--image", "in.png", "--instruction", "x", "--out", "o.png"]),
    ("edit-regions", ["--regions", "r.json", "--out", "o.png"]),
])
def test_a_mistyped_option_prints_the_commands_own_usage(capsys, command, args):
    with pytest.raises(SystemExit) as exit_:
        main([command, *args, "--sed", "3"], prog="regedit")
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(f"usage: regedit {command} ")
    assert err.strip().endswith(f"regedit {command}: error: unrecognized arguments: --sed 3")


def test_the_command_names_itself(capsys):
    with pytest.raises(SystemExit):
        main(["--help"], prog="regedit")
    assert capsys.readouterr().out.startswith("usage: regedit [-h] {generate,drag,edit,edit-regions,eval}")
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    assert capsys.readouterr().out.startswith("usage: python -m lib_regedit generate ")


@pytest.mark.parametrize("command,flag", [
    (["generate", "--regions", str(EXAMPLE)], "--out"),
    (["generate", "--regions", str(EXAMPLE), "--out", "o.png"], "--preview"),
    (["drag", "--image", "in.png", "--drag", str(ROOT / "examples" / "drag_square.json")], "--out"),
    (["edit", "--image", "in.png", "--instruction", "make it blue"], "--out"),
    (["edit", "--image", "in.png", "--instruction", "make it blue", "--lime", "--out", "o.png"], "--roi-preview"),
    (["edit-regions", "--regions", str(ROOT / "examples" / "edit_change.json"), "--out-source", "s.png"],
     "--out-target"),
])
def test_every_picture_written_is_a_png(tmp_path, capsys, monkeypatch, command, flag):
    """PNG only: the parameters text that makes the image again would be lost in a JPEG (which ``--out
    o.jpg`` used to write, though the help promised a PNG). Refused before any work."""
    import lib_regedit.models as models

    monkeypatch.setattr(models, "load_pipeline", lambda *a, **k: pytest.fail("loaded the model"))
    monkeypatch.chdir(tmp_path)
    assert main([*command, flag, "o.jpg"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"RegEdit: {flag}: o.jpg is not a .png file") and "name it o.png" in err
    assert not (tmp_path / "o.jpg").exists()


def test_edit_roles_given_to_generate_are_refused(tmp_path, capsys, monkeypatch):
    """A region with an edit role asks for an edit pair; generate used to draw it as a plain region."""
    import lib_regedit.models as models

    monkeypatch.setattr(models, "load_pipeline", lambda *a, **k: pytest.fail("loaded the model"))
    pair = ROOT / "examples" / "edit_change.json"
    assert main(["generate", "--regions", str(pair), "--out", str(tmp_path / "o.png")], prog="regedit") == 2
    err = capsys.readouterr().err
    assert err.startswith("RegEdit: regions[0].edit: is 'change': an edit role asks for an edit pair")
    assert f"regedit edit-regions --regions {pair} --out-source SOURCE.png --out-target TARGET.png" in err


def test_the_python_api_refuses_edit_roles_too():
    from lib_regedit.api import generate
    from lib_regedit.errors import RegEditError
    from lib_regedit.models import default_model_path, load_pipeline

    if not (default_model_path() / "model_index.json").exists():
        pytest.skip("the bundled model is missing")
    pipe = load_pipeline(default_model_path())
    with pytest.raises(RegEditError) as info:
        generate(pipe, (ROOT / "examples" / "edit_change.json").read_text())
    assert info.value.field == "regions[0].edit" and "edit_pair" in info.value.fix


def test_an_empty_regions_list_gets_a_note(tmp_path, capsys):
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps({"prompt": "a red circle", "regions": []}))
    assert main(["generate", "--regions", str(doc), "--out", str(tmp_path / "out" / "o.png"), "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "note: regions: the list is empty, so this is the prompt alone" in out
    assert (tmp_path / "out" / "o.png").exists()  # the output's folder is made


def test_generate_shows_one_bar_per_phase_with_its_total(tmp_path, capfd):
    """Loading (diffusers' components, without the text encoder's nested bar), the layout's inversion
    and the sampling: each its own bar, named, counting to its own total."""
    res = subprocess.run([sys.executable, "-m", "lib_regedit", "generate", "--regions", str(EXAMPLE), "--out",
                          str(tmp_path / "o.png"), "--steps", "3"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    last = {}  # each bar's last state, in the order the bars opened
    for line in re.split(r"[\r\n]", res.stderr):
        if "%|" in line:
            last[line.split(":", 1)[0]] = line
    assert list(last) == ["Loading pipeline components...", "layout init", "sampling"], res.stderr
    assert "100%" in last["layout init"] and "3/3" in last["layout init"]
    assert "100%" in last["sampling"] and "3/3" in last["sampling"]
    assert "Loading weights" not in res.stderr
    assert res.stdout.splitlines()[0] == f"wrote {tmp_path / 'o.png'}"


@pytest.mark.parametrize("args,message", [
    (["--inversion", "nulltext"], "RegEdit: --inversion: is read only with --image"),
    (["--nulltext-iterations", "3"], "RegEdit: --nulltext-iterations: is read only with --image --inversion nulltext"),
    (["--image", "in.png", "--out", "a.png", "--out-target", "b.png"], "RegEdit: --out-target: names another file"),
])
def test_edit_regions_flags_it_would_not_read_are_refused(tmp_path, capsys, args, message):
    pair = ROOT / "examples" / "edit_change.json"
    outputs = [] if "--image" in args else ["--out-source", str(tmp_path / "s.png"), "--out-target",
                                            str(tmp_path / "t.png")]
    assert main(["edit-regions", "--regions", str(pair), *outputs, *args]) == 2
    assert capsys.readouterr().err.startswith(message)
