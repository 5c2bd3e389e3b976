"""``pip install .`` gives the engine and the ``regedit`` command, outside the checkout."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_package_installs_and_its_command_runs(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and egg-info beside the sources
    source.mkdir()
    shutil.copytree(ROOT / "lib_regedit", source / "lib_regedit", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    target = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
                          "--target", str(target), str(source)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (target / "lib_regedit" / "drag" / "mapping.py").exists()
    assert (target / "bin" / "regedit").exists()
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("REGEDIT_MODEL", None)
    run = lambda *args: subprocess.run([sys.executable, "-c", "from lib_regedit.cli import console; console()", *args],  # noqa: E731
                                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    help_text = run("--help")
    assert help_text.returncode == 0 and "generate" in help_text.stdout and "drag" in help_text.stdout
    # installed from a wheel, the bundled model is not beside the package: a clear message, not a traceback
    doc = tmp_path / "doc.json"
    doc.write_text('{"regions": [{"x": 0, "y": 0, "w": 0.5, "h": 0.5, "prompt": "a red circle"}]}')
    missing = run("generate", "--regions", str(doc), "--out", str(tmp_path / "o.png"))
    assert missing.returncode == 2 and missing.stderr.startswith("RegEdit: --model: the bundled model is not at")
    # REGEDIT_MODEL points it at the checkout's model
    env["REGEDIT_MODEL"] = str(ROOT / "models" / "shapesworld")
    ok = run("generate", "--regions", str(doc), "--out", str(tmp_path / "o.png"), "--steps", "2")
    assert ok.returncode == 0, ok.stderr[-2000:]


def test_setup_installs_the_regedit_command(tmp_path):
    """``bash setup.sh`` ends by installing the ``regedit`` command in place (its last block, run here in a
    fresh venv with the checkout's files): the command names itself in its usage, and its help and a
    mistyped option answer without torch, which this venv does not have."""
    source = tmp_path / "checkout"
    source.mkdir()
    shutil.copytree(ROOT / "lib_regedit", source / "lib_regedit", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "setup.sh"):
        shutil.copy(ROOT / name, source / name)
    lines = (source / "setup.sh").read_text().splitlines()
    block = "\n".join(lines[next(i for i, line in enumerate(lines) if line.startswith("# The regedit command")):])
    assert "-e ." in block
    subprocess.run([sys.executable, "-m", "venv", str(source / ".venv")], check=True, timeout=300)
    res = subprocess.run(["bash", "-c", f'set -euo pipefail\nPIP=".venv/bin/python -m pip"\n{block}'], cwd=source,
                         capture_output=True, text=True, timeout=600)
    if res.returncode and "setuptools" in res.stderr and ("No matching distribution" in res.stderr
                                                          or "connection" in res.stderr.lower()):
        pytest.skip("no package index to install setuptools from")
    assert res.returncode == 0, res.stderr[-2000:]
    command = source / ".venv" / "bin" / "regedit"
    assert command.exists()
    help_text = subprocess.run([str(command), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert help_text.returncode == 0 and help_text.stdout.startswith("usage: regedit "), help_text.stderr
    typo = subprocess.run([str(command), "drag", "--image", "in.png", "--out", "o.png", "--strat-t", "0.5"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert typo.returncode == 2 and typo.stderr.startswith("usage: regedit drag ")
    assert typo.stderr.strip().endswith("regedit drag: error: unrecognized arguments: --strat-t 0.5")


def _requirements(name: str) -> dict:
    """``{package: line}`` of a requirements file (comments and ``-r`` includes left out)."""
    import re

    out = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-r"):
            out[re.split(r"[<>=!~ ]", line, maxsplit=1)[0].lower()] = line
    return out


def test_the_host_requirements_pin_nothing_a_host_ships():
    """ComfyUI-Manager installs requirements.txt into ComfyUI's own Python: it holds only what the
    hosts lack (install.py's list), never torch, diffusers or transformers; the diffusers engine's
    pins live in requirements-diffusers.txt (setup.sh) and match pyproject.toml."""
    import tomllib

    host = _requirements("requirements.txt")
    assert not {"torch", "diffusers", "transformers", "accelerate"} & set(host), host
    install = (ROOT / "install.py").read_text()
    assert all(f'"{package}"' in install for package in host), "install.py and requirements.txt disagree"
    engine = _requirements("requirements-diffusers.txt")
    assert "-r requirements.txt" in (ROOT / "requirements-diffusers.txt").read_text()
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for line in declared:
        name = line.split("=")[0].split(">")[0].strip().lower()
        assert name in engine or name in host, f"{line} is in pyproject.toml and in no requirements file"
        if "==" in line:
            assert engine[name] == line, (engine[name], line)


def test_install_py_does_nothing_outside_the_webui(tmp_path):
    """ComfyUI-Manager runs install.py as well, where the WebUI's ``launch`` module does not exist."""
    res = subprocess.run([sys.executable, str(ROOT / "install.py")], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0 and not res.stdout.strip(), res.stderr[-2000:]
