"""RegionDrag's batch (``lib_regedit.drag.batch``) against the real ``ldm`` UNetModel:
mutual self-attention through the ldm backend, a seed per row, the interrupt, no patch left behind."""

import pytest
import torch

pytest.importorskip("ldm.modules.diffusionmodules.openaimodel", reason="the ldm package is not installed")

from lib_regedit.backends import ldm_backend  # noqa: E402
from lib_regedit.documents import parse_drag_document  # noqa: E402
from lib_regedit.drag import batch  # noqa: E402
from test_ldm_backend import CTX, make_unet  # noqa: E402

SQUARE = [[0.1, 0.1], [0.45, 0.1], [0.45, 0.45], [0.1, 0.45]]
DOC = parse_drag_document({"pairs": [{"handle": {"type": "polygon", "points": SQUARE},
                                      "target": {"type": "polygon", "points": [[x + 0.5, y + 0.5] for x, y in SQUARE]}}]})
ALPHAS = torch.cumprod(1 - torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2, 0)


@pytest.fixture(scope="module")
def unet():
    return make_unet()


def ldm_attach(unet):
    """The ldm checkpoint's ``attach`` (``backends/ldm_checkpoint.py``) on a bare UNet."""
    return lambda controller: ldm_backend.attached(unet, controller)


def eps_for(unet, calls):
    context = torch.randn(1, 77, CTX, generator=torch.Generator().manual_seed(1))

    def eps_of_row(row, x, t):
        calls.append((row, int(t)))
        with torch.no_grad():
            return unet(x, torch.full((x.shape[0],), int(t)), context)
    return eps_of_row


def test_each_row_drags_with_its_seed_and_the_unet_is_restored(unet):
    init = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    init[1] = init[0]
    calls, steps = [], []
    out = batch.drag_batch(eps_for(unet, calls), init, [7, 8], DOC, 10, ALPHAS, ldm_attach(unet),
                                progress=lambda done, total: steps.append((done, total)))
    assert out.shape == init.shape and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1])  # the same image, two seeds
    assert len(calls) == 2 * 10 and steps[-1] == (10, 10)  # 5 inversion + 5 denoise evaluations per row
    assert ldm_backend.remove_leftovers(unet) == 0


def test_mutual_self_attention_runs_through_the_ldm_backend(unet, monkeypatch):
    from lib_regedit.attention.effects import mutual_self_attention as msa

    seen = []
    real = msa.MutualSelfAttention.prepare

    def spy(self, call):
        seen.append((self.mode, call.is_cross, call.layer))
        return real(self, call)

    monkeypatch.setattr(msa.MutualSelfAttention, "prepare", spy)
    init = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    batch.drag_batch(eps_for(unet, []), init, [1], DOC, 4, ALPHAS, ldm_attach(unet))
    assert {m for m, _, _ in seen} == {"record", "replace"} and not any(cross for _, cross, _ in seen)
    assert all("attn1" in layer for _, _, layer in seen)


def test_an_interrupt_stops_the_drag(unet):
    init = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(4))
    calls = []
    out = batch.drag_batch(eps_for(unet, calls), init, [1, 2], DOC, 10, ALPHAS, ldm_attach(unet),
                                should_stop=lambda: len(calls) >= 3)
    assert len(calls) == 3 and torch.equal(out, init)  # stopped while inverting: the input comes back
    assert ldm_backend.remove_leftovers(unet) == 0
