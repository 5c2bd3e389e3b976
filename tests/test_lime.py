"""LIME (Simsar et al. 2025): edit tokens without downloads, the RoI on a planted feature structure,
the regularisation pinned on both backends, the edit on instruct-pix2pix and ordinary pipelines, and
bad input."""

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from lib_regedit.attention.call import AttentionCall, RowLayout, attend, attention_probs
from lib_regedit.attention.controller import Controller, Effect, GenerationState
from lib_regedit.attention.effects.lime_regularisation import LimeRegularisation
from lib_regedit.attention.effects.roi_capture import FeatureStepReached, RoiCapture
from lib_regedit.errors import RegEditError
from lib_regedit.lime import LimeOptions, lime_edit
from lib_regedit.lime.diffusers_lime import API_FIX
from lib_regedit.lime.edit_tokens import edit_positions, edit_words, object_positions
from lib_regedit.lime.roi import (cluster, feature_matrix, find_roi, object_cells, pick_clusters,
                                  reduce_dimension, second_peak, uncertainty_note)


@pytest.fixture(scope="module")
def instruct():
    from tiny_models import tiny_instruct_pipeline

    return tiny_instruct_pipeline()


def source_image(size=32, seed=0):
    rng = np.random.default_rng(seed)
    arr = np.full((size, size, 3), 200, np.uint8)
    arr[4:14, 4:14] = (220, 30, 30)
    arr[18:28, 16:28] = (30, 30, 220)
    arr = np.clip(arr.astype(int) + rng.integers(-8, 9, arr.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


# --- edit tokens ----------------------------------------------------------------------------------

def test_edit_tokens_drop_bos_stop_words_and_punctuation_without_downloads(instruct):
    from lib_regedit.api import tokenize

    tokens = tokenize(instruct, "Make the red circle blue, please!")
    words = dict(tokens)
    edit = edit_positions(tokens)
    assert [words[p] for p in edit] == ["make", "red", "circle", "blue"]  # "please" is a stop word
    assert 0 not in edit  # the start token
    assert [words[p] for p in object_positions(tokens)] == ["red", "circle", "blue"]
    assert edit_words("the of , into .") == []
    assert "nltk" not in sys.modules  # scikit-learn's stop words: nothing downloads


# --- RoI ----------------------------------------------------------------------------------------------

def planted_features(h=12, w=12, seed=0):
    """Two feature maps whose positions fall into three planted segments (a square, a bar, the rest)."""
    g = torch.Generator().manual_seed(seed)
    segment = torch.zeros(h, w, dtype=torch.long)
    segment[2:6, 2:6] = 1
    segment[8:11, :] = 2
    centres = torch.randn(3, 24, generator=g) * 3
    fine = centres[segment].permute(2, 0, 1) + 0.1 * torch.randn(24, h, w, generator=g)
    coarse = torch.nn.functional.avg_pool2d(fine[None], 2)[0][:8]  # a lower resolution, as the UNet's
    return [fine, coarse], segment


def test_roi_is_the_planted_segment_where_the_edit_tokens_peak():
    features, segment = planted_features()
    attention = torch.zeros(12, 12)
    attention[3, 4] = 1.0  # inside the square
    roi = find_roi(features, attention, clusters=3, points=1)
    assert torch.equal(roi.mask, segment == 1)
    attention[9, 7] = 2.0  # now the bar
    assert torch.equal(find_roi(features, attention, clusters=3, points=1).mask, segment == 2)
    both = find_roi(features, attention, clusters=3, points=2).mask
    assert torch.equal(both, (segment == 1) | (segment == 2))


def test_grow_adds_every_cell_within_that_many_cells_of_the_found_roi():
    features, segment = planted_features()
    attention = torch.zeros(12, 12)
    attention[3, 4] = 1.0
    grown = find_roi(features, attention, clusters=3, points=1, grow=1).mask
    square = segment == 1
    expected = torch.nn.functional.max_pool2d(square.float()[None, None], 3, 1, 1)[0, 0] > 0
    assert torch.equal(grown, expected) and grown.sum() > square.sum() and (grown & square).equal(square)


def planted_segments() -> np.ndarray:
    """Superpixel labels on a 24x24 grid (twice the planted features' 12x12): the background (0), the
    square (1) and the bar (2) of :func:`planted_features`."""
    _, segment = planted_features()
    return segment.repeat_interleave(2, 0).repeat_interleave(2, 1).numpy()


def test_the_object_pick_takes_the_most_attended_object_not_the_highest_spike():
    features, segment = planted_features()
    attention = torch.zeros(12, 12)
    attention[segment == 2] = 0.6  # the words attend the bar as a whole
    attention[5, 5] = 1.0  # and spike on the square's rim
    assert torch.equal(find_roi(features, attention, clusters=3, points=1).mask, segment == 1)  # the paper's peak
    cells = object_cells(attention, planted_segments())
    assert torch.equal(cells, segment == 2)
    roi = find_roi(features, attention, clusters=3, points=1, segments=planted_segments())
    assert torch.equal(roi.mask, segment == 2) and roi.attention.max() == 1.0  # the map itself is kept, for the note
    assert torch.equal(pick_clusters(segment, attention, 1, within=segment == 2), segment == 2)


def test_the_object_pick_passes_over_the_background_and_falls_back_to_the_peak():
    features, segment = planted_features()
    attention = torch.zeros(12, 12)
    attention[segment == 0] = 0.5  # the background is attended most on average, but it is no object
    attention[3, 4] = 0.9
    assert torch.equal(object_cells(attention, planted_segments()), segment == 1)
    one = np.zeros((24, 24), dtype=np.int64)  # a single segment: all background, so the peak anywhere
    assert object_cells(attention, one).all()
    assert torch.equal(find_roi(features, attention, clusters=3, points=1, segments=one).mask, segment == 1)


def blob(h: int, w: int, y: int, x: int, height: float, radius: float = 1.5) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return height * torch.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * radius ** 2))


