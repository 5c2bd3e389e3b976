"""The README's commands run as written (issue 35), and the README stays the user's document.

The convention: every command line in one of the README's ```bash blocks that calls the engine
(``python -m lib_regedit ...``, or the ``regedit`` command) is run, from a fresh folder that holds the
repository's ``examples/`` (as a clone does), in a subprocess: ``.venv/bin/python`` is this test's
interpreter, and a leading ``bash setup.sh &&`` is dropped (the CI ran it before the tests). Each must
exit 0 and write every PNG it names (``--out``, ``--out-source``, ``--out-target``, ``--preview``,
``--roi-preview``), all under ``out/``, which git ignores, and nothing else. A synopsis that is not
meant to run (``[--options]``) belongs in a ```text block.

The commands take about a minute and a half on two CPU cores (start-up and model load are most of
each one), so they are marked ``slow``; the CI runs them all the same.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
OUTPUT_FLAGS = ("--out", "--out-source", "--out-target", "--preview", "--roi-preview")
MAX_LINES = 400
SETUP_WITHIN = 60


def bash_blocks(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^```bash\n(.*?)^```", text, re.S | re.M)]


def readme_commands() -> list[str]:
    """The engine's command lines in the README's bash blocks, continuation lines joined."""
    commands = []
    for block in bash_blocks(README.read_text(encoding="utf-8")):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and re.search(r"-m lib_regedit\b|(^|&&\s*)(\S*/)?regedit\s", line):
                commands.append(line)
    return commands


def argv(command: str) -> list[str]:
    """The command as this test runs it: set-up dropped, the venv's Python (or ``regedit``) replaced by
    this interpreter."""
    parts = [p.strip() for p in command.split("&&")]
    parts = [p for p in parts if not p.startswith("bash setup.sh")]
    assert len(parts) == 1, f"one engine command per line after the set-up: {command}"
    words = shlex.split(parts[0])
    if words[0].endswith("python") and words[1:3] == ["-m", "lib_regedit"]:
        return [sys.executable, *words[1:]]
    if Path(words[0]).name == "regedit":
        return [sys.executable, "-m", "lib_regedit", *words[1:]]
    raise AssertionError(f"not an engine command: {command}")


def outputs(words: list[str]) -> list[str]:
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w in OUTPUT_FLAGS]


COMMANDS = readme_commands()


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A folder laid out as a fresh clone's root, as far as the commands read it."""
    folder = tmp_path_factory.mktemp("clone")
    (folder / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    return folder


def test_the_readme_has_commands_to_run():
    assert len(COMMANDS) >= 8, COMMANDS
    names = " ".join(COMMANDS)
    for sub in ("generate", "edit-regions", "edit ", "drag"):
        assert f"lib_regedit {sub}" in names, f"no README command runs {sub!r}"


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=[f"{i}-{shlex.split(c.split('&&')[-1])[3]}" for i, c in enumerate(COMMANDS)])
def test_readme_command_runs_as_written(command, clone):
    words = argv(command)
    written = outputs(words)
    assert written, f"the command names no output: {command}"
    for path in written:
        assert path.startswith("out/"), f"{path}: README commands write into out/ (git ignores it)"
        (clone / path).unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    done = subprocess.run(words, cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{command}\nexited {done.returncode}:\n{done.stderr[-3000:]}"
    for path in written:
        with Image.open(clone / path) as image:
            assert image.format == "PNG" and min(image.size) >= 64, path
    assert sorted(p.name for p in clone.iterdir()) in (["examples"], ["examples", "out"]), \
        f"{command} wrote outside out/: {sorted(p.name for p in clone.iterdir())}"


def test_out_is_ignored_by_git():
    lines = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert lines & {"out/", "/out/", "out"}, "add /out/ to .gitignore: the README's commands write there"


def test_the_readme_is_short_and_opens_with_a_picture_and_the_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"the README has {len(lines)} lines; at most {MAX_LINES} (the rest goes in docs/)"
    setup = [i for i, line in enumerate(lines) if line.startswith("bash setup.sh &&")]
    assert setup and setup[0] < SETUP_WITHIN, "the set-up command belongs in the README's first 60 lines"
    assert any(line.startswith("![") for line in lines[:15]), "the README's first screen shows a picture"


def test_the_readme_test_command_is_the_ci_one():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith("#")]
    readme = [line for block in bash_blocks(README.read_text(encoding="utf-8")) for line in block.splitlines()
              if line.startswith("bash setup.sh --test && ")]
    assert len(readme) == 1, "the README gives one test command"
    assert readme[0].split("&& ", 1)[1] == ci[-1], f"the README's test command is not .ci/run's ({ci[-1]})"


def _without_code(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # links in code blocks are not links


def _anchors(markdown: Path) -> set[str]:
    """GitHub's anchors for the page's headings."""
    headings = re.findall(r"^#+ (.*)$", _without_code(markdown.read_text(encoding="utf-8")), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", [README, *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_every_link_and_picture_exists(page):
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _without_code(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = page.parent / path if path else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
            missing.append(target)
    assert not missing, f"{page.relative_to(ROOT)} links to missing files or headings: {missing}"


def test_every_drag_example_comes_with_its_picture_and_the_handle_holds_an_object():
    import numpy as np

    drags = [p for p in sorted((ROOT / "examples").glob("*.json")) if "pairs" in json.loads(p.read_text())]
    assert drags
    for doc in drags:
        picture = doc.with_suffix(".png")
        assert picture.exists(), f"{doc.name} has no input picture {picture.name}"
        image = np.asarray(Image.open(picture).convert("RGB"), dtype=int)
        height, width, _ = image.shape
        ink = (image.max(axis=2) - image.min(axis=2)) > 60  # coloured pixels: the shapes
        for pair in json.loads(doc.read_text())["pairs"]:
            for part, wanted in (("handle", True), ("target", False)):
                xs = [x for x, _ in pair[part]["points"]]
                ys = [y for _, y in pair[part]["points"]]
                box = ink[round(min(ys) * height):round(max(ys) * height), round(min(xs) * width):round(max(xs) * width)]
                share = box.mean()
                if wanted:
                    assert share > 0.3, f"{picture.name}: the {part} of {doc.name} holds no object ({share:.2f} coloured)"
                else:
                    assert share < 0.02, f"{picture.name}: the {part} of {doc.name} is not free ({share:.2f} coloured)"
