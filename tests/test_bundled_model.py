"""The bundled ShapesWorld model (issue 4): the README's main command draws a recognisable layout.

These run the real shipped weights in ``models/`` through the command line and score the images with
the classical detector of ``lib_regedit.evaluation``; a few seconds on one CPU thread.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from lib_regedit.cli import main
from lib_regedit.evaluation import metrics
from lib_regedit.evaluation.detector import detect
from lib_regedit.models import default_model_path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "two_shapes.json"
SEEDS = range(4)


def _objects(doc):
    return [(r["prompt"].split()[1], r["prompt"].split()[2], (r["x"], r["y"], r["w"], r["h"]))
            for r in doc["regions"] if r.get("role") != "background"]


@pytest.fixture(scope="module")
def bundled():
    if not (default_model_path() / "model_index.json").exists():
        pytest.skip("the bundled model is missing (a checkout without models/)")
    return default_model_path()


def test_main_command_draws_the_layout(bundled, tmp_path):
    doc = json.loads(EXAMPLE.read_text())
    hits = []
    for seed in SEEDS:
        out = tmp_path / f"out{seed}.png"
        assert main(["generate", "--regions", str(EXAMPLE), "--out", str(out), "--seed", str(seed)]) == 0
        image = Image.open(out)
        assert image.size == (64, 64)  # the model's native size, with no --width/--height
        found = detect(image)
        hits += [metrics.box_adherence(found, box, colour, shape) for colour, shape, box in _objects(doc)]
    assert sum(hits) >= len(hits) - 1, f"{sum(hits)} of {len(hits)} boxes hold their object"


def test_single_object_prompts(bundled, tmp_path):
    """Without regions, the model draws what a one-object caption asks for."""
    from lib_regedit.api import generate_plain
    from lib_regedit.models import load_pipeline

    pipe = load_pipeline(bundled)
    pipe.set_progress_bar_config(disable=True)
    right = 0
    cases = [("red", "circle"), ("green", "square"), ("blue", "triangle"), ("yellow", "circle")]
    for colour, shape in cases:
        for seed in (0, 1):
            image = generate_plain(pipe, f"a {colour} {shape}", seed=seed, steps=20).image
            right += any(d.colour == colour and d.shape == shape for d in detect(image))
    assert right >= 2 * len(cases) - 2, f"{right} of {2 * len(cases)} images hold their object"
