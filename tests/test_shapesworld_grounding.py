"""ShapesWorld token grounding (train.py --grounding): the targets, the masks, the processor and the loss."""

import torch

from lib_regedit.shapesworld import grounding as G
from lib_regedit.shapesworld import model as M
from lib_regedit.shapesworld.data import scene_for
from tiny_models import clip_tokenizer


def test_targets_point_at_each_objects_colour_and_shape_words():
    tok = clip_tokenizer()
    scenes = [scene_for(0, i) for i in range(6)]
    ids = M.tokenize(tok, [s.caption for s in scenes])
    positions, boxes = G.targets(tok, 0, 6, ids)
    for i, scene in enumerate(scenes):
        words = tok.convert_ids_to_tokens(ids[i].tolist())
        for j, obj in enumerate(scene.objects):
            assert words[positions[i, 2 * j]] == obj.colour + "</w>"
            assert words[positions[i, 2 * j + 1]] == obj.shape + "</w>"
            assert torch.allclose(boxes[i, 2 * j], torch.tensor(obj.box))
        assert (positions[i, 2 * len(scene.objects):] == -1).all()


def test_repeated_words_bind_in_caption_order():
    tok = clip_tokenizer()
    ids = M.tokenize(tok, ["a red circle, a red square and a blue circle"])
    row = tok.convert_ids_to_tokens(ids[0].tolist())
    reds = [i for i, w in enumerate(row) if w == "red</w>"]
    circles = [i for i, w in enumerate(row) if w == "circle</w>"]
    assert len(reds) == 2 and len(circles) == 2  # the walk must take the next one each time, as targets() does
    assert reds[0] < circles[0] < reds[1] < circles[1]


def test_loss_is_zero_inside_and_one_outside():
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]]])
    positions = torch.tensor([[3, -1]])
    inside = torch.zeros(1, 16, 77)
    inside[0, 0, 3] = 1.0  # cell (0, 0) of 4x4 lies in the top-left quarter
    outside = torch.zeros(1, 16, 77)
    outside[0, 15, 3] = 1.0
    assert G.loss([inside], positions, boxes).item() == 0.0
    assert G.loss([outside], positions, boxes).item() == 1.0
    assert G.loss([inside, outside], positions, boxes).item() == 0.5  # mean over layers
    assert G.loss([inside], torch.tensor([[-1, -1]]), boxes).item() == 0.0  # no target


def test_choice_term_counts_only_the_attention_on_the_scenes_objects():
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5]]])  # the word's object: the top-left quarter (4x4 cells 0, 1, 4, 5)
    others = torch.tensor([[[0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]]])  # one other object bottom-right, one slot empty
    positions = torch.tensor([[3]])
    probs = torch.zeros(1, 16, 77)
    probs[0, 0, 3] = 0.5  # own object
    probs[0, 3, 3] = 0.5  # background (top-right): the grounding term counts it, the choice term does not
    ground, choice = G.losses([probs], positions, boxes, others)
    assert ground.item() == 0.25 and choice.item() == 0.0
    probs[0, 3, 3], probs[0, 15, 3] = 0.0, 0.5  # the same half on the other object instead
    ground, choice = G.losses([probs], positions, boxes, others)
    assert ground.item() == 0.25 and choice.item() == 0.25
    assert G.losses([probs], positions, boxes)[1] is None  # no negatives, no choice term
    assert G.loss([probs], positions, boxes).item() == 0.25


def test_probs_processor_matches_the_stock_attention_and_fills_the_store():
    torch.manual_seed(0)
    unet = M.build_unet().eval()
    x, t, ctx = torch.randn(2, 4, 16, 16), torch.tensor([500, 10]), torch.randn(2, 77, M.TEXT_HIDDEN)
    with torch.no_grad():
        stock = unet(x, t, encoder_hidden_states=ctx).sample
        store = G.install(unet)
        ours = unet(x, t, encoder_hidden_states=ctx).sample
    assert torch.allclose(stock, ours, atol=1e-4)
    assert [p.shape[1] for p in store] == [256, 64, 64, 64, 256, 256]  # down 16, 8; up 8, 8, 16, 16; no mid
    assert all(torch.allclose(p.sum(-1), torch.ones(())) for p in store)
