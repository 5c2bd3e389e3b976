"""Region editing (MRGD): edit roles in the document, the pair's two documents, token alignment,
the replace schedules, pair rows, the prompt-to-prompt effects pinned against hand-computed maps, and
``edit_pair`` on tiny SD and SDXL pipelines."""

import json

import numpy as np
import pytest
import torch

from lib_regedit.attention.call import AttentionCall, RowLayout, attend, attention_probs
from lib_regedit.attention.controller import GenerationState
from lib_regedit.documents import parse_region_document
from lib_regedit.documents.edit import EditOptions
from lib_regedit.editing.pair_documents import split_pair, target_whole_prompt
from lib_regedit.editing.pair_effects import build_pair_effects
from lib_regedit.attention.pair_rows import pairs_of, row_roles
from lib_regedit.attention.replace_schedule import self_blend, self_fractions
from lib_regedit.attention.token_alignment import TokenMapping, edited_map, token_mapping
from lib_regedit.errors import RegEditError

CHANGE = {"regions": [
    {"x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "a red circle", "edit": "change", "target_prompt": "a blue circle"},
    {"x": 0.5, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "a green square"}]}


def box(x, y, w, h, prompt, **extra):
    return {"x": x, "y": y, "w": w, "h": h, "prompt": prompt, **extra}


# --- documents -----------------------------------------------------------------------------------

def test_edit_roles_parse_and_round_trip():
    doc = parse_region_document({"regions": [
        box(0, 0, .4, .4, "a red circle", edit="change", target_prompt="a blue circle"),
        box(.5, .5, .4, .4, "a green square", edit="remove"),
        box(.5, 0, .4, .4, "a yellow triangle", edit="add"),
        box(0, .5, .4, .4, "a red square")], "edit": {"tau": 0.4, "cross_replace": {"pair": 0.8}}})
    assert doc.is_pair
    assert [r.edit for r in doc.regions] == ["change", "remove", "add", "inherent"]
    assert doc.prompt == "a red circle and a green square and a red square"  # the source's: no added region
    assert doc.edit.tau == 0.4 and doc.edit.cross_replace.pair == 0.8 and doc.edit.cross_replace.foreground == 1.0
    assert parse_region_document(doc.to_json()) == doc
    assert "edit" not in json.loads(parse_region_document(CHANGE).to_json())  # defaults left out
    assert not parse_region_document({"regions": [box(0, 0, .5, .5, "a")]}).is_pair


def test_edit_defaults_come_from_the_paper():
    o = EditOptions()
    # the changed pair's cross-attention is not injected by default (MRGD's reference: 0.6), measured
    assert (o.cross_replace.background, o.cross_replace.foreground, o.cross_replace.pair, o.tau) == (1.0, 1.0, 0.0, 0.5)
    s = o.self_replace
    assert (s.background, s.foreground, s.pair, s.whole) == (0.5, 0.7, 0.3, 0.2)
    g = o.guidance
    assert (g.enabled, g.rs, g.is_, g.ip) == (False, 1000.0, 2000.0, 300.0)


@pytest.mark.parametrize("doc, field, words", [
    ({"regions": [box(0, 0, .5, .5, "a")], "edit": {}}, "regions", "no edited region"),
    ({"regions": [box(0, 0, .5, .5, "a")], "target_prompt": "b"}, "regions", "no edited region"),
    ({"regions": [box(0, 0, .5, .5, "a", edit="remove"), box(0, 0, .5, .5, "b", edit="add")]}, "regions[1]",
     "same box"),
    ({"regions": [box(0, 0, .5, .5, "", edit="add")]}, "regions[0].prompt", "added region has no prompt"),
    ({"regions": [box(0, 0, .5, .5, "a", edit="change")]}, "regions[0].target_prompt", "no target prompt"),
    ({"regions": [box(0, 0, .5, .5, "a", edit="change", target_prompt="a")]}, "regions[0].target_prompt", "same"),
    ({"regions": [box(0, 0, .5, .5, "a", target_prompt="b")]}, "regions[0].target_prompt", "only read"),
    ({"regions": [box(0, 0, .5, .5, "a", edit="move")]}, "regions[0].edit", "move"),
    ({"regions": [box(0, 0, .5, .5, "a", edit="remove")], "mode": "latent"}, "mode", "attention"),
    ({"regions": [box(0, 0, 1, 1, "sky", role="background", edit="remove"), box(0, 0, .5, .5, "a")]},
     "regions[0].edit", "background"),
    ({"regions": [box(0, 0, .5, .5, "a", edit="remove")], "edit": {"tau": 2}}, "edit.tau", ""),
    ({"regions": [box(0, 0, .5, .5, "a", edit="remove")], "edit": {"self_replace": {"pairs": 1}}},
     "edit.self_replace", "pairs"),
    ({"regions": [box(0, 0, .5, .5, "a", edit="remove")], "edit": {"add_init_noise": 1.5}}, "edit.add_init_noise",
     ""),
    ({"regions": [box(0, 0, .5, .5, "a", edit="remove")], "edit": {"add_init_noise": "much"}}, "edit.add_init_noise",
     ""),
])
def test_bad_pair_documents_name_the_field_and_the_fix(doc, field, words):
    with pytest.raises(RegEditError) as info:
        parse_region_document(doc)
    assert info.value.field.startswith(field)
    assert words in str(info.value)
    assert info.value.fix


def test_split_pair_gives_the_source_and_target_documents():
    doc = parse_region_document({"prompt": "a red circle and a green square, plain background", "regions": [
        box(0, 0, .4, .4, "a red circle", edit="change", target_prompt="a blue circle"),
        box(.5, .5, .4, .4, "a green square", edit="remove"),
        box(.5, 0, .4, .4, "a yellow triangle", edit="add")]})
    pair = split_pair(doc)
    assert [r.prompt for r in pair.source.regions] == ["a red circle", "a green square"]
    assert [r.prompt for r in pair.target.regions] == ["a blue circle", "a yellow triangle"]
    assert pair.counterparts == (0, None) and pair.kinds == ("change", "add")
    assert [r.prompt for r in pair.removed] == ["a green square"]
    assert pair.target.prompt == "a blue circle and a yellow triangle, plain background"
    assert not pair.source.is_pair and not pair.target.is_pair
    given = parse_region_document(dict(CHANGE, target_prompt="a blue circle next to a green square"))
    assert target_whole_prompt(given) == "a blue circle next to a green square"
    assert split_pair(doc, prompt="a red circle and a green square").target.prompt == \
        "a blue circle and a yellow triangle"


# --- token alignment and schedules -----------------------------------------------------------------

def words(*texts, start=1):
    return [(start + i, t) for i, t in enumerate(texts)]


def test_word_swap_maps_every_position():
    m = token_mapping(words("a", "red", "circle"), words("a", "blue", "circle"), 8, 8)
    assert m.swap and m.aligned.all() and m.index.tolist() == list(range(8))


def test_refinement_aligns_common_tokens_and_keeps_new_ones():
    # source: BOS a circle EOS pad..; target: BOS a red circle EOS pad..
    m = token_mapping(words("a", "circle"), words("a", "red", "circle"), 8, 8)
    assert not m.swap
    assert m.aligned.tolist() == [True, True, False, True, True, True, True, True]
    assert m.index.tolist()[:2] == [0, 1] and m.index[3] == 2  # "circle": source position 2
    assert m.index[4] == 3 and m.index[7] == 6  # EOS and padding from the end of the words


def test_edited_map_against_hand_computed_maps():
    target = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    source = torch.tensor([[0.4, 0.3, 0.2, 0.1]])
    swap = TokenMapping.identity(4)
    assert torch.equal(edited_map(target, source, swap), source)
    refine = TokenMapping(torch.tensor([0, 1, 1, 2]), torch.tensor([True, False, True, False]), False)
    assert torch.allclose(edited_map(target, source, refine), torch.tensor([[0.4, 0.2, 0.3, 0.4]]))


def test_self_blend_weights_each_pixel_by_its_regions_fractions():
    # two object regions (inherent, change), r_bg, r_total on a 1x2 map
    weights = torch.tensor([[[0.5, 0.0]], [[0.0, 1.0]], [[0.5, 0.0]], [[0.0, 0.0]]])
    fractions = self_fractions(EditOptions(), ("inherent", "change"))
    assert fractions.tolist() == pytest.approx([0.7, 0.3, 0.5, 0.2])
    assert self_blend(weights, fractions, 0.1).flatten().tolist() == pytest.approx([1.0, 1.0])
    assert self_blend(weights, fractions, 0.4).flatten().tolist() == pytest.approx([1.0, 0.0])
    assert self_blend(weights, fractions, 0.6).flatten().tolist() == pytest.approx([0.5, 0.0])
    removed = torch.tensor([[1.0, 0.0]])
    assert self_blend(weights, fractions, 0.1, removed).flatten().tolist() == pytest.approx([0.0, 1.0])
    assert self_fractions(EditOptions(), ("add",))[0] == 0.0  # the source has nothing there


def test_target_start_cuts_around_edited_boxes_and_takes_the_whole_target_latent_for_an_addition():
    from lib_regedit.editing.pair_start import edited_start

    source, target = torch.zeros(1, 4, 8, 8), torch.ones(1, 4, 8, 8)
    regions = [{"x": 0, "y": 0, "w": 0.5, "h": 0.5, "prompt": "a red circle", "edit": "remove"},
               {"x": 0.5, "y": 0.5, "w": 0.5, "h": 0.5, "prompt": "a green square"}]
    start = edited_start(source, target, parse_region_document({"regions": regions}))
    grown = torch.zeros(8, 8)
    grown[:5, :5] = 1  # the removed box and a tenth of the image around it (clipped at the edges)
    assert torch.equal(start[0, 0], grown) and start.amin(1).eq(start.amax(1)).all()
    added = regions + [{"x": 0.5, "y": 0, "w": 0.5, "h": 0.5, "prompt": "a blue circle", "edit": "add"}]
    start = edited_start(source, target, parse_region_document({"regions": added, "version": 3}))
    assert torch.equal(start, target) and start is not target  # MRGD's pair: the whole target latent
    start = edited_start(source, target, parse_region_document({"regions": added}))
    assert start[0, 0, 0, 7] == 1 and start[0, 0, 7, 0] == 0  # keeping the rest: cut around the added box too
    stronger = torch.full((1, 4, 8, 8), 2.0)  # the added region's own start (added_start_document)
    start = edited_start(source, target, parse_region_document({"regions": added}), stronger)
    around_added = torch.zeros(8, 8)
    around_added[:5, 3:] = 1  # the added box and a tenth of the image around it
    assert torch.equal(start[0, 0], torch.where(around_added > 0, 2.0, grown))


def test_pair_starts_edit_the_target_s_start_with_its_added_regions_own():
    from lib_regedit.editing.pair_start import added_start_document, edited_start, pair_starts
    from lib_regedit.regions.layout_init import start_for

    doc = parse_region_document({"regions": [box(0, 0, .4, .4, "a red circle"),
                                             box(.5, .5, .4, .4, "a green square", edit="add")]})
    documents = split_pair(doc)
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    inverted = [(torch.full((1, 4, 8, 8), -1.0), 0.3), (torch.full((1, 4, 8, 8), 1.0), 0.3)]
    source, target = pair_starts(doc, documents, inverted, noise)
    assert torch.equal(source, start_for(documents.source, inverted[0], noise))
    added = start_for(added_start_document(doc, documents.target), inverted[1], noise)
    expected = edited_start(source, start_for(documents.target, inverted[1], noise), doc, added)
    assert torch.equal(target, expected) and not torch.equal(added, start_for(documents.target, inverted[1], noise))


def test_an_added_region_starts_from_its_sketch_with_less_seed_noise_from_version_6():
    from lib_regedit.documents.region import RegionDocument
    from lib_regedit.editing.pair_start import added_start_document

    regions = [box(0, 0, .4, .4, "a red circle"), box(.5, .5, .4, .4, "a green square", edit="add")]
    current = parse_region_document({"regions": regions})
    target = split_pair(current).target
    assert current.added_init_noise() == 0.1 and target.init_noise == 0.25
    added = added_start_document(current, target)
    assert isinstance(added, RegionDocument) and added.init_noise == 0.1
    assert added.regions == target.regions and added.init_noise_outside == target.init_noise_outside
    for old in ({"version": 5}, {"edit": {"keep_outside": False}}):  # version 5, and MRGD's pair: as before
        doc = parse_region_document(dict({"regions": regions}, **old))
        assert doc.added_init_noise() is None and added_start_document(doc, split_pair(doc).target) is None
    chosen = parse_region_document({"regions": regions, "edit": {"add_init_noise": 0.5}, "version": 5})
    assert chosen.added_init_noise() == 0.5 and parse_region_document(chosen.to_json()) == chosen
    assert '"add_init_noise":0.5' in chosen.to_json() and "add_init_noise" not in current.to_json()
    removal = parse_region_document({"regions": [box(0, 0, .4, .4, "a red circle", edit="remove")]})
    assert added_start_document(removal, split_pair(removal).target) is None  # nothing added


# --- rows --------------------------------------------------------------------------------------------

def test_row_roles_read_from_the_contexts():
    s, t, u = torch.zeros(1, 4, 3), torch.ones(1, 4, 3), torch.full((1, 4, 3), 2.0)
    diffusers_ref = torch.cat([s, s, t, t])  # diffusers: N sources then N targets
    roles = ("source", "source", "target", "target")
    call = torch.cat([u, u, u, u, s, s, t, t])  # uncond first
    found = row_roles(call, (4, 5, 6, 7), diffusers_ref, roles)
    assert pairs_of(found) == [(4, 6), (5, 7)]
    webui_ref = torch.cat([s, t, s, t])  # the WebUI: source, target per image
    found = row_roles(torch.cat([s, t, s, t, u, u, u, u]), (0, 1, 2, 3), webui_ref, ("source", "target") * 2)
    assert pairs_of(found) == [(0, 1), (2, 3)]
    # identical whole prompts: the reference's order
    found = row_roles(torch.cat([s, s]), (0, 1), torch.cat([s, s]), ("source", "target"))
    assert pairs_of(found) == [(0, 1)]
    # a call with the cond rows only (the WebUI's batch_cond_uncond off)
    assert pairs_of(row_roles(torch.cat([t, s]), (0, 1), torch.cat([s, t]), ("source", "target"))) == [(1, 0)]


# --- the effects, pinned ---------------------------------------------------------------------------

DIM, HEADS, D = 6, 2, 3


def fake_encode(prompt: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(abs(hash(prompt)) % 2**31)
    return torch.randn(1, 5, DIM, generator=g)


def fake_tokenize(prompt: str):
    return [(1 + i, w) for i, w in enumerate(prompt.split())][:3]


PROJ_K = torch.randn(DIM, HEADS * D, generator=torch.Generator().manual_seed(1))
PROJ_V = torch.randn(DIM, HEADS * D, generator=torch.Generator().manual_seed(2))


def project(ctx):
    split = lambda x: x.view(x.shape[0], -1, HEADS, D).transpose(1, 2)  # noqa: E731
    return split(ctx @ PROJ_K), split(ctx @ PROJ_V)


def make_call(effects, doc, progress_step, rows_context, hw=(2, 2), is_cross=True, latent_hw=None):
    latent_hw = latent_hw or hw
    state = GenerationState(total_steps=10, step=progress_step, latent_hw=latent_hw,
                            cond_reference=torch.cat([fake_encode(effects.source_prompt),
                                                      fake_encode(effects.target_prompt)]),
                            uncond_reference=fake_encode(""))
    state.rows = state.classify_rows(rows_context, rows_context.shape[0])
    state.context = rows_context
    for e in effects.effects:
        e.begin_unet_call(state)
    g = torch.Generator().manual_seed(3)
    q = torch.randn(rows_context.shape[0], HEADS, hw[0] * hw[1], D, generator=g)
    if is_cross:
        k, v = project(rows_context)
    else:
        k, v = torch.randn_like(q), torch.randn_like(q)
    return AttentionCall(q=q, k=k, v=v, is_cross=is_cross, layer="down_blocks.0.attn", hw=hw, rows=state.rows,
                         step=progress_step, total_steps=10, latent_hw=latent_hw,
                         project_context=project if is_cross else None)


def test_pair_fusion_source_row_is_plain_fusion_and_target_reads_source_maps():
    # the changed pair injected too (MRGD's 0.6; the default is 0), so the word swap is pinned
    doc = parse_region_document(dict(CHANGE, whole_prompt_start=0.0, edit={"cross_replace": {"pair": 0.6}}))
    built = build_pair_effects(doc, fake_encode, fake_tokenize, ("source", "target"))
    fusion = built.effects[0]
    rows = torch.cat([fake_encode(built.source_prompt), fake_encode(built.target_prompt), fake_encode("")])
    call = make_call(built, doc, 2, rows)  # progress 0.2: every cross map replaced
    assert call.rows == RowLayout((0, 1), (2,))
    out = fusion.compute(call)
    own = attend(call.q, call.k, call.v)
    assert torch.allclose(out[0], built.plan.source._fuse(call, (0,), own, False)[0], atol=1e-6)
    assert torch.equal(out[2], own[2])  # uncond untouched (no negative region prompts)
    # by hand: each target source reads the source counterpart's probabilities with its own values
    w = built.plan.target.weights((2, 2), 0.2).reshape(4, 1, -1, 1)
    q_s, q_t = call.q[0:1], call.q[1:2]
    expected = torch.zeros_like(own[1:2])
    for j, (ctx_t, ctx_s) in enumerate(zip([r.context for r in built.plan.target.regions],
                                           [r.context for r in built.plan.source.regions])):
        (k_t, v_t), (k_s, _) = project(ctx_t), project(ctx_s)
        expected += w[j] * (attention_probs(q_s, k_s) @ v_t)  # word swap: the source map entirely
    k_bg_t, v_bg_t = project(built.plan.target.background_context)
    k_bg_s, _ = project(built.plan.source.background_context)
    expected += w[2] * (attention_probs(q_s, k_bg_s) @ v_bg_t)
    expected += w[3] * (attention_probs(q_s, call.k[0:1]) @ call.v[1:2])  # r_total before tau
    assert torch.allclose(out[1:2], expected, atol=1e-5)
    # after every fraction: the target's own maps, i.e. plain fusion of the target's regions
    doc = parse_region_document(dict(CHANGE, whole_prompt_start=0.0,
                                     edit={"cross_replace": {"background": 0.5, "foreground": 0.5}}))
    built = build_pair_effects(doc, fake_encode, fake_tokenize, ("source", "target"))
    fusion = built.effects[0]
    late = make_call(built, doc, 9, rows)
    out = fusion.compute(late)
    own = attend(late.q, late.k, late.v)
    assert torch.allclose(out[1], built.plan.target._fuse(late, (1,), own, False)[0], atol=1e-5)


def test_self_map_injection_blends_source_and_target_maps():
    doc = parse_region_document(CHANGE)
    built = build_pair_effects(doc, fake_encode, fake_tokenize, ("source", "target"))
    effect = built.effects[1]
    rows = torch.cat([fake_encode(built.source_prompt), fake_encode(built.target_prompt)])
    call = make_call(built, doc, 4, rows, hw=(1, 2), is_cross=False, latent_hw=(4, 8))  # progress 0.4
    assert effect.applies_to(call)
    out = effect.compute(call)
    beta = built.plan.self_blend((1, 2), 0.4)
    # left: the changed region (self_replace.pair 0.3 < 0.4: its own map); right: the inherent region
    # (0.7) with weight 1 / 1.5 beside r_total (joined at 0.3 with weight 0.5; its 0.2 is over)
    assert beta.flatten().tolist() == pytest.approx([0.0, 2 / 3], abs=0.01)
    b = beta.reshape(1, 1, -1, 1)
    a_s = attention_probs(call.q[0:1], call.k[0:1])
    a_t = attention_probs(call.q[1:2], call.k[1:2])
    assert torch.allclose(out[1:2], (b * a_s + (1 - b) * a_t) @ call.v[1:2], atol=1e-6)
    assert torch.allclose(out[0], attend(call.q, call.k, call.v)[0], atol=1e-6)
    late = make_call(built, doc, 8, rows, hw=(1, 2), is_cross=False, latent_hw=(4, 8))
    assert not effect.applies_to(late)
    big = make_call(built, doc, 1, rows, hw=(2, 4), is_cross=False, latent_hw=(4, 8))
    assert not effect.applies_to(big)  # only at most latent / self_downscale on a side


# --- edit_pair on tiny pipelines ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def sd():
    from tiny_models import tiny_sd_pipeline

    return tiny_sd_pipeline()


def test_edit_pair_source_is_the_plain_region_generation(sd):
    from tiny_models import pixels

    from lib_regedit.api import generate
    from lib_regedit.editing import edit_pair

    result = edit_pair(sd, dict(CHANGE, init="noise"), seed=5, steps=4)
    plain = generate(sd, result.extras["source_document"], seed=5, steps=4)
    assert np.abs(pixels(result.source).astype(int) - pixels(plain.image).astype(int)).max() <= 2
    assert "RegEdit pair: target" in result.target_parameters
    assert "RegEdit pair: source" in result.source_parameters
    assert "a blue circle" in result.target_parameters.splitlines()[0]


def test_edit_pair_batch_makes_pairs_per_image(sd):
    from tiny_models import pixels

    from lib_regedit.editing import edit_pair

    one = edit_pair(sd, CHANGE, seed=5, steps=3)
    two = edit_pair(sd, CHANGE, seed=5, steps=3, batch_size=2)
    assert len(two.sources) == len(two.targets) == 2
    # each image of a batch is its own pair; the first matches a batch of one (same seed)
    assert np.abs(pixels(two.source).astype(int) - pixels(one.source).astype(int)).max() <= 2
    assert np.abs(pixels(two.target).astype(int) - pixels(one.target).astype(int)).max() <= 2


def test_edit_pair_on_sdxl():
    from tiny_models import tiny_sdxl_pipeline

    from lib_regedit.editing import edit_pair

    pipe = tiny_sdxl_pipeline()
    result = edit_pair(pipe, {"regions": [box(0, 0, .5, .5, "a cat", edit="add"), box(.5, .5, .5, .5, "a dog")]},
                       seed=1, steps=3)
    assert result.source.size == result.target.size


def test_edit_pair_refuses_bad_input_before_any_work(sd, monkeypatch):
    from lib_regedit.editing import diffusers_edit, edit_pair

    monkeypatch.setattr(diffusers_edit.api, "_run", lambda *a, **k: pytest.fail("sampling started"))
    with pytest.raises(RegEditError, match="no region is edited"):
        edit_pair(sd, {"regions": [box(0, 0, .5, .5, "a cat")]})
    with pytest.raises(RegEditError) as info:
        edit_pair(sd, dict(CHANGE, edit={"guidance": True}))
    assert info.value.field == "segmenter"
    with pytest.raises(RegEditError, match="steps"):
        edit_pair(sd, CHANGE, steps=0)


# --- multi-region guidance ----------------------------------------------------------------------------

def test_rs_loss_is_the_mask_outside_its_box():
    from lib_regedit.editing.region_guidance import rs_loss

    masks = torch.tensor([[[1.0, 0.5], [0.0, 0.0]]])
    priors = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert float(rs_loss(masks, priors)) == pytest.approx(0.25 / 4)  # only 0.5 lies outside: 0.5² / 4 pixels
    assert float(rs_loss(masks, torch.ones_like(masks))) == 0.0


def test_is_loss_prefers_corresponding_masks():
    from lib_regedit.editing.region_guidance import is_loss

    a = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    same = is_loss(a, a)
    swapped = is_loss(a, a.flip(0))
    assert float(same) < 0.01 < float(swapped)
    assert float(is_loss(a[:1], a[:1])) == 0.0  # one region: nothing to contrast


def test_ip_loss_reads_only_the_inherent_region():
    from lib_regedit.editing.region_guidance import ip_loss

    img_s, img_t = torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    img_t[..., 0, 0] = 1.0  # a change at (0, 0)
    z = torch.zeros(1, 4, 1, 1)
    inside = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert float(ip_loss(img_s, img_t, z, z, inside, torch.ones(1, 1, 1))) == pytest.approx(1.0)
    assert float(ip_loss(img_s, img_t, z, z, 1 - inside, torch.ones(1, 1, 1))) == 0.0


@pytest.fixture(scope="module")
def tiny_segmenter(tmp_path_factory):
    from transformers import CLIPSegForImageSegmentation

    from lib_regedit.editing.segmenter import load_segmenter
    from lib_regedit.shapesworld import segmenter_train as st

    torch.manual_seed(0)
    config = st.small_config(vision_hidden=32, vision_layers=2, text_hidden=32, text_layers=1, image_size=32,
                             patch=8, extract_layers=(0, 1), reduce_dim=16)
    folder = st.save_folder(CLIPSegForImageSegmentation(config), tmp_path_factory.mktemp("seg") / "tiny")
    return load_segmenter(folder)


def test_guidance_moves_the_pair_and_reports_its_losses(sd, tiny_segmenter):
    from tiny_models import pixels

    from lib_regedit.editing import edit_pair

    plain = edit_pair(sd, dict(CHANGE, init="noise"), seed=2, steps=3)
    guided = edit_pair(sd, dict(CHANGE, init="noise", edit={"guidance": {"rs": 1e5, "is": 1e5, "ip": 1e5}}),
                       seed=2, steps=3, segmenter=tiny_segmenter)
    history = guided.extras["guidance_history"]
    assert [h["step"] for h in history] == [0, 1, 2]
    assert all(set(h) >= {"rs", "is", "ip"} for h in history)
    assert "multi-region guidance: 3 guided steps" in guided.extras["guidance"]
    assert not np.array_equal(pixels(guided.target), pixels(plain.target))
    half = edit_pair(sd, dict(CHANGE, init="noise", edit={"guidance": {"until": 0.5}}), seed=2, steps=4,
                     segmenter=tiny_segmenter)
    assert [h["step"] for h in half.extras["guidance_history"]] == [0, 1]


# --- the command line --------------------------------------------------------------------------------

def test_edit_regions_command_on_the_bundled_model(tmp_path, capsys):
    from PIL import Image

    from lib_regedit.cli import main
    from lib_regedit.evaluation.detector import detect
    from lib_regedit.evaluation.metrics import match_in_box

    source, target = tmp_path / "s.png", tmp_path / "t.png"
    assert main(["edit-regions", "--regions", "examples/edit_change.json", "--out-source", str(source),
                 "--out-target", str(target), "--seed", "3"]) == 0
    with Image.open(target) as image:
        assert "RegEdit pair: target" in image.text["parameters"]
        assert image.text["parameters"].startswith("a blue circle and a green square")
        detections = detect(image.convert("RGB"))
    assert match_in_box(detections, (0.05, 0.3, 0.4, 0.4), "blue", "circle") is not None
    assert match_in_box(detections, (0.55, 0.3, 0.4, 0.4), "green", "square") is not None
    # a PNG of the pair gives its document back
    again = tmp_path / "again.png"
    assert main(["edit-regions", "--regions", str(target), "--out-source", str(tmp_path / "s2.png"),
                 "--out-target", str(again), "--seed", "3"]) == 0


@pytest.mark.parametrize("args, words", [
    (["--regions", "examples/two_shapes.json"], "no region is edited"),
    (["--regions", "missing.json"], "--regions: missing.json does not exist"),
    (["--regions", "examples/edit_change.json", "--segmenter", "x"], "--segmenter: is read only with --guidance"),
    (["--regions", "examples/edit_change.json", "--guidance", "--segmenter", "nowhere"], "segmenter: nowhere does not exist"),
    (["--regions", "examples/edit_change.json", "--steps", "0"], "--steps"),
])
def test_edit_regions_command_refuses_bad_input_with_the_fix(tmp_path, capsys, args, words):
    from lib_regedit.cli import main

    code = main(["edit-regions", *args, "--out-source", str(tmp_path / "s.png"), "--out-target", str(tmp_path / "t.png")])
    err = capsys.readouterr().err
    assert code == 2 and words in err and "Fix:" in err, err
    assert not (tmp_path / "s.png").exists()


def test_webui_guidance_moves_x0_for_both_kinds_of_sampler():
    from lib_regedit.editing.webui_guidance import guide_combined

    class Fixed:  # a guidance whose gradient is known: +1 for the source, -1 for the target
        history = []

        def gradient(self, x0_s, x0_t):
            return torch.ones_like(x0_s), -torch.ones_like(x0_t), {"rs": 0.0, "is": 0.0, "ip": 0.0}

    x = torch.zeros(2, 4, 2, 2)
    x0 = torch.full((2, 4, 2, 2), 0.5)
    sigma = torch.tensor([1.0, 1.0])  # k-diffusion: alpha_bar = 1 / (1 + sigma^2) = 0.5
    out = guide_combined(Fixed(), x0, x, sigma, torch.ones(10), predicts_noise=False, step=0)
    assert torch.allclose(out[0], x0[0] - 0.5) and torch.allclose(out[1], x0[1] + 0.5)
    alphas = torch.full((10,), 0.25)  # timestep samplers: the result is eps, x0 moves by -(1 - a) grad
    eps = torch.zeros(2, 4, 2, 2)
    out = guide_combined(Fixed(), eps, x, torch.tensor([3.0, 3.0]), alphas, predicts_noise=True, step=0)
    x0_before = (x - (0.75 ** 0.5) * eps) / 0.5
    x0_after = (x - (0.75 ** 0.5) * out) / 0.5
    assert torch.allclose(x0_after - x0_before, torch.stack([-0.75 * torch.ones(4, 2, 2), 0.75 * torch.ones(4, 2, 2)]),
                          atol=1e-6)


def test_keep_outside_follows_the_document_version():
    from lib_regedit.documents import parse_region_document

    pair = {"regions": [{"x": 0.1, "y": 0.1, "w": 0.4, "h": 0.4, "prompt": "a red circle", "edit": "remove"},
                        {"x": 0.6, "y": 0.1, "w": 0.3, "h": 0.3, "prompt": "a blue square"}]}
    current, old = parse_region_document(pair), parse_region_document(dict(pair, version=3))
    assert current.keeps_outside(picture=False) and current.keeps_outside(picture=True)
    assert not old.keeps_outside(picture=False) and old.keeps_outside(picture=True)  # MRGD's pair, as before
    off = parse_region_document(dict(pair, edit={"keep_outside": False}))
    assert not off.keeps_outside(picture=False) and not off.keeps_outside(picture=True)
    for doc in (current, old, off):
        assert parse_region_document(doc.to_json()) == doc
    assert '"keep_outside"' not in current.to_json() and '"keep_outside":false' in off.to_json()