def test_second_peak_is_the_best_place_apart_from_the_peak_as_a_share_of_it():
    one = blob(16, 16, 4, 4, 1.0)
    assert second_peak(one) < 0.01  # one object: its own slope is not a second place
    two = one + blob(16, 16, 11, 12, 0.7)
    assert second_peak(two) == pytest.approx(0.7, abs=0.02)
    assert second_peak(one + blob(16, 16, 11, 12, 1.0)) == pytest.approx(1.0, abs=0.02)
    assert second_peak(torch.zeros(16, 16)) == 0.0 and second_peak(torch.ones(16, 16)) == 0.0


def test_an_uncertain_found_roi_tells_the_user_how_to_give_the_region():
    features, segment = planted_features()
    sure = find_roi(features, blob(12, 12, 3, 4, 1.0), clusters=3, points=1)
    assert not sure.uncertain and uncertainty_note(sure, "draw it") is None
    torn = find_roi(features, blob(12, 12, 3, 4, 1.0) + blob(12, 12, 9, 8, 0.9), clusters=3, points=1)
    assert torn.uncertain and torch.equal(torn.mask, segment == 1)  # the pick itself is unchanged
    note = uncertainty_note(torn, "draw it")
    assert note.startswith("LIME: ") and "90%" in note and note.endswith("draw it")


