"""LIME's WebUI session (``lib_regedit.lime.webui_lime.LimeSession``) against the real ``ldm`` UNetModel:
both passes through one sampling callable, the first ending at the feature step, the region found on
the superpixels its document's version asks for, picked and snapped, and the UNet left as it was."""

import pytest
import torch
from PIL import Image, ImageDraw

pytest.importorskip("ldm.modules.diffusionmodules.openaimodel", reason="the ldm package is not installed")

from lib_regedit.backends import ldm_backend  # noqa: E402
from lib_regedit.documents import parse_lime_document  # noqa: E402
from lib_regedit.lime import locate, webui_lime  # noqa: E402
from lib_regedit.lime.given_roi import touched_cells  # noqa: E402
from lib_regedit.lime.superpixels import superpixels  # noqa: E402
from test_ldm_backend import CTX, make_unet  # noqa: E402
from test_drag_batch import ldm_attach  # noqa: E402

TOKENS = [(1, "make"), (2, "the"), (3, "red"), (4, "square"), (5, "blue")]  # as the WebUI's tokenizer gives them
STEPS = 6  # the feature step is round(6 / 3) = 2


@pytest.fixture(scope="module")
def unet():
    return make_unet()


def scene() -> Image.Image:
    """64x64 (a 16x16 latent at 4 pixels a cell): a red square and a blue disc."""
    image = Image.new("RGB", (64, 64), (225, 235, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle((8, 8, 27, 27), fill=(220, 30, 30))
    draw.ellipse((40, 36, 59, 55), fill=(30, 60, 220))
    return image


def sampler(unet, session, calls):
    """The WebUI's sampling as the session sees it: per step, its on_cfg_denoiser, then one UNet call
    on the cond and uncond rows."""
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(1, 77, CTX, generator=g), torch.randn(1, 77, CTX, generator=g)
    x = torch.randn(1, 4, 16, 16, generator=g)

    def sample():
        for i in range(STEPS):
            session.on_cfg_denoiser(i, STEPS, cond, uncond)
            with torch.no_grad():
                unet(torch.cat([x, x]), torch.full((2,), 900 - 100 * i), context=torch.cat([cond, uncond]))
            calls.append(i)
        return x
    return sample


@pytest.mark.parametrize("version,segments", [(3, (4, 40.0)), (2, (16, 20.0))])
def test_the_session_finds_and_snaps_the_region_then_edits(unet, monkeypatch, version, segments):
    made = []

    def spy(image, latent_hw, cells, merge):
        made.append((cells, merge))
        return superpixels(image, latent_hw, cells, merge)

    monkeypatch.setattr(locate, "superpixels", spy)
    session = webui_lime.LimeSession(parse_lime_document({"version": version}), TOKENS, (16, 16), image=scene())
    calls = []
    session.run(ldm_attach(unet), sampler(unet, session, calls))
    assert calls == [0, 1, 2] + list(range(STEPS))  # the first pass ends when step 3 starts
    assert made == [segments]  # once, for the pick and the snap alike, as the document's version asks
    assert session.found is not None and session.roi.dtype == torch.bool and session.roi.any()
    assert session.pixel_roi.shape == (64, 64)
    assert torch.equal(session.roi, touched_cells(session.pixel_roi, (16, 16)))  # used as a drawn region is
    assert ldm_backend.remove_leftovers(unet) == 0


def test_without_an_image_the_session_picks_the_peak_and_does_not_snap(unet, monkeypatch):
    monkeypatch.setattr(locate, "superpixels", lambda *a, **k: pytest.fail("no image, no superpixels"))
    session = webui_lime.LimeSession(parse_lime_document(True), TOKENS, (16, 16))
    calls = []
    session.run(ldm_attach(unet), sampler(unet, session, calls))
    assert session.pixel_roi is None and torch.equal(session.roi, session.found.mask)
    assert ldm_backend.remove_leftovers(unet) == 0
