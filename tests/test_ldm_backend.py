"""The WebUI backend against the real Stability ``ldm`` CrossAttention and UNetModel.

``ldm`` comes from PyPI's stable-diffusion-sdkit (installed with --no-deps). The sampler side is
simulated the way the WebUI's CFGDenoiser calls the UNet: cond rows first, uncond rows last, sometimes
in separate calls, sometimes without uncond rows.
"""

import pytest
import torch

ldm_openaimodel = pytest.importorskip("ldm.modules.diffusionmodules.openaimodel",
                                      reason="stable-diffusion-sdkit (the ldm package) is not installed")

from lib_regedit.backends import ldm_backend  # noqa: E402
from lib_regedit.documents import parse_region_document  # noqa: E402
from lib_regedit.webui.session import WebUISession  # noqa: E402

CTX = 32


def make_unet():
    torch.manual_seed(0)
    model = ldm_openaimodel.UNetModel(image_size=16, in_channels=4, out_channels=4, model_channels=32,
                                     attention_resolutions=[1, 2], num_res_blocks=1, channel_mult=[1, 2], num_heads=2,
                                     use_spatial_transformer=True, transformer_depth=1, context_dim=CTX,
                                     legacy=False).eval()
    with torch.no_grad():  # ldm zero-initialises output layers; give them weights so outputs depend on the input
        for param in model.parameters():
            if param.abs().max() == 0:
                param.normal_(0, 0.05)
    return model


@pytest.fixture(scope="module")
def unet():
    return make_unet()


def _encoder(seed_of):
    """A stand-in for the WebUI's get_learned_conditioning: a fixed random context per prompt,
    of 77 tokens per 75-token chunk (long prompts give 154)."""
    def encode(prompt):
        g = torch.Generator().manual_seed(seed_of(prompt))
        chunks = 1 + len(prompt.split()) // 75
        return torch.randn(1, 77 * chunks, CTX, generator=g)
    return encode


def _seed(prompt):
    return sum(map(ord, prompt)) % 10_000


ENCODE = _encoder(_seed)
DOC = parse_region_document({"prompt": "whole", "negative_prompt": "neg", "regions": [
    {"x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "a red circle"},
    {"x": 0.5, "y": 0.25, "w": 0.5, "h": 0.5, "prompt": "a blue square", "negative_prompt": "green"}]})


def cfg_step(unet, session, x, cond, uncond, step, mode="batched"):
    """One WebUI CFGDenoiser evaluation: the on_cfg_denoiser callback, then the UNet call(s)."""
    batch = x.shape[0]
    t = torch.full((batch,), 500)
    if session is not None:
        session.on_cfg_denoiser(step, 4, cond, uncond)
    with torch.no_grad():
        if mode == "batched":
            out = unet(torch.cat([x, x]), torch.cat([t, t]), context=torch.cat([cond, uncond]))
            return out[:batch], out[batch:]
        if mode == "separate":
            return unet(x, t, context=cond), unet(x, t, context=uncond)
        if mode == "skip_uncond":
            return unet(x, t, context=cond), None
    raise ValueError(mode)


def _patched(unet):
    return [n for n, m in ldm_backend.attention_modules(unet) if "forward" in m.__dict__]


@pytest.mark.parametrize("mode", ["batched", "separate", "skip_uncond"])
@pytest.mark.parametrize("fusion_mode", ["attention", "latent"])
def test_cond_and_uncond_rows_are_read_from_the_sampler(unet, mode, fusion_mode):
    doc = parse_region_document(dict(DOC.to_dict(), mode=fusion_mode))
    torch.manual_seed(1)
    x = torch.randn(3, 4, 16, 16)  # batch size 3
    cond, uncond = ENCODE("whole").expand(3, -1, -1), ENCODE("neg").expand(3, -1, -1)
    plain_c, plain_u = cfg_step(unet, None, x, cond, uncond, 0, "batched")
    session = WebUISession(doc, ENCODE)
    with ldm_backend.attach(unet, *session.effects()):
        c_b, u_b = cfg_step(unet, session, x, cond, uncond, 0, "batched")
        c_m, u_m = cfg_step(unet, session, x, cond, uncond, 0, mode)
    assert _patched(unet) == [] and not unet._forward_pre_hooks and not unet._forward_hooks
    # fused rows differ from plain ones; the layout of the calls does not matter
    assert (c_b - plain_c).abs().mean() > 1e-3
    torch.testing.assert_close(c_m, c_b, atol=1e-4, rtol=1e-4)
    if u_m is not None:
        torch.testing.assert_close(u_m, u_b, atol=1e-4, rtol=1e-4)
        assert (u_b - plain_u).abs().mean() > 1e-4  # a region has a negative prompt


def test_identical_prompts_reproduce_the_plain_output(unet):
    doc = parse_region_document({"prompt": "whole", "background_prompt": "whole", "regions": [
        {"x": 0.1, "y": 0.1, "w": 0.5, "h": 0.7, "prompt": "whole"}]})
    x = torch.randn(1, 4, 16, 16)
    cond, uncond = ENCODE("whole"), ENCODE("")
    plain = cfg_step(unet, None, x, cond, uncond, 2)
    session = WebUISession(doc, ENCODE)
    with ldm_backend.attach(unet, *session.effects()):
        fused = cfg_step(unet, session, x, cond, uncond, 2)
    torch.testing.assert_close(fused[0], plain[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fused[1], plain[1], atol=1e-5, rtol=1e-4)


def test_long_prompts_and_hires_resolution(unet):
    long_prompt = " ".join(["masterpiece"] * 90) + " a red circle"
    doc = parse_region_document({"prompt": "whole", "regions": [
        {"x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": long_prompt}]})
    session = WebUISession(doc, ENCODE)
    assert ENCODE(long_prompt).shape[1] == 154
    with ldm_backend.attach(unet, *session.effects()):
        for size in (16, 24):  # first pass, then a hires-fix pass at 1.5x
            x = torch.randn(2, 4, size, size)
            c, u = cfg_step(unet, session, x, ENCODE("whole").expand(2, -1, -1), ENCODE("").expand(2, -1, -1), 1)
            assert c.shape == x.shape and torch.isfinite(c).all()


def test_restored_after_an_exception_and_delegates_when_idle(unet):
    x = torch.randn(1, 4, 16, 16)
    cond, uncond = ENCODE("whole"), ENCODE("")
    before = cfg_step(unet, None, x, cond, uncond, 0)
    session = WebUISession(DOC, ENCODE)
    with pytest.raises(RuntimeError):
        with ldm_backend.attach(unet, *session.effects()):
            assert len(_patched(unet)) == len(ldm_backend.attention_modules(unet))
            raise RuntimeError("interrupted")
    assert _patched(unet) == [] and not unet._forward_pre_hooks
    after = cfg_step(unet, None, x, cond, uncond, 0)
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])


def test_leftover_patches_are_removed(unet):
    session = WebUISession(DOC, ENCODE)
    session._prepare()
    undo = ldm_backend.patch(unet, session.controller)
    assert ldm_backend.remove_leftovers(unet) == len(ldm_backend.attention_modules(unet))
    ldm_backend.unpatch(undo)
    assert _patched(unet) == []