def shapes_scene():
    """64x64 (a 16x16 latent at 4 pixels a cell): a red square at pixels 8..27, a blue disc at x 40..59, y 36..55."""
    from PIL import ImageDraw

    image = Image.new("RGB", (64, 64), (225, 235, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle((8, 8, 27, 27), fill=(220, 30, 30))
    draw.ellipse((40, 36, 59, 55), fill=(30, 60, 220))
    return image


def test_snap_takes_the_object_the_found_roi_lands_on_and_drops_the_stray_cells():
    from lib_regedit.lime.superpixels import snap_to_superpixels

    found = torch.zeros(16, 16, dtype=torch.bool)
    found[3:6, 3:6] = True  # the square's middle (cells 2..6), not its rim
    found[12, 2] = True  # a stray background cell
    region = snap_to_superpixels(shapes_scene(), found)
    square = torch.zeros(64, 64)
    square[8:28, 8:28] = 1
    assert region.shape == (64, 64) and torch.equal(region, square)  # the whole square, its box, nothing else


def test_snap_merges_the_superpixels_of_one_colour_so_a_large_object_comes_whole():
    from lib_regedit.lime.superpixels import snap_to_superpixels, superpixels

    image = Image.new("RGB", (64, 64), (225, 235, 245))
    image.paste((30, 160, 60), (8, 8, 56, 40))  # 12 x 8 cells: SLIC alone cuts it into two superpixels
    labels = superpixels(image, (16, 16))
    assert len(np.unique(labels[8:40, 8:56])) == 1 and len(np.unique(labels)) == 2
    found = torch.zeros(16, 16, dtype=torch.bool)
    found[2:10, 2:7] = True  # its left 40%
    region = snap_to_superpixels(image, found)
    expected = torch.zeros(64, 64)
    expected[8:40, 8:56] = 1
    assert torch.equal(region, expected)


def test_superpixels_of_an_image_slic_leaves_whole_are_one_segment():
    from lib_regedit.lime.superpixels import snap_to_superpixels, superpixels

    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    labels = superpixels(noise, (16, 16))  # SLIC keeps pure noise as one segment: nothing to merge
    assert labels.shape == (64, 64) and (labels == 0).all()
    found = torch.zeros(16, 16, dtype=torch.bool)
    found[4:6, 4:6] = True
    region = snap_to_superpixels(noise, found)  # the found cells cover 4/256 of the one segment: their own box
    assert region.sum() == 64 and (region[16:24, 16:24] == 1).all()


def test_snap_boxes_each_part_and_falls_back_to_the_found_roi():
    from lib_regedit.lime.superpixels import box_each_part, snap_to_superpixels

    region = np.zeros((10, 10), bool)
    region[1, 1] = region[2, 2] = region[1, 3] = True  # one part (diagonal neighbours)
    region[7:9, 6] = region[8, 8] = True  # two more
    boxed = box_each_part(region)
    expected = np.zeros((10, 10), bool)
    expected[1:3, 1:4] = expected[7:9, 6] = expected[8, 8] = True
    assert np.array_equal(boxed, expected)
    plain = Image.new("RGB", (64, 64), (200, 200, 200))  # no superpixel is covered enough: the RoI's own box
    found = torch.zeros(16, 16, dtype=torch.bool)
    found[4, 4] = found[5, 5] = True
    out = snap_to_superpixels(plain, found)
    assert out.sum() == 64 and (out[16:24, 16:24] == 1).all()


def test_lime_edit_snaps_the_found_roi_and_pastes_at_its_pixels(instruct):
    from lib_regedit.lime.given_roi import touched_cells
    from lib_regedit.lime.superpixels import snap_to_superpixels

    image = source_image()
    kwargs = dict(steps=5, seed=0, progress=False)
    raw = lime_edit(instruct, image, "make the red square blue", lime={"snap": False}, **kwargs)
    snapped = lime_edit(instruct, image, "make the red square blue", **kwargs)
    region = snap_to_superpixels(image, snapped.found.mask)
    assert torch.equal(snapped.roi, touched_cells(region, (16, 16))) and "snap" in snapped.timings
    src, out = np.asarray(image).astype(int), np.asarray(snapped.image).astype(int)
    far = torch.nn.functional.max_pool2d(region[None, None], 5, 1, 2)[0, 0].numpy() == 0  # beyond the feather
    assert np.array_equal(out[far], src[far])
    assert '"snap": false' in raw.parameters.replace('\\"', '"') and '"snap"' not in snapped.parameters
    assert torch.equal(raw.found.mask, raw.roi)  # the found RoI comes back (unsnapped here: the RoI used) for its notes
    assert raw.notes == ([uncertainty_note(raw.found, API_FIX)] if raw.found.uncertain else [])


def test_features_are_upsampled_and_l2_normalised_and_pca_keeps_the_clusters():
    features, segment = planted_features()
    x = feature_matrix(features, (12, 12))
    assert x.shape == (144, 32)
    torch.testing.assert_close(x.norm(dim=1), torch.ones(144))
    reduced = reduce_dimension(x, 4)
    assert reduced.shape == (144, 4)
    labels = torch.from_numpy(cluster(reduced, 3)).reshape(12, 12)
    for s in range(3):  # each planted segment is one cluster
        assert labels[segment == s].unique().numel() == 1
    assert pick_clusters(labels, (segment == 2).float(), 1).sum() == (segment == 2).sum()


def test_more_clusters_than_feature_points_is_refused():
    features, _ = planted_features(4, 4)
    with pytest.raises(RegEditError) as e:
        find_roi(features, torch.rand(4, 4), clusters=17, points=1)
    assert e.value.field == "lime.clusters" and "16" in e.value.fix


# --- the regularisation, pinned --------------------------------------------------------------------

def _call(q, k, v, hw, step=0, total=10, rows=None):
    return AttentionCall(q=q, k=k, v=v, is_cross=True, layer="down_blocks.0.attentions.0", hw=hw,
                         rows=rows or RowLayout.all_cond(q.shape[0]), step=step, total_steps=total, latent_hw=hw)


def test_inside_the_roi_only_edit_tokens_are_attended_and_outside_nothing_changes():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 16, 8, generator=g), torch.randn(3, 2, 10, 8, generator=g),
               torch.randn(3, 2, 10, 8, generator=g))
    roi = torch.zeros(4, 4, dtype=torch.bool)
    roi[1:3, 1:3] = True
    effect = LimeRegularisation(roi, [2, 5], until=0.9, downscales=(1,))
    call = _call(q, k, v, (4, 4))
    Controller([effect], GenerationState()).attend(call)
    out = attend(call.q, call.k, call.v, call.extras["bias"])
    plain = attend(q, k, v)
    inside = roi.reshape(-1)
    expected = attend(q[:, :, inside], k[:, :, [2, 5]], v[:, :, [2, 5]])  # softmax over the edit tokens alone
    torch.testing.assert_close(out[:, :, inside], expected)
    torch.testing.assert_close(out[:, :, ~inside], plain[:, :, ~inside])
    assert effect.applied == 1
    # every row is regularised (instruct-pix2pix's three branches), and only while step < until * steps
    assert not effect.applies_to(_call(q, k, v, (4, 4), step=9))
    assert effect.applies_to(_call(q, k, v, (4, 4), step=8, rows=RowLayout((0,), (1, 2))))
    assert not effect.applies_to(_call(q, k, v, (2, 2)).__class__(**{**_call(q, k, v, (2, 2)).__dict__,
                                                                      "latent_hw": (4, 4)}))


