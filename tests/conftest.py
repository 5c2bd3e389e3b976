import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sd():
    """A tiny SD pipeline (random weights, DDIM), one per test module."""
    from tiny_models import tiny_sd_pipeline

    return tiny_sd_pipeline()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes a minute or more (the CI runs it all the same; -m 'not slow' skips it)")
