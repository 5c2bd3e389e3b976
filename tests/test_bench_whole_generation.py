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