class Probe(Effect):
    """Records, per cross-attention call, the output and the plain attention of the same inputs."""
    cross, self_ = True, False

    def __init__(self):
        self.calls = []

    def applies_to(self, call):
        return call.is_cross

    def observe(self, call, out):
        self.calls.append((call.hw, call.latent_hw, out.detach().clone(), call.v.detach().clone(),
                           attend(call.q, call.k, call.v).detach()))


def _check_pinned(probe, token):
    """Full-image RoI, one edit token: where regularised, every query reads exactly that token's value."""
    regularised = [c for c in probe.calls if c[0] == c[1]]  # downscale 1
    others = [c for c in probe.calls if c[0] != c[1]]
    assert regularised and others
    for _, _, out, v, _ in regularised:
        torch.testing.assert_close(out, v[:, :, token:token + 1].expand_as(out))
    for _, _, out, _, plain in others:
        torch.testing.assert_close(out, plain)


def test_pinned_on_the_diffusers_backend(instruct):
    from lib_regedit.backends import diffusers_backend

    unet = instruct.unet
    probe = Probe()
    state = GenerationState(total_steps=10)
    controller = Controller([LimeRegularisation(torch.ones(16, 16, dtype=torch.bool), [3], downscales=(1,)), probe],
                            state)
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(3, 8, 16, 16, generator=g), torch.randn(3, 77, 32, generator=g)
    with torch.no_grad(), diffusers_backend.attached(unet, controller):
        unet(x, 10, encoder_hidden_states=ctx)
    _check_pinned(probe, 3)
    assert not any(type(p).__name__ == "RegEditAttnProcessor" for p in unet.attn_processors.values())


