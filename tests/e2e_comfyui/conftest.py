"""ComfyUI end-to-end fixtures: one real ComfyUI for the whole session, always stopped at the end.

Skipped, with the reason, unless ``COMFYUI_DIR`` (a ComfyUI checkout, prepared as ``tests/e2e/README.md``
says) and ``COMFYUI_PY`` (its Python) are set. ``REGEDIT_E2E_COMFYUI_SDXL=1`` also writes an SDXL-family
checkpoint (3.3 GB) and runs the SDXL cases. ``REGEDIT_E2E_WORK`` keeps the work folder (checkpoints,
``comfyui.log``, outputs) and reuses its checkpoints next time. ``REGEDIT_E2E_COMFYUI_URL`` attaches to a
ComfyUI started earlier with the same work folder (debugging only; nothing is started or stopped).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[0] / "e2e"))
sys.path.insert(0, str(HERE.parents[0] / "browser"))  # browser_support: chromium_path

from comfy_client import WITH_SDXL, ComfyUI, check_install, plain_workflow  # noqa: E402
from e2e_webui import log, serve, skip_unless_installed  # noqa: E402

SKIP_REASON = check_install(os.environ.get("COMFYUI_DIR"), os.environ.get("COMFYUI_PY"))


def pytest_collection_modifyitems(config, items):
    skip_unless_installed(items, HERE, SKIP_REASON)


@pytest.fixture(scope="session")
def comfy(request):
    if SKIP_REASON is not None:
        pytest.skip(SKIP_REASON)
    keep = os.environ.get("REGEDIT_E2E_WORK")
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="regedit-comfyui-e2e-"))
    server = ComfyUI(os.environ["COMFYUI_DIR"], os.environ["COMFYUI_PY"], work, log=log, sdxl=WITH_SDXL)
    attach = os.environ.get("REGEDIT_E2E_COMFYUI_URL")
    if attach:
        server.url = attach.rstrip("/")
        server.wait_ready(60)
        return server
    # serve(): the finalizer (process group stopped, link removed, work folder removed after a green run)
    # is registered before the start, and SIGTERM to pytest runs it too
    return serve(request, server, work, bool(keep))


@pytest.fixture(scope="session")
def comfy_baseline(comfy):
    """Plain SD 1.5 images taken before any RegEdit run: batch 1 (euler) and batch 2 (dpmpp_2m)."""
    return {"single": comfy.images(plain_workflow()),
            "batch": comfy.images(plain_workflow(batch=2, sampler="dpmpp_2m"))}


@pytest.fixture
def assert_plain_unchanged(comfy, comfy_baseline):
    """Call after RegEdit runs: plain workflows, run again on the loader's cached model, must give
    bit-identical pixels (no patch left on the shared ModelPatcher)."""
    import numpy as np

    def check(context: str):
        assert comfy.alive(), f"ComfyUI died after {context}:\n{comfy.log_tail()}"
        for name, wf in (("single", plain_workflow()), ("batch", plain_workflow(batch=2, sampler="dpmpp_2m"))):
            got = comfy.images(wf)
            want = comfy_baseline[name]
            assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want)), \
                f"a plain {name} workflow changed after {context}"
    return check

