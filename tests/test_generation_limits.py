"""Generation settings are checked before any work, in the Python API as on the command line."""

import math

import pytest

from lib_regedit import generation_limits as limits
from lib_regedit.api import generate, generate_plain
from lib_regedit.errors import RegEditError

DOC = {"prompt": "a red circle", "regions": [{"x": 0.1, "y": 0.1, "w": 0.4, "h": 0.4, "prompt": "a red circle"}]}


@pytest.mark.parametrize("value", [0, -3, 1001, 2.5, True, "20", None])
def test_steps(value):
    with pytest.raises(RegEditError, match="steps: .* Fix: use a whole number from 1 to 1000"):
        limits.check_steps(value, 1000)


def test_steps_in_range_pass():
    assert limits.check_steps(1, 1000) == 1 and limits.check_steps(1000, 1000) == 1000


@pytest.mark.parametrize("value", [-1, math.nan, math.inf, 101, "7"])
def test_guidance_scale(value):
    with pytest.raises(RegEditError, match="cfg: "):
        limits.check_guidance_scale(value)


def test_sizes_are_multiples_of_8_and_of_the_vae_factor():
    assert limits.check_size(None, None, vae_factor=4, native=64) == (64, 64)
    assert limits.check_size(96, 64, vae_factor=4, native=64) == (96, 64)
    with pytest.raises(RegEditError, match=r"^RegEdit: width: 100 is not a usable size\. Fix: use a multiple of 8 .* e\.g\. 96"):
        limits.check_size(100, 64, vae_factor=4, native=64)
    with pytest.raises(RegEditError, match="multiple of 16"):
        limits.check_size(64, 72, vae_factor=16, native=64)


def test_large_sizes_need_allow_large():
    assert limits.check_size(128, 128, vae_factor=8, native=64) == (128, 128)  # 4x the area: allowed
    with pytest.raises(RegEditError, match=r"width/height: 136x128 is far beyond .* 4x the native area"):
        limits.check_size(136, 128, vae_factor=8, native=64)
    assert limits.check_size(4096, 4096, vae_factor=8, native=512, allow_large=True) == (4096, 4096)


def test_size_cost_grows_with_the_square_of_the_area_once_large():
    assert limits.size_cost(64, 64, 64).time == 1
    assert limits.size_cost(256, 256, 64).time == pytest.approx(0.5 * 16 + 0.5 * 256)


@pytest.mark.parametrize("kwargs,field", [({"steps": 0}, "steps"), ({"steps": 5000}, "steps"),
                                          ({"width": 36}, "width"), ({"guidance_scale": -2}, "guidance_scale"),
                                          ({"seed": -5}, "seed"), ({"batch_size": 0}, "batch_size"),
                                          ({"width": 4096, "height": 4096}, "width/height")])
def test_the_python_api_checks_before_any_work(sd, monkeypatch, kwargs, field):
    monkeypatch.setattr(type(sd), "__call__", lambda *a, **k: pytest.fail("sampled with a bad setting"))
    monkeypatch.setattr(type(sd), "encode_prompt", lambda *a, **k: pytest.fail("encoded with a bad setting"))
    for call in (lambda: generate(sd, DOC, **kwargs), lambda: generate_plain(sd, "a red circle", **kwargs)):
        with pytest.raises(RegEditError) as info:
            call()
        assert info.value.field == field