def test_pinned_on_the_webui_ldm_backend():
    openaimodel = pytest.importorskip("ldm.modules.diffusionmodules.openaimodel", reason="the ldm package is missing")
    from lib_regedit.backends import ldm_backend

    torch.manual_seed(0)
    unet = openaimodel.UNetModel(image_size=16, in_channels=8, out_channels=4, model_channels=32,
                                 attention_resolutions=[1, 2], num_res_blocks=1, channel_mult=[1, 2], num_heads=2,
                                 use_spatial_transformer=True, transformer_depth=1, context_dim=32, legacy=False).eval()
    probe = Probe()
    controller = Controller([LimeRegularisation(torch.ones(16, 16, dtype=torch.bool), [3], downscales=(1,)), probe],
                            GenerationState(total_steps=10))
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(3, 8, 16, 16, generator=g), torch.randn(3, 77, 32, generator=g)
    with torch.no_grad(), ldm_backend.attached(unet, controller):
        unet(x, torch.full((3,), 10), context=ctx)
    _check_pinned(probe, 3)
    assert ldm_backend.remove_leftovers(unet) == 0


# --- the edit -----------------------------------------------------------------------------------------

def test_lime_edit_on_an_instruct_pipeline_runs_all_three_branches(instruct):
    seen = []

    class Rows(Effect):
        def applies_to(self, call):
            seen.append(call.rows)
            return False

    from lib_regedit.attention.effects import lime_regularisation as module

    original = module.LimeRegularisation.prepare

    def prepare(self, call):
        seen.append(("regularised", call.q.shape[0], call.rows))
        return original(self, call)

    module.LimeRegularisation.prepare = prepare
    try:
        result = lime_edit(instruct, source_image(), "make the red square blue", steps=6, progress=False)
    finally:
        module.LimeRegularisation.prepare = original
    regularised = [s for s in seen if isinstance(s, tuple) and s[0] == "regularised"]
    assert regularised and all(n == 3 and rows == RowLayout((0,), (1, 2)) for _, n, rows in regularised)
    assert result.roi.shape == (16, 16) and result.roi.any() and not result.roi.all()
    assert result.preview.size == (32, 32)
    assert 'RegEdit LIME: "{\\"version\\": 4}"' in result.parameters and "Image CFG scale: 1.5" in result.parameters
    assert set(result.timings) == {"first_pass", "clustering", "snap", "edit"}


def test_without_lime_it_is_the_plain_pipeline_and_nothing_stays_hooked(instruct):
    image = source_image()
    kwargs = dict(steps=5, seed=3, progress=False)
    before = lime_edit(instruct, image, "make the red square blue", lime=False, **kwargs).image
    lime_edit(instruct, image, "make the red square blue", **kwargs)
    after = lime_edit(instruct, image, "make the red square blue", lime=False, **kwargs).image
    assert np.array_equal(np.asarray(before), np.asarray(after))
    plain = instruct(prompt="make the red square blue", image=image, num_inference_steps=5,
                     generator=torch.Generator().manual_seed(3)).images[0]
    assert np.array_equal(np.asarray(before), np.asarray(plain))


def test_a_given_mask_or_boxes_replace_the_found_roi_and_skip_the_first_pass(instruct):
    image = source_image()
    roi = torch.zeros(16, 16, dtype=torch.bool)
    roi[2:7, 2:7] = True
    pixels = torch.zeros(32, 32, dtype=torch.bool)
    pixels[4:14, 4:14] = True  # the same region at the image's size
    kwargs = dict(steps=5, seed=1, progress=False)
    given = lime_edit(instruct, image, "make the red square blue", roi=pixels, **kwargs)
    assert torch.equal(given.roi, roi) and "first_pass" not in given.timings
    assert given.found is None and given.notes == []  # a given region is never uncertain
    latent = lime_edit(instruct, image, "make the red square blue", roi=roi, **kwargs)
    assert torch.equal(latent.roi, roi)  # a latent-sized mask is used as it is (and pasted a cell wider)
    boxes = lime_edit(instruct, image, "make the red square blue", lime={"roi": [{"x": 0.125, "y": 0.125, "w": 0.3125,
                                                                                  "h": 0.3125}]}, **kwargs)
    assert torch.equal(boxes.roi, roi)
    assert np.array_equal(np.asarray(given.image), np.asarray(boxes.image))
    assert 'RegEdit LIME: "{\\"version\\": 4, \\"roi\\": [{\\"x\\": 0.125' in boxes.parameters


def test_an_ordinary_pipeline_runs_the_localised_prompt_edit(sd):
    result = lime_edit(sd, source_image(), "a blue square", steps=6, strength=0.5, progress=False)
    assert result.roi.any() and "Denoising strength: 0.5" in result.parameters
    plain = lime_edit(sd, source_image(), "a blue square", steps=6, strength=0.5, progress=False, lime=False)
    assert not np.array_equal(np.asarray(result.image), np.asarray(plain.image))


