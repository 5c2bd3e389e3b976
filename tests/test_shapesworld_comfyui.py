"""ShapesWorld in ComfyUI, without ComfyUI: ``python -m lib_regedit.shapesworld.comfyui_install`` copies the
checkpoints with the yaml and text encoder folder that ``lib_regedit.comfy.shapesworld.load`` reads, and
``load`` names what is missing. (Loading and sampling in a real ComfyUI is checked by hand; CI has none.)"""

import subprocess
import sys

import pytest

from lib_regedit.comfy import shapesworld
from lib_regedit.errors import RegEditError
from lib_regedit.shapesworld import comfyui_install

MODELS = comfyui_install.MODELS


def test_install_into_a_comfyui_root(tmp_path, capsys):
    (tmp_path / "models" / "checkpoints").mkdir(parents=True)
    assert comfyui_install.main([str(tmp_path)]) == 0
    folder = tmp_path / "models" / "checkpoints" / "regedit"
    printed = capsys.readouterr().out
    for name in ("shapesworld", "shapesworld_instruct"):
        ckpt = folder / f"{name}.safetensors"
        assert ckpt.read_bytes() == (MODELS / f"{name}.safetensors").read_bytes()
        assert f"wrote {ckpt}" in printed and f"wrote {ckpt.with_suffix('.yaml')}" in printed
        yaml = ckpt.with_suffix(".yaml").read_text().splitlines()
        shipped = (MODELS / f"{name}.yaml").read_text().splitlines()
        assert len(yaml) == len(shipped)
        assert [a.strip() for a, b in zip(yaml, shipped) if a != b] == ["version: shapesworld_clip"]  # only that
    for f in comfyui_install.CLIP_FILES:
        assert (folder / "shapesworld_clip" / f).read_bytes() == (MODELS / "shapesworld_clip" / f).read_bytes()
    assert "16x16 latent" in printed


def test_installed_copy_resolves_to_its_own_files(tmp_path):
    """What ``load`` reads for a copied file: the copy, the yaml beside it, the text encoder folder beside it."""
    out = comfyui_install.install(tmp_path, names=("shapesworld",))
    ckpt = out["checkpoints"][0]
    assert ckpt == tmp_path / "regedit" / "shapesworld.safetensors"  # a checkpoint folder itself
    assert shapesworld.checkpoint_path(str(ckpt)) == ckpt
    assert shapesworld.yaml_path(ckpt) == ckpt.with_suffix(".yaml")
    pytest.importorskip("yaml")
    config = shapesworld.read_config(ckpt.with_suffix(".yaml"))
    assert shapesworld.clip_folder(ckpt, config["version"]) == out["clip"]
    assert config["scale_factor"] == pytest.approx(0.781922) and config["num_heads"] == 4
    assert (config["linear_start"], config["linear_end"], config["timesteps"]) == (0.00085, 0.012, 1000)
    assert shapesworld.downscale(config) == 4 and not config["instruct"] and config["context_dim"] == 128


def test_bundled_names_and_instruct_config():
    for name in shapesworld.NAMES:
        assert shapesworld.checkpoint_path(name) == MODELS / f"{name}.safetensors"
    pytest.importorskip("yaml")
    config = shapesworld.read_config(shapesworld.yaml_path(MODELS / "shapesworld_instruct.safetensors"))
    assert config["instruct"] and config["in_channels"] == 8
    # the shipped yaml's version is relative to the WebUI root: the loader falls back to the bundled folder
    assert shapesworld.clip_folder(MODELS / "shapesworld.safetensors", config["version"]) == MODELS / "shapesworld_clip"


def test_install_errors_name_the_fix(tmp_path, capsys):
    assert comfyui_install.main([str(tmp_path / "nope")]) == 2
    assert "RegEdit: comfyui:" in capsys.readouterr().err
    with pytest.raises(RegEditError, match="shapesworld.safetensors is missing"):
        comfyui_install.install(tmp_path, models=tmp_path / "empty")
    assert not (tmp_path / "regedit").exists()  # nothing written before the check
    with pytest.raises(RegEditError, match="version"):
        comfyui_install.yaml_with_clip_folder("model: {}\n")


def test_load_errors_without_comfyui(tmp_path, monkeypatch):
    with pytest.raises(RegEditError, match="no ShapesWorld checkpoint 'nope'.*comfyui_install"):
        shapesworld.checkpoint_path("nope")
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes(b"")
    with pytest.raises(RegEditError, match="lone.yaml is missing"):
        shapesworld.yaml_path(lone)
    monkeypatch.setitem(sys.modules, "comfy", None)  # as where ComfyUI is not installed
    with pytest.raises(RegEditError, match="RegEdit: comfyui: ComfyUI's modules cannot be imported"):
        shapesworld.load("shapesworld")


def test_module_imports_without_comfyui():
    code = ("import sys; sys.modules['comfy'] = None; sys.modules['folder_paths'] = None; "
            "import lib_regedit.comfy.shapesworld as s; print(s.NAMES, s.DOWNSCALE)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "('shapesworld', 'shapesworld_instruct') 4" in out.stdout


def test_empty_latent_and_installed_names():
    torch = pytest.importorskip("torch")
    latent = shapesworld.empty_latent(64, 48, 2)["samples"]
    assert latent.shape == (2, 4, 12, 16) and latent.dtype == torch.float32 and not latent.any()
    with pytest.raises(RegEditError, match="multiple of 4"):
        shapesworld.empty_latent(62, 64)
    names = ["sd15.safetensors", "regedit/shapesworld.safetensors", "regedit\\shapesworld_instruct.safetensors",
             "regedit/other.safetensors", "x/regedit/shapesworld.safetensors"]
    assert shapesworld.installed_names(names) == names[1:3]
