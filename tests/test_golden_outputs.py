"""Golden outputs: the command line's images on the bundled ShapesWorld models, fixed seeds.

A refactor must not change what a user gets. Each case runs one command in-process and compares its
PNG with the one kept in ``tests/golden/`` (64×64, a few kB each), within one grey level: float
sums can round differently with the thread count, a real change moves far more than that.

Regenerate after an intended change of outputs (and say why in the commit):
``REGEDIT_GOLDEN_UPDATE=1 .venv/bin/python -m pytest tests/test_golden_outputs.py``
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib_regedit.cli import main

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
EXAMPLES = ROOT / "examples"
UPDATE = os.environ.get("REGEDIT_GOLDEN_UPDATE") == "1"
STEPS = ["--steps", "8"]


def _check(name: str, produced: Path) -> None:
    kept = GOLDEN / f"{name}.png"
    image = np.asarray(Image.open(produced).convert("RGB"), dtype=np.int16)
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        Image.open(produced).convert("RGB").save(kept)
        return
    assert kept.exists(), f"no golden image {kept.name}: run with REGEDIT_GOLDEN_UPDATE=1 once"
    expected = np.asarray(Image.open(kept).convert("RGB"), dtype=np.int16)
    assert image.shape == expected.shape, f"{name}: size {image.shape} != {expected.shape}"
    worst = int(np.abs(image - expected).max())
    assert worst <= 1, f"{name}: differs from tests/golden/{name}.png by up to {worst} grey levels"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """The picture the editing commands start from: the main job's image (two shapes in their boxes)."""
    out = tmp_path_factory.mktemp("golden") / "source.png"
    assert main(["generate", "--regions", str(EXAMPLES / "two_shapes.json"), "--out", str(out), "--seed", "1",
                 *STEPS]) == 0
    return out


def test_generate_defaults(source):
    _check("generate_defaults", source)


def test_generate_latent_kssa_guidance(tmp_path):
    out = tmp_path / "out.png"
    assert main(["generate", "--regions", str(EXAMPLES / "two_shapes.json"), "--out", str(out), "--seed", "2",
                 "--mode", "latent", "--init", "noise", *STEPS]) == 0
    _check("generate_latent", out)
    out = tmp_path / "kssa.png"
    assert main(["generate", "--regions", str(EXAMPLES / "two_shapes.json"), "--out", str(out), "--seed", "3",
                 "--kssa", "--guidance", "30", *STEPS]) == 0
    _check("generate_kssa_guidance", out)


def test_drag(source, tmp_path):
    out = tmp_path / "drag.png"
    assert main(["drag", "--image", str(source), "--drag", str(EXAMPLES / "drag_square.json"), "--out", str(out),
                 "--seed", "4", *STEPS]) == 0
    _check("drag", out)


def test_drag_document_version_1_keeps_regiondrags_own_fill(source, tmp_path):
    """The example as a version 1 document: the golden is the drag's output from before version 2."""
    document = tmp_path / "drag_v1.json"
    document.write_text(json.dumps(dict(json.loads((EXAMPLES / "drag_square.json").read_text()), version=1)))
    out = tmp_path / "drag_v1.png"
    assert main(["drag", "--image", str(source), "--drag", str(document), "--out", str(out), "--seed", "4",
                 *STEPS]) == 0
    _check("drag_v1", out)


def test_edit_lime(source, tmp_path):
    out = tmp_path / "lime.png"
    assert main(["edit", "--image", str(source), "--instruction", "make the red circle blue", "--lime",
                 "--out", str(out), "--seed", "5", *STEPS]) == 0
    _check("edit_lime", out)


def _version(tmp_path, name, version: int = 3):
    """The example document ``name`` as ``version`` wrote it (3: MRGD's pair, with nothing kept
    outside the edits)."""
    path = tmp_path / f"v{version}_{name}"
    path.write_text(json.dumps(dict(json.loads((EXAMPLES / name).read_text()), version=version)))
    return path


def test_edit_regions_pair(tmp_path):
    src, tgt = tmp_path / "src.png", tmp_path / "tgt.png"
    assert main(["edit-regions", "--regions", str(_version(tmp_path, "edit_change.json")), "--out-source", str(src),
                 "--out-target", str(tgt), "--seed", "6", *STEPS]) == 0
    _check("pair_source", src)
    _check("pair_target", tgt)
    src, tgt = tmp_path / "src2.png", tmp_path / "tgt2.png"
    assert main(["edit-regions", "--regions", str(_version(tmp_path, "edit_add_remove.json")), "--out-source",
                 str(src), "--out-target", str(tgt), "--seed", "7", "--guidance", *STEPS]) == 0
    _check("pair_add_remove_guided_target", tgt)


def test_edit_regions_pair_keeping_the_rest(tmp_path):
    src, tgt = tmp_path / "src.png", tmp_path / "tgt.png"
    assert main(["edit-regions", "--regions", str(EXAMPLES / "edit_add_remove.json"), "--out-source", str(src),
                 "--out-target", str(tgt), "--seed", "7", *STEPS]) == 0
    _check("pair_add_remove_source", src)
    _check("pair_add_remove_kept_target", tgt)


def test_an_older_pair_keeps_its_added_regions_start(tmp_path):
    """The example as a version 5 document: the golden is the kept pair's target from before version 6
    started an added region from its sketch with less of the seed's noise."""
    src, tgt = tmp_path / "src.png", tmp_path / "tgt.png"
    assert main(["edit-regions", "--regions", str(_version(tmp_path, "edit_add_remove.json", 5)), "--out-source",
                 str(src), "--out-target", str(tgt), "--seed", "7", *STEPS]) == 0
    _check("pair_add_remove_source", src)
    _check("pair_add_remove_kept_target_v5", tgt)


@pytest.mark.parametrize("inversion", ["negative", "ddim"])
def test_edit_regions_picture(source, tmp_path, inversion):
    out, recon = tmp_path / "edit.png", tmp_path / "recon.png"
    assert main(["edit-regions", "--regions", str(EXAMPLES / "edit_change.json"), "--image", str(source),
                 "--inversion", inversion, "--out", str(out), "--out-source", str(recon), "--seed", "8",
                 *STEPS]) == 0
    _check(f"picture_{inversion}", out)
    _check(f"picture_{inversion}_reconstruction", recon)


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("inversion", ["negative", "ddim"])
def test_an_older_picture_edit_keeps_its_paste(source, tmp_path, inversion, version):
    """The example as a version 3 or 4 document: the golden is the edit's output from before version 4's
    seamless paste (3), or from before version 5 gave back the pixels the edit changed by a few levels
    only (4)."""
    out = tmp_path / "edit.png"
    assert main(["edit-regions", "--regions", str(_version(tmp_path, "edit_change.json", version)), "--image",
                 str(source), "--inversion", inversion, "--out", str(out), "--seed", "8", *STEPS]) == 0
    _check(f"picture_{inversion}_v{version}", out)