@pytest.mark.parametrize("kwargs, field", [
    (dict(instruction="the of , ."), "instruction"),
    (dict(instruction="   "), "instruction"),
    (dict(image=None), "image"),
    (dict(roi=torch.zeros(32, 32, dtype=torch.bool)), "roi"),
    (dict(lime={"clusters": 0}), "lime.clusters"),
    (dict(lime={"feature_step": 2}), "lime.feature_step"),
    (dict(lime={"grow": -1}), "lime.grow"),
    (dict(options=LimeOptions(grow=1.5)), "lime.grow"),
    (dict(options=LimeOptions(snap="yes")), "lime.snap"),
    (dict(lime={"colour": 1}), "lime.colour"),
    (dict(image=Image.new("RGB", (30, 30))), "image"),
    (dict(image=Image.new("F", (32, 32))), "image"),
    (dict(options=LimeOptions(clusters=300)), "lime.clusters"),
])
def test_bad_input_names_the_field(instruct, kwargs, field):
    args = dict(image=source_image(), instruction="make the red square blue", steps=4, progress=False)
    args.update(kwargs)
    with pytest.raises(RegEditError) as e:
        lime_edit(instruct, args.pop("image"), args.pop("instruction"), **args)
    assert e.value.field == field, str(e.value)


def test_an_ordinary_model_needs_an_edit_prompt(sd):
    with pytest.raises(RegEditError) as e:
        lime_edit(sd, source_image(), "", progress=False)
    assert e.value.field == "instruction" and "edit prompt" in e.value.fix


def test_first_maps_come_from_the_first_step_at_the_finest_resolution_and_features_from_the_feature_step():
    """``maps: "first"`` (version 4): the edit words' maps are the first step's, in the up blocks, at the
    finest resolution that has them; the features stay the feature step's, at the feature resolutions.
    ``"feature"`` (the paper's) reads both at the feature step."""
    from types import SimpleNamespace

    from lib_regedit.documents.lime import LimeOptions

    def call(hw, step, layer, cross=True, fill=0.0):
        g = torch.Generator().manual_seed(step)
        q = torch.randn(1, 2, hw[0] * hw[1], 8, generator=g)
        k = torch.randn(1, 2, 6, 8, generator=g)
        k[..., 2, :] += fill  # the edit token's key moves with the step: its map differs from step to step
        return AttentionCall(q=q, k=k, v=torch.randn(1, 2, 6, 8, generator=g), is_cross=cross, layer=layer,
                             hw=hw, rows=RowLayout.all_cond(1), step=step, total_steps=9, latent_hw=(8, 8))

    def run(maps):
        capture = RoiCapture(1 / 3, [2], (2,), **LimeOptions(maps=maps).capture_maps())
        seen = {}
        for step in range(4):
            state = SimpleNamespace(step=step, total_steps=9)
            try:
                capture.begin_unet_call(state)
            except FeatureStepReached:
                break
            for c in (call((8, 8), step, "up_blocks.1.attentions.0", fill=step),
                      call((4, 4), step, "up_blocks.0.attentions.0"),
                      call((4, 4), step, "down_blocks.1.attentions.0"),
                      call((4, 4), step, "down_blocks.1.attentions.0", False)):
                if capture.applies_to(c):
                    capture.observe(c, attend(c.q, c.k, c.v))
                    seen.setdefault(step, set()).add((c.hw, c.level, c.is_cross))
        return capture, seen

    first, seen = run("first")
    step0 = call((8, 8), 0, "up_blocks.1.attentions.0")
    expected = attention_probs(step0.q, step0.k, scale=step0.scale)[..., 2].mean((0, 1)).reshape(8, 8)
    torch.testing.assert_close(first.attention(), expected)  # the first step's, the finest resolution's alone
    assert seen[0] >= {((8, 8), "up", True)} and all(((8, 8), "up", True) not in s for k, s in seen.items() if k)
    assert {s for k, v in seen.items() if k == 3 for s in v} == {((4, 4), "up", True), ((4, 4), "down", True),
                                                               ((4, 4), "down", False)}  # the features, step 3
    assert len(first.features) == 3
    paper, seen = run("feature")
    assert paper.attention().shape == (4, 4) and all(((8, 8), "up", True) not in s for s in seen.values())
    assert len(paper.maps[(4, 4)]) == 2  # up and down, at the feature step


