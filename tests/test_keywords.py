import math

import torch

from lib_regedit.attention.keywords import map_entropy, scale_keys, select_keywords, softmax_bias, top_half_positions, word_positions


def test_entropy_of_known_maps():
    flat = torch.ones(1, 16, 16)  # one value: a single bin, entropy 0
    two = torch.zeros(1, 16, 16)
    two[0, :8] = 1  # two values, half each: log 2
    spot = torch.zeros(1, 16, 16)
    spot[0, 3, 3] = 1  # one hot pixel: low entropy
    uniform = torch.arange(256.0).reshape(1, 16, 16)  # every bin once: log 256
    e = map_entropy(torch.cat([flat, two, spot, uniform]))
    assert e[0] == 0
    assert math.isclose(e[1], math.log(2), rel_tol=1e-5)
    assert math.isclose(e[3], math.log(256), rel_tol=1e-5)
    assert e[2] < e[1] < e[3]


def test_selection_keeps_low_entropy_words_and_never_special_tokens():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(8, 16, 16, generator=g)  # diffuse "quality" words
    maps[2] = 0
    maps[2, 4:6, 4:6] = 1  # an object word: focused
    maps[5] = 0
    maps[5, 10:14, 1:3] = 1
    candidates = [1, 2, 3, 4, 5, 6]  # 0 is BOS, 7 is EOS
    assert select_keywords(maps, candidates, n=2) == [2, 5]
    assert select_keywords(maps, candidates, n=2, forced=[6]) == [2, 6]  # the user's keyword first
    assert select_keywords(maps, candidates, n=15) == candidates
    assert 0 not in select_keywords(maps, candidates, n=15) and 7 not in select_keywords(maps, candidates, n=15)


def test_word_positions_skip_bos_eos_and_padding():
    assert word_positions([49406, 320, 736, 49407, 49407, 49407], {49406, 49407}) == [1, 2]


def test_top_half_positions_within_a_region():
    attention = torch.tensor([[0.9, 0.1, 0.8, 0.2, 0.7, 0.3]])
    within = torch.tensor([True, True, True, True, False, False])
    assert top_half_positions(attention, within).tolist() == [[True, False, True, False, False, False]]
    assert top_half_positions(attention).tolist() == [[True, False, True, False, True, False]]


def test_key_scaling_multiplies_the_selected_logits():
    torch.manual_seed(0)
    q, k = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 4)
    positions = torch.tensor([[True, False, False, True, False]])
    logits = q @ k.transpose(-1, -2)
    scaled = q @ scale_keys(k, positions, 1.5).transpose(-1, -2)
    torch.testing.assert_close(scaled[..., [0, 3]], 1.5 * logits[..., [0, 3]])
    torch.testing.assert_close(scaled[..., [1, 2, 4]], logits[..., [1, 2, 4]])


def test_softmax_bias_reweights_and_renormalises():
    torch.manual_seed(0)
    logits = torch.randn(1, 1, 2, 4)
    positions = torch.tensor([[False, True, False, False]])
    p = logits.softmax(-1)
    expected = p.clone()
    expected[..., 1] *= 2
    expected /= expected.sum(-1, keepdim=True)
    torch.testing.assert_close((logits + softmax_bias(positions, 2.0)).softmax(-1), expected)
