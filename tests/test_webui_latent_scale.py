"""The WebUI latent factor follows the loaded checkpoint's VAE (lib_regedit.webui.latent_scale)."""

from types import SimpleNamespace

import pytest

from lib_regedit.webui import latent_scale as scale


def ldm_model(ch_mult):
    encoder_cls = pytest.importorskip("ldm.modules.diffusionmodules.model").Encoder
    encoder = encoder_cls(ch=32, out_ch=3, ch_mult=ch_mult, num_res_blocks=1, attn_resolutions=[], in_channels=3,
                          resolution=32, z_channels=4, double_z=True)
    return SimpleNamespace(first_stage_model=SimpleNamespace(encoder=encoder))


@pytest.mark.parametrize("ch_mult,factor", [((1, 2, 4, 4), 8), ((1, 2, 2), 4), ((1, 2), 2)])
def test_factor_is_read_from_the_real_ldm_encoder(ch_mult, factor):
    assert scale.vae_downscale(ldm_model(ch_mult)) == factor


def test_models_that_do_not_say_keep_the_webui_default():
    assert scale.vae_downscale(None) == 8
    assert scale.vae_downscale(SimpleNamespace()) == 8
    assert scale.vae_downscale(SimpleNamespace(first_stage_model=SimpleNamespace(encoder=object()))) == 8


def test_sync_follows_each_loaded_model_and_reset_restores_8(capsys):
    processing = SimpleNamespace(opt_f=8)
    small, sd = ldm_model((1, 2, 2)), ldm_model((1, 2, 4, 4))
    capsys.readouterr()  # ldm's own construction messages
    assert scale.sync(processing, small) == 4
    assert processing.opt_f == 4
    assert "downsamples by 4" in capsys.readouterr().out
    assert scale.sync(processing, sd) == 8
    assert processing.opt_f == 8 and capsys.readouterr().out == ""
    scale.sync(processing, small)
    scale.reset(processing)
    assert processing.opt_f == 8