def test_the_feature_pass_stops_at_the_feature_step(instruct):
    calls = []
    original = instruct.unet.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    instruct.unet.forward = counting
    try:
        lime_edit(instruct, source_image(), "make the red square blue", steps=9, progress=False,
                  lime={"feature_step": 1 / 3})
    finally:
        del instruct.unet.forward
    assert len(calls) == 3 + 1 + 9  # steps 0..3 (the 4th call raises at its start), then the edit's 9


# --- keeping the rest -----------------------------------------------------------------------------------

def test_a_drawn_region_is_every_latent_cell_it_touches_and_its_pixels_for_the_paste():
    from lib_regedit.lime import given_roi

    latent, pixels = given_roi.from_boxes([(0.1, 0.1, 0.3, 0.3)], (8, 8), (32, 32))
    assert latent.nonzero().min().item() == 0 and latent.nonzero().max().item() == 3  # cells 0..3 touched, 3.2 px in
    assert latent.sum() == 16 and pixels.shape == (32, 32) and abs(float(pixels.sum()) - (0.3 * 32) ** 2) < 1e-3
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[5:9, 5:9] = True
    latent, pixels = given_roi.from_mask(mask, (8, 8), (32, 32))
    assert latent.nonzero().tolist() == [[1, 1], [1, 2], [2, 1], [2, 2]] and torch.equal(pixels.bool(), mask)
    latent, pixels = given_roi.from_mask(torch.ones(8, 8, dtype=torch.bool), (8, 8), (32, 32))
    assert latent.all() and pixels is None  # a latent-sized mask has no pixel region
    with pytest.raises(RegEditError) as e:
        given_roi.from_mask(torch.ones(2, 8, 8, dtype=torch.bool), (8, 8), (32, 32))
    assert e.value.field == "roi" and "shape" in str(e.value)


def test_the_paste_mask_feathers_outward_only():
    from lib_regedit.compositing import pixel_mask

    cells = np.zeros((4, 4), bool)
    cells[1:3, 1:3] = True
    mask = pixel_mask(cells, 32, 32, feather=2)
    assert (mask[8:24, 8:24] == 1).all()  # the region itself stays whole
    assert 0 < mask[6, 16] < 1 and mask[0, 0] == 0  # softened just outside, untouched far away


def test_keep_outside_pastes_the_source_back_outside_the_roi(instruct):
    image = source_image()
    doc = {"roi": [{"x": 0.125, "y": 0.125, "w": 0.3125, "h": 0.3125}]}  # pixels 4..14
    kept = lime_edit(instruct, image, "make the red square blue", lime=doc, steps=5, seed=2, progress=False).image
    loose = lime_edit(instruct, image, "make the red square blue", lime={**doc, "keep_outside": False}, steps=5,
                      seed=2, progress=False).image
    src, a, b = (np.asarray(x).astype(int) for x in (image, kept, loose))
    far = np.ones((32, 32), bool)
    far[2:17, 2:17] = False  # the box and its feather (a quarter of a 2-pixel latent cell)
    assert np.array_equal(a[far], src[far]) and not np.array_equal(b[far], src[far])
    assert not np.array_equal(a[4:14, 4:14], src[4:14, 4:14])  # inside, the edit


def test_a_found_roi_is_pasted_a_latent_cell_wider():
    from lib_regedit.lime.preview import paste_outside_roi

    source, edited = Image.new("RGB", (32, 32), (0, 0, 0)), Image.new("RGB", (32, 32), (255, 255, 255))
    roi = torch.zeros(8, 8, dtype=torch.bool)
    roi[3:5, 3:5] = True  # pixels 12..20, a cell is 4 pixels
    out = np.asarray(paste_outside_roi(source, edited, roi, 4))[..., 0]
    assert (out[8:24, 8:24] == 255).all()  # the RoI and one cell around it: the edit
    assert (out[:4] == 0).all() and (out[:, 28:] == 0).all()  # beyond the feather: the source
