"""WebUI Forge end-to-end fixtures: one real Forge for the whole session, always stopped at the end.

Skipped, with the reason, unless ``FORGE_DIR`` (a WebUI Forge checkout, prepared as
``tests/e2e/README.md`` says) and ``FORGE_PY`` (its Python) are set. ``REGEDIT_E2E_FORGE_SDXL=1`` also
writes and tests an SDXL-family checkpoint (about 3.3 GB). ``REGEDIT_E2E_WORK`` keeps the work folder.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_webui import (FORGE_SD1, ForgeWebUI, check_forge_install, log, pixels, plain_payload, serve,  # noqa: E402
                       skip_unless_installed)

HERE = Path(__file__).resolve().parent
SKIP_REASON = check_forge_install(os.environ.get("FORGE_DIR"), os.environ.get("FORGE_PY"))
SDXL = os.environ.get("REGEDIT_E2E_FORGE_SDXL") == "1"


def pytest_collection_modifyitems(config, items):
    skip_unless_installed(items, HERE, SKIP_REASON)


@pytest.fixture(scope="session")
def forge(request):
    if SKIP_REASON is not None:
        pytest.skip(SKIP_REASON)
    keep = os.environ.get("REGEDIT_E2E_WORK")
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="regedit-forge-e2e-"))
    server = ForgeWebUI(os.environ["FORGE_DIR"], os.environ["FORGE_PY"], work, log=log, sdxl=SDXL)
    return serve(request, server, work, bool(keep))


@pytest.fixture(scope="session")
def forge_baseline(forge):
    """Plain images taken before any RegEdit run."""
    return {"single": _plain(forge), "batch": _plain(forge, batch_size=3, sampler_name="DPM++ 2M")}


def _plain(forge, **over):
    res = forge.generate("txt2img", plain_payload(**over), model=FORGE_SD1)
    return [pixels(b) for b in res["images"]]


@pytest.fixture
def assert_plain_unchanged(forge, forge_baseline):
    """Call after RegEdit runs: plain generations must be bit-identical to the ones before."""
    def check(context: str):
        assert forge.alive(), f"Forge died after {context}:\n{forge.log_tail()}"
        assert _plain(forge) == forge_baseline["single"], f"a plain generation changed after {context}"
        assert _plain(forge, batch_size=3, sampler_name="DPM++ 2M") == forge_baseline["batch"], \
            f"a plain batch changed after {context}"
    return check
