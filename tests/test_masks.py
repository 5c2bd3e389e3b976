import pytest
import torch

from lib_regedit.masks import box_coverage, box_mask, fusion_weights, layer_hw


def test_hard_box_covers_its_cells():
    mask = box_mask(0.25, 0.0, 0.5, 1.0, 4, 8)
    assert mask[:, 2:6].eq(1).all() and mask[:, :2].eq(0).all() and mask[:, 6:].eq(0).all()


def test_partial_cells_get_their_coverage():
    mask = box_mask(0.0, 0.0, 0.3, 1.0, 1, 4)  # covers 1.2 cells of 4
    assert mask[0].tolist() == pytest.approx([1.0, 0.2, 0.0, 0.0], abs=1e-6)


def test_tiny_box_never_vanishes():
    assert box_mask(0.01, 0.01, 0.02, 0.02, 2, 2).sum() > 0


def test_feather_softens_edges_symmetrically():
    mask = box_mask(0.25, 0.0, 0.5, 1.0, 1, 8, feather=0.25)[0]
    assert mask[1] == pytest.approx(0.25) and mask[6] == pytest.approx(0.25)
    assert mask[2:6].eq(1).all() and mask[0] == 0


@pytest.mark.parametrize("latent,tokens,expected", [((64, 64), 4096, (64, 64)), ((64, 64), 256, (16, 16)),
                                                    ((96, 64), 24 * 16, (24, 16)), ((75, 100), 19 * 25, (19, 25)),
                                                    ((128, 128), 1024, (32, 32))])
def test_layer_resolution_follows_the_latent(latent, tokens, expected):
    assert layer_hw(latent, tokens) == expected


def test_fusion_weights_are_normalised_and_follow_eq1():
    masks = torch.stack([box_mask(0, 0, 0.5, 1, 4, 4), box_mask(0.25, 0, 0.5, 1, 4, 4)])
    w = fusion_weights(masks, [1.0, 3.0], background_weight=1.0, whole_weight=0.0)
    assert w.shape == (4, 4, 4)
    torch.testing.assert_close(w.sum(0), torch.ones(4, 4))
    # column 0: region 1 only; column 1: both regions, weighted 1:3; column 3: background only
    assert w[0, :, 0].gt(0.99).all()
    torch.testing.assert_close(w[1, :, 1] / w[0, :, 1], torch.full((4,), 3.0))
    assert w[2, :, 3].gt(0.99).all()
    assert w[3].eq(0).all()


def test_whole_prompt_weight_applies_everywhere_once_joined():
    masks = box_mask(0, 0, 1, 1, 2, 2)[None]
    w = fusion_weights(masks, [1.0], background_weight=1.0, whole_weight=1.0)
    assert w[0].sub(0.5).abs().max() < 1e-3 and w[2].sub(0.5).abs().max() < 1e-3


def test_box_coverage_is_box_mask_for_many_boxes_at_once():
    boxes = torch.tensor([[0.05, 0.3, 0.4, 0.4], [0.0, 0.0, 1.0, 1.0], [0.33, 0.61, 0.21, 0.2]])
    for height, width in ((16, 16), (8, 8), (4, 4), (16, 8)):
        got = box_coverage(boxes, height, width)
        assert got.shape == (3, height, width)
        for box, mask in zip(boxes.tolist(), got):
            torch.testing.assert_close(mask, box_mask(*box, height, width))
