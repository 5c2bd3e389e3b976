"""ShapesWorld region training (train.py --region-training): the targets, the weights, and a processor
that computes what attention-mode region fusion computes at inference."""

import torch

from lib_regedit.attention.controller import Controller, GenerationState
from lib_regedit.attention.effects.region_fusion import RegionFusion, RegionPrompt
from lib_regedit.backends import diffusers_backend
from lib_regedit.masks import box_coverage, box_mask, fusion_weights
from lib_regedit.shapesworld import model as M
from lib_regedit.shapesworld import region_training as RT
from lib_regedit.shapesworld.data import BLANK_CAPTION, scene_for


def test_coarse_weights_pool_the_latent_masks_exactly():
    boxes = torch.tensor([[[0.05, 0.3, 0.4, 0.4], [0.55, 0.1, 0.3, 0.25], [0.0, 0.0, 0.0, 0.0]]])
    masks = box_coverage(boxes, 16, 16) * torch.tensor([[1.0, 1.0, 0.0]])[..., None, None]
    plan = RT.Plan(torch.tensor([0]), torch.tensor([[0, 4, -1]]), masks, torch.tensor([0.5]), torch.zeros(13, 77, 8))
    for cells in (16, 8, 4):
        expected = fusion_weights(torch.stack([box_mask(*b, cells, cells) for b in boxes[0, :2].tolist()]),
                                  [1.0, 1.0], 1.0, 0.5)
        got = plan.weights(cells * cells)[0]
        torch.testing.assert_close(got[[0, 1, 3, 4]], expected.reshape(4, -1), atol=1e-6, rtol=1e-5)
        assert got[2].abs().max() == 0  # the empty slot weighs nothing


def test_scene_targets_name_each_objects_phrase_and_box():
    index, boxes = RT.scene_targets(0, 5)
    phrases = RT.phrases()
    assert phrases[-1] == BLANK_CAPTION and len(set(phrases)) == len(phrases)
    masks = RT.slot_masks(index, boxes, 16)
    for i in range(5):
        objects = scene_for(0, i).objects
        for j in range(RT.MAX_OBJECTS):
            if j < len(objects):
                assert phrases[index[i, j]] == objects[j].phrase
                torch.testing.assert_close(boxes[i, j], torch.tensor(objects[j].box))
                torch.testing.assert_close(masks[i, j], box_mask(*objects[j].box, 16, 16))
            else:
                assert index[i, j] == -1 and masks[i, j].abs().max() == 0


def test_loosened_boxes_hold_the_object_and_stay_in_the_image():
    torch.manual_seed(0)
    _, boxes = RT.scene_targets(0, 200)
    boxes = boxes[boxes[..., 2] > 0]
    loose = RT.loosen(boxes)
    x, y, w, h = boxes.unbind(-1)
    lx, ly, lw, lh = loose.unbind(-1)
    tol = 1e-6
    assert (lx >= -tol).all() and (ly >= -tol).all() and (lx + lw <= 1 + tol).all() and (ly + lh <= 1 + tol).all()
    assert (lx <= x + tol).all() and (ly <= y + tol).all()
    assert (lx + lw >= x + w - tol).all() and (ly + lh >= y + h - tol).all()
    grown = (lw * lh) / (w * h)
    assert grown.min() >= 1 - 1e-5 and grown.max() <= RT.LOOSE_MAX ** 2 + 1e-4 and grown.mean() > 1.5


