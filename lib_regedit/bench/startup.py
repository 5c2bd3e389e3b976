"""``python -m lib_regedit.bench startup``: where the seconds of a shell ``regedit generate`` go.

Each run is the real command in a fresh process (``run_as_command`` where the checkout has it, so
its OpenMP wait policy and its quick exit count). Inside it, ``models.load_pipeline`` and
``api.generate`` are wrapped with clocks, and the libraries ``load_pipeline`` would import on first
use (diffusers' pipelines and models, transformers' CLIP) are imported on the imports' clock, so:

- imports: from the process's start to the model's loading: the interpreter, the command line,
  torch, diffusers and transformers;
- model load: reading the weights;
- sampling: ``api.generate`` (layout init and the sampling steps);
- exit: from the command's return to the process's end.

``--checkout`` times another checkout with this one's harness (e.g. an older commit, for a before
and after); the medians of ``--runs`` runs are printed last.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = r'''
import json, os, sys, time
import lib_regedit.cli as cli
if hasattr(cli, "run_as_command"):  # what run_as_command does first, before this harness imports torch
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import lib_regedit.models as models
stamps = {}
def wrap(mod, name, key, first=None):
    inner = getattr(mod, name)
    def timed(*a, **k):
        if first:
            first()
        stamps[key + "_start"] = time.time()
        try:
            return inner(*a, **k)
        finally:
            stamps[key + "_end"] = time.time()
    setattr(mod, name, timed)
def libraries():
    from diffusers import AutoencoderKL, DiffusionPipeline, StableDiffusionPipeline, UNet2DConditionModel  # noqa
    from transformers import CLIPTextModel, CLIPTokenizer  # noqa
wrap(models, "load_pipeline", "load", libraries)
import lib_regedit.api as api
wrap(api, "generate", "sample")
inner_main = cli.main
def main(*a, **k):
    code = inner_main(*a, **k)
    stamps["done"] = time.time()
    print("STAMPS" + json.dumps(stamps), file=sys.stderr, flush=True)
    return code
cli.main = main
if hasattr(cli, "run_as_command"):
    cli.run_as_command("regedit")
else:
    sys.exit(cli.main())
'''

PARTS = ("total", "imports", "model load", "sampling", "exit")


def one_run(checkout: Path, argv: list[str]) -> dict:
    started = time.time()
    res = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, cwd=checkout,
                         env=dict(os.environ, PYTHONPATH=str(checkout)))
    ended = time.time()
    if res.returncode != 0:
        raise SystemExit(res.stderr[-3000:])
    s = json.loads(res.stderr.split("STAMPS")[-1].splitlines()[0])
    return {"total": ended - started, "imports": s["load_start"] - started, "model load": s["load_end"] - s["load_start"],
            "sampling": s["sample_end"] - s["sample_start"], "exit": ended - s["done"]}


def run(args) -> None:
    checkout = Path(args.checkout).resolve()
    out = Path(args.out).resolve()
    argv = ["generate", "--regions", str(checkout / "examples" / "two_shapes.json"), "--out", str(out),
            "--steps", str(args.steps)]
    rows = []
    for _ in range(args.runs):
        rows.append(one_run(checkout, argv))
        print("  ".join(f"{k} {rows[-1][k]:.2f} s" for k in PARTS), flush=True)
    print("median: " + "  ".join(f"{k} {statistics.median(r[k] for r in rows):.2f} s" for k in PARTS))
