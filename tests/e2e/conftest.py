"""End-to-end fixtures: one real WebUI for the whole session, always stopped at the end.

Skipped, with the reason, unless ``A1111_DIR`` (a WebUI v1.10 checkout) and ``A1111_PY`` (its Python)
are set. ``REGEDIT_E2E_WORK`` keeps the work folder (checkpoints, log) for a later run or a look.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from e2e_webui import SD1, WebUI, check_install, log, plain_payload, serve, skip_unless_installed  # noqa: E402

E2E_DIR = Path(__file__).resolve().parent
SKIP_REASON = check_install(os.environ.get("A1111_DIR"), os.environ.get("A1111_PY"))


def pytest_collection_modifyitems(config, items):
    skip_unless_installed(items, E2E_DIR, SKIP_REASON)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        item.rep_failed = True  # the browser test names its last screenshot after it


@pytest.fixture(scope="session")
def webui(request):
    if SKIP_REASON is not None:
        pytest.skip(SKIP_REASON)
    keep = os.environ.get("REGEDIT_E2E_WORK")
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="regedit-e2e-"))
    server = WebUI(os.environ["A1111_DIR"], os.environ["A1111_PY"], work, log=log)
    attach = os.environ.get("REGEDIT_E2E_URL")
    if attach:  # a WebUI this harness started earlier and left running (debugging only)
        server.url = attach.rstrip("/")
        return server
    return serve(request, server, work, bool(keep))


@pytest.fixture(scope="session")
def baseline(webui):
    """Plain images (no extension arguments) taken before any RegEdit run, keyed by a name."""
    from e2e_webui import pixels

    shots = {}

    def shot(name: str, kind: str = "txt2img", model: str = SD1, **over):
        res = webui.generate(kind, plain_payload(**over), model=model)
        return [pixels(b) for b in res["images"]]

    shots["sd1"] = shot("sd1")
    shots["sd1_batch"] = shot("sd1_batch", batch_size=3, sampler_name="DPM++ 2M")
    shots["_take"] = shot
    return shots


@pytest.fixture
def assert_plain_unchanged(webui, baseline):
    """Call after extension runs: a plain SD1 generation must be bit-identical to the baseline."""
    from e2e_webui import pixels

    def check(context: str):
        assert webui.alive(), f"the WebUI died after {context}:\n{webui.log_tail()}"
        for key, over in (("sd1", {}), ("sd1_batch", {"batch_size": 3, "sampler_name": "DPM++ 2M"})):
            res = webui.generate("txt2img", plain_payload(**over), model=SD1)
            got = [pixels(b) for b in res["images"]]
            assert got == baseline[key], f"a plain generation ({key}) changed after {context}: hooks left behind?"
    return check


@pytest.fixture(scope="session")
def shapesworld_installed(webui):
    """The bundled ShapesWorld checkpoint, installed once with the command its README gives users
    (installing again while the WebUI runs makes it see a changed file and fall back to another)."""
    from lib_regedit.shapesworld.webui_install import install

    written = install(webui.work / "models" / "Stable-diffusion")
    assert written["yaml"].read_text().count(str(written["clip"])) == 1
    r = webui.post("/sdapi/v1/refresh-checkpoints", {})
    assert r.status_code == 200, r.text
    titles = [m["title"] for m in webui.get("/sdapi/v1/sd-models").json()]
    assert any(t.startswith("shapesworld.safetensors") for t in titles), titles
    return "shapesworld"


@pytest.fixture(scope="module")
def shapesworld(webui, shapesworld_installed):
    yield shapesworld_installed
    webui.use_model(SD1)  # give the other tests their model back
