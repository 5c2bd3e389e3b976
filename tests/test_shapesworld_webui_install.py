"""``python -m lib_regedit.shapesworld.webui_install``: the bundled checkpoint and a yaml whose text
encoder path is absolute, so the WebUI finds it whatever the extension folder is called."""

import pytest
from omegaconf import OmegaConf

from lib_regedit.errors import RegEditError
from lib_regedit.models import default_model_path
from lib_regedit.shapesworld import webui_install

MODELS = default_model_path().parent


def test_install_into_a_webui_root(tmp_path):
    (tmp_path / "models").mkdir()
    out = webui_install.install(tmp_path)
    ckpt_dir = tmp_path / "models" / "Stable-diffusion"
    assert out["checkpoint"] == ckpt_dir / "shapesworld.safetensors"
    assert out["checkpoint"].read_bytes() == (MODELS / "shapesworld.safetensors").read_bytes()
    config = OmegaConf.load(out["yaml"])
    version = config.model.params.cond_stage_config.params.version
    assert version == (MODELS / "shapesworld_clip").resolve().as_posix()
    assert (MODELS / "shapesworld_clip" / "config.json").exists()
    shipped = OmegaConf.load(MODELS / "shapesworld.yaml")
    shipped.model.params.cond_stage_config.params.version = version
    assert config == shipped  # nothing else changed


def test_install_into_a_checkpoint_folder_and_main(tmp_path, capsys):
    assert webui_install.main([str(tmp_path)]) == 0
    assert (tmp_path / "shapesworld.yaml").exists() and (tmp_path / "shapesworld.safetensors").exists()
    assert "64x64" in capsys.readouterr().out


def test_errors_name_the_fix(tmp_path, capsys):
    assert webui_install.main([str(tmp_path / "nope")]) == 2
    assert "RegEdit: webui:" in capsys.readouterr().err
    with pytest.raises(RegEditError, match="version"):
        webui_install.yaml_with_version("model: {}\n", tmp_path)
