#!/usr/bin/env bash
# Sets up .venv for lib_regedit on a fresh machine: `bash setup.sh` (the engine and the `regedit` command),
# `bash setup.sh --test` (and the tests). Nothing here downloads model weights: the bundled ShapesWorld model
# ships in models/.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip
# CPU torch; on this workplace's machines the 2.13.0 CPU wheel lies on local disk.
.venv/bin/python -c "import torch" 2>/dev/null || $PIP install -q torch==2.13.0
$PIP install -q -r requirements-diffusers.txt
$PIP install -q --no-deps open_clip_torch==3.3.0
if [ "${1:-}" = "--test" ]; then
  $PIP install -q -r requirements-test.txt
  $PIP install -q --no-deps stable-diffusion-sdkit==2.1.5
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
    else
      echo "setup.sh: install Debian's chromium (sudo apt-get install chromium) for the browser tests" >&2
    fi
  fi
fi
# The regedit command (pyproject.toml's console script, the same as `python -m lib_regedit`), installed in
# place: the command runs this checkout, edits included. setuptools 70.1 or later builds it without the
# `wheel` package and without a build environment to download, so a second run works offline.
.venv/bin/python -c "import setuptools, sys; sys.exit(tuple(map(int, setuptools.__version__.split('.')[:2])) < (70, 1))" \
  2>/dev/null || $PIP install -q "setuptools>=70.1"
$PIP install -q --no-deps --no-build-isolation -e .
echo "setup.sh: done; run .venv/bin/regedit --help (or activate .venv: source .venv/bin/activate)"
