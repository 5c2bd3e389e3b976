"""Keyword selection and KSSA as engine effects, through diffusers and the ldm backend."""

import numpy as np
import pytest
import torch

from lib_regedit.api import generate, generate_plain
from lib_regedit.attention.call import AttentionCall, RowLayout
from lib_regedit.attention.effects.keyword_selection import KeywordSelection, RegionKeywords
from lib_regedit.attention.effects.kssa import KeywordSelfAttention
from lib_regedit.documents import parse_region_document

QUALITY = "masterpiece, best quality, highly detailed, sharp, "
DOC = {"prompt": "a red circle and a blue square", "regions": [
    {"x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": QUALITY + "a red circle", "keywords": ["circle"]},
    {"x": 0.5, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": QUALITY + "a blue square"}],
    "kssa": {"keywords": 3, "refresh": 1, "downscale": 2, "levels": ["down", "up"]}}


@pytest.mark.parametrize("reweight", ["logit", "softmax"])
def test_keywords_are_selected_per_region_and_reported(sd, reweight):
    doc = dict(DOC, kssa=dict(DOC["kssa"], reweight=reweight))
    result = generate(sd, doc, seed=0, steps=4)
    first, second = result.extras["keywords"]
    assert len(first) == 3 and len(second) == 3
    assert "circle" in first  # the user's keyword is always kept
    words = set((QUALITY + "a red circle a blue square").replace(",", " ").split())
    assert set(first + second) <= words
    assert "RegEdit keywords: " in result.parameters and "1: " in result.parameters
    maps = result.extras["keyword_maps"]
    assert len(maps) == 2 and all(m is not None and m.ndim == 2 and torch.isfinite(m).all() for m in maps)
    from lib_regedit.preview import draw_keyword_maps

    grid = draw_keyword_maps(result.image, parse_region_document(doc), maps, result.extras["keywords"])
    scale = -(-256 // min(result.image.size))  # small images are enlarged so the labels stay legible
    assert grid.size == (2 * result.image.width * scale, result.image.height * scale)


def test_kssa_changes_the_image_and_leaves_nothing_behind(sd):
    off = dict(DOC, kssa={"enabled": False})
    plain_before = generate_plain(sd, "p", seed=1, steps=3)
    a = np.asarray(generate(sd, off, seed=1, steps=4).image, dtype=float)
    b = np.asarray(generate(sd, DOC, seed=1, steps=4).image, dtype=float)
    assert np.abs(a - b).mean() > 0.1
    plain_after = generate_plain(sd, "p", seed=1, steps=3)
    assert np.array_equal(np.asarray(plain_before.image), np.asarray(plain_after.image))


def test_kssa_scales_only_selected_keys_of_cond_rows():
    torch.manual_seed(0)
    ctx = torch.randn(1, 6, 4)
    region = RegionKeywords(0, (0.0, 0.0, 1.0, 1.0), ctx, [(1, "a"), (2, "b")], selected=[2])
    selection = KeywordSelection([region])
    kssa = KeywordSelfAttention(selection, scale=1.5)
    q, k = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 6, 4)
    cross = AttentionCall(q=q, k=k, v=k, is_cross=True, layer="down_blocks.0.attn2", hw=(2, 2),
                          rows=RowLayout((1,), (0,)), step=2, total_steps=4, latent_hw=(2, 2),
                          project_context=lambda c: (c.reshape(1, 1, 6, 4), c.reshape(1, 1, 6, 4)))
    kssa.observe(cross, None)
    rows, selected = kssa.positions[(2, 2)]
    assert rows == (1,) and selected.sum() == 2  # the top half of the four positions
    k_self = torch.randn(2, 1, 4, 4)
    call = AttentionCall(q=q, k=k_self, v=k_self, is_cross=False, layer="down_blocks.0.attn1", hw=(2, 2),
                         rows=RowLayout((1,), (0,)), step=2, total_steps=4, latent_hw=(2, 2))
    kssa.prepare(call)
    torch.testing.assert_close(call.k[0], k_self[0])  # uncond row untouched
    factor = torch.where(selected[0], 1.5, 1.0)
    torch.testing.assert_close(call.k[1], k_self[1] * factor[None, :, None])


def test_kssa_in_the_ldm_backend():
    ldm = pytest.importorskip("test_ldm_backend")
    from lib_regedit.backends import ldm_backend
    from lib_regedit.webui.session import WebUISession

    torch.manual_seed(0)
    unet = ldm.make_unet()
    doc = parse_region_document(dict(DOC, prompt="whole"))

    def tokenize(prompt):
        return [(i + 1, w) for i, w in enumerate(prompt.replace(",", " ").split())][:75]

    session = WebUISession(doc, ldm.ENCODE, tokenize)
    x = torch.randn(2, 4, 16, 16)
    cond, uncond = ldm.ENCODE("whole").expand(2, -1, -1), ldm.ENCODE("").expand(2, -1, -1)
    with ldm_backend.attach(unet, *session.effects()):
        for step in range(4):
            ldm.cfg_step(unet, session, x, cond, uncond, step)
    assert session.built.selection.refreshes >= 1 and session.built.kssa.applied > 0
    assert "circle" in session.keywords_text()
    from PIL import Image

    assert session.keyword_preview(Image.new("RGB", (32, 32))).size == (2 * 256, 256)  # two tiles, enlarged 8x
    assert not any("forward" in m.__dict__ for _, m in ldm.ldm_backend.attention_modules(unet))