def test_processor_is_stock_attention_without_a_plan_and_region_fusion_with_one():
    torch.manual_seed(0)
    unet = M.build_unet().eval()
    x, t = torch.randn(2, 4, 16, 16), torch.tensor([700, 700])
    sources = torch.randn(len(RT.phrases()), 77, M.TEXT_HIDDEN)
    whole = torch.randn(2, 77, M.TEXT_HIDDEN)
    boxes = [(0.05, 0.3, 0.4, 0.4), (0.55, 0.05, 0.4, 0.4)]
    slots = [RT.phrase_index("red", "circle"), RT.phrase_index("blue", "square")]
    with torch.no_grad():
        stock = unet(x, t, encoder_hidden_states=whole).sample
        # inference: attention-mode region fusion on row 1 (cond), before the whole prompt joins
        regions = [RegionPrompt(*b, feather=0.0, weight=1.0, context=sources[s:s + 1]) for b, s in zip(boxes, slots)]
        fusion = RegionFusion(regions, background_context=sources[-1:], whole_start=0.3, whole_weight=0.5)
        state = GenerationState(total_steps=10, cond_reference=whole[1:], uncond_reference=whole[:1],
                                cond_first=False)
        with diffusers_backend.attached(unet, Controller([fusion], state)):
            inference = unet(x, t, encoder_hidden_states=whole).sample
        holder = RT.install(unet)
        plain = unet(x, t, encoder_hidden_states=whole).sample
        masks = box_coverage(torch.tensor([boxes + [(0, 0, 0, 0)]]), 16, 16) * \
            torch.tensor([[1.0, 1.0, 0.0]])[..., None, None]
        holder["plan"] = RT.Plan(torch.tensor([1]), torch.tensor([slots + [-1]]), masks, torch.tensor([0.0]), sources)
        trained = unet(x, t, encoder_hidden_states=whole).sample
    torch.testing.assert_close(plain, stock, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(trained[0], stock[0], atol=1e-4, rtol=1e-4)  # rows outside the plan
    torch.testing.assert_close(trained[1], inference[1], atol=1e-4, rtol=1e-4)
    assert (trained[1] - stock[1]).abs().max() > 1e-2


def test_region_training_gradients_reach_the_phrase_embeddings():
    torch.manual_seed(0)
    unet, text = M.build_unet(), M.build_text_encoder()
    holder = RT.install(unet)
    ids = torch.randint(1, 400, (len(RT.phrases()), 77))
    sources = M.encode_tokens(text, ids)
    masks = box_coverage(torch.tensor([[(0.1, 0.1, 0.5, 0.5)] * 3]), 16, 16) * \
        torch.tensor([[1.0, 0, 0]])[..., None, None]
    holder["plan"] = RT.Plan(torch.tensor([0]), torch.tensor([[2, -1, -1]]), masks, torch.tensor([0.0]), sources)
    out = unet(torch.randn(1, 4, 16, 16), torch.tensor([500]), encoder_hidden_states=torch.randn(1, 77, M.TEXT_HIDDEN))
    out.sample.square().mean().backward()
    grad = M.trainable_text_parameters(text)[0].grad
    assert grad is not None and grad.abs().sum() > 0


def test_rows_without_a_background_region_give_its_weight_to_their_own_caption():
    masks = box_coverage(torch.tensor([[(0.0, 0.0, 0.5, 0.5)] * 3]), 4, 4).repeat(2, 1, 1, 1)
    masks[:, 1:] = 0
    index = torch.tensor([[0, -1, -1]] * 2)
    plan = RT.Plan(torch.tensor([0, 1]), index, masks, torch.tensor([0.0, 0.0]), torch.zeros(13, 77, 8),
                   own_background=torch.tensor([False, True]))
    w = plan.weights(16)
    blank, own = RT.MAX_OBJECTS, RT.MAX_OBJECTS + 1
    outside = 15  # cell (3, 3), outside the top-left quarter
    assert w[0, blank, outside] > 0.99 and w[0, own, outside] == 0
    assert w[1, blank, outside] == 0 and w[1, own, outside] > 0.99
    torch.testing.assert_close(w.sum(1), torch.ones(2, 16))
    torch.testing.assert_close(w[0, 0], w[1, 0])  # the object's weight is the same either way


def test_batch_plan_covers_the_rows_boxes_and_whole_caption():
    torch.manual_seed(0)
    index, boxes = RT.scene_targets(0, 8)
    rows = torch.arange(8)
    plan = RT.batch_plan(rows, index, boxes, torch.zeros(13, 77, 8), 16)
    w = plan.weights(256)
    assert w.shape == (8, RT.MAX_OBJECTS + 2, 256)
    torch.testing.assert_close(w.sum(1), torch.ones(8, 256))
    whole = w[:, -1]  # r_total weighs 0, or 0.5 against 1 for the box or the background: 1/3
    assert ((whole == 0) | ((whole - 1 / 3).abs() < 1e-3)).all()
    for i in range(8):  # every object slot weighs exactly where its exact box lies
        for j in range(RT.MAX_OBJECTS):
            inside = box_mask(*boxes[i, j].tolist(), 16, 16).reshape(-1) > 0
            assert (w[i, j][~inside] == 0).all()
            assert index[i, j] < 0 or (w[i, j][inside] > 0).all()
