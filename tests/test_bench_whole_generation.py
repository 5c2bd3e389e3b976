"""The whole-generation benches (layout init, layout guidance) run and print their ratio."""

import re

import pytest

from lib_regedit.bench.__main__ import main
from tiny_models import tiny_sd_pipeline


@pytest.mark.parametrize("bench", ["layout", "guidance"])
def test_whole_generation_bench_prints_a_ratio(bench, tmp_path, capsys):
    tiny_sd_pipeline().save_pretrained(tmp_path / "tiny")
    main([bench, "--model", str(tmp_path / "tiny"), "--steps", "2", "--runs", "2"])
    out = capsys.readouterr().out
    assert re.search(r"vs regions: ratio_time=\d+\.\d{3}$", out.strip()), out
    assert out.count("per generation (median of 2, interleaved)") == 2


def test_drag_bench_prints_a_ratio(monkeypatch, capsys):
    """The same code path as the real bench, on a tiny pipeline (the SD 1.5 one takes minutes here)."""
    from lib_regedit.bench import drag_bench

    monkeypatch.setattr(drag_bench, "sd15_pipeline", lambda size: tiny_sd_pipeline())
    main(["drag", "--steps", "4", "--size", "64", "--runs", "2"])
    out = capsys.readouterr().out
    assert "(4 batch-1 evaluations)" in out and re.search(r"ratio_time=\d+\.\d{3}$", out.strip()), out
