"""RegEdit's nodes in a real ComfyUI: each node on SD 1.5 (and SDXL with ``REGEDIT_E2E_COMFYUI_SDXL=1``),
two samplers and a batch of 2, bad documents through ComfyUI's own error, the shared model left as it
was, and the example workflows on the bundled ShapesWorld models."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from comfy_client import SD15, SD15_IP2P, SDXL, WITH_SDXL, max_diff, plain_workflow


NODES = ("RegEditRegions", "RegEditLayoutInit", "RegEditDrag", "RegEditPictureEdit", "RegEditEditPair",
         "RegEditLime", "RegEditShapesWorldLoader", "RegEditEmptyLatent")
WORKFLOWS = Path(__file__).resolve().parents[2] / "comfyui" / "workflows"
TWO_BOXES = {"regions": [{"x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "a red circle"},
                         {"x": 0.5, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "a blue square"}]}
PROMPT = "a red circle and a blue square"


def regions_workflow(document=TWO_BOXES, *, ckpt: str = SD15, mode: str = "from the document",
                     kssa: str = "from the document", background: str = "from the document", **plain) -> dict:
    """The plain workflow with the Regions node (10) between the loader and the KSampler."""
    wf = plain_workflow(ckpt, prompt=plain.pop("prompt", PROMPT), **plain)
    wf["10"] = {"class_type": "RegEditRegions", "inputs": {
        "model": ["1", 0], "clip": ["1", 1], "regions": document if isinstance(document, str) else json.dumps(document),
        "mode": mode, "background_prompt": background, "kssa": kssa}}
    wf["5"]["inputs"]["model"] = ["10", 0]
    return wf


def picture_node(class_type: str, **inputs) -> dict:
    """A node on the plain workflow's loader and decoded picture (node 6)."""
    return {"class_type": class_type, "inputs": dict({"model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2],
                                                      "image": ["6", 0]}, **inputs)}


def saved(wf: dict, node: str, output: int = 0, prefix: str = "regedit_e2e") -> str:
    key = f"9{len(wf)}"
    wf[key] = {"class_type": "SaveImage", "inputs": {"images": [node, output], "filename_prefix": prefix}}
    return key


def test_nodes_are_registered_with_their_web_directory(comfy):
    info = comfy.object_info()
    for node in NODES:
        assert node in info, f"{node} missing from /object_info: {comfy.log_tail(2000)}"
        assert info[node]["category"] == "RegEdit"
    extensions = comfy.get("/extensions").json()
    assert any(e.endswith("regedit_regions.js") for e in extensions), extensions


def test_regions_change_the_image_and_repeat(comfy, assert_plain_unchanged):
    plain = comfy.images(plain_workflow(prompt=PROMPT))[0]
    first = comfy.images(regions_workflow())[0]
    again = comfy.images(regions_workflow())[0]
    assert max_diff(plain, first) > 10, "the regions changed nothing"
    assert np.array_equal(first, again), "the same regions and seed gave another image"
    assert_plain_unchanged("region prompts")


def test_regions_repeating_the_whole_prompt_reproduce_the_plain_image(comfy):
    whole = {"regions": [{"x": 0, "y": 0, "w": 1, "h": 1, "prompt": PROMPT}], "background_prompt": "whole"}
    plain = comfy.images(plain_workflow(prompt=PROMPT))[0]
    same = comfy.images(regions_workflow(whole))[0]
    assert max_diff(plain, same) <= 2, "one region holding the whole prompt should be the plain image"


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m"])
def test_two_samplers_and_a_batch_of_two(comfy, sampler):
    plain = comfy.images(plain_workflow(prompt=PROMPT, sampler=sampler, batch=2))
    got = comfy.images(regions_workflow(sampler=sampler, batch=2))
    assert len(got) == 2 and max_diff(got[0], got[1]) > 0
    assert all(max_diff(a, b) > 10 for a, b in zip(plain, got))
    assert all(np.array_equal(a, b) for a, b in zip(got, comfy.images(regions_workflow(sampler=sampler, batch=2))))


@pytest.mark.parametrize("mode,kssa", [("latent", "from the document"), ("attention", "on")])
def test_latent_mode_and_kssa(comfy, mode, kssa, assert_plain_unchanged):
    plain = comfy.images(plain_workflow(prompt=PROMPT))[0]
    got = comfy.images(regions_workflow(mode=mode, kssa=kssa))[0]
    assert max_diff(plain, got) > 10
    assert_plain_unchanged(f"{mode} mode, KSSA {kssa}")


@pytest.mark.parametrize("document,field", [
    ('{"regions": []}', "regions"),
    ("not json", "regions"),
    ('{"regions": [{"x": 2, "y": 0, "w": 0.5, "h": 1, "prompt": "a"}]}', "regions[0].x"),
    ('{"regions": [{"x": 0, "y": 0, "w": 0.5, "h": 1, "prompt": "a", "edit": "remove"}]}', "regions.regions"),
])
def test_bad_documents_give_comfyuis_error_with_our_message(comfy, document, field, assert_plain_unchanged):
    err = comfy.error_of(regions_workflow(document))
    assert err.kind == "execution"
    assert f"RegEdit: {field}" in err.text() and "Fix:" in err.text(), err.text()
    assert comfy.alive()
    assert_plain_unchanged(f"a bad document ({field})")


def test_layout_init_starts_a_sampler_that_adds_no_noise(comfy):
    wf = regions_workflow()
    wf["11"] = {"class_type": "RegEditLayoutInit", "inputs": {
        "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "regions": json.dumps(TWO_BOXES), "width": 64,
        "height": 64, "batch_size": 2, "seed": 3, "steps": 3}}
    wf["5"] = {"class_type": "KSamplerAdvanced", "inputs": {
        "model": ["10", 0], "add_noise": "disable", "noise_seed": 3, "steps": 3, "cfg": 7.0, "sampler_name": "euler",
        "scheduler": "normal", "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["11", 0],
        "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable"}}
    got = comfy.images(wf)
    assert len(got) == 2 and max_diff(got[0], got[1]) > 0 and got[0].std() > 1
    again = comfy.images(wf)
    assert all(np.array_equal(a, b) for a, b in zip(got, again))


def test_edit_pair_keeps_the_rest(comfy, assert_plain_unchanged):
    edit = {"regions": [TWO_BOXES["regions"][0], dict(TWO_BOXES["regions"][1], edit="remove")]}
    wf = plain_workflow(prompt=PROMPT)
    wf["10"] = {"class_type": "RegEditEditPair", "inputs": {
        "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "regions": json.dumps(edit), "prompt": PROMPT,
        "negative_prompt": "", "width": 64, "height": 64, "pairs": 2, "seed": 5, "steps": 3, "cfg": 7.0,
        "sampler_name": "euler", "scheduler": "normal"}}
    for node in ("5", "6", "7"):
        del wf[node]
    saved(wf, "10", 1, "pair_source")
    saved(wf, "10", 0, "pair_target")
    sources_then_targets = comfy.images(wf)
    assert len(sources_then_targets) == 4
    for source, target in zip(sources_then_targets[:2], sources_then_targets[2:]):
        assert max_diff(source[:, 8:24], target[:, 8:24]) <= 2, "the kept box changed"
        assert max_diff(source[:, 40:], target[:, 40:]) > 0, "the removed box did not change"
    assert_plain_unchanged("an edit pair")


def test_an_added_region_starts_from_its_own_sketch_from_version_6(comfy):
    """Version 6 starts an added region from its sketch with less of the seed's noise, version 5 as the
    rest of the target: the added box differs, the kept box is the source's either way."""
    add = {"regions": [TWO_BOXES["regions"][0], dict(TWO_BOXES["regions"][1], edit="add")]}
    targets = {}
    for version in (5, 6):
        wf = plain_workflow(prompt="a red circle")
        wf["10"] = {"class_type": "RegEditEditPair", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "regions": json.dumps(dict(add, version=version)),
            "prompt": "a red circle", "negative_prompt": "", "width": 64, "height": 64, "pairs": 1, "seed": 5,
            "steps": 3, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal"}}
        for node in ("5", "6", "7"):
            del wf[node]
        saved(wf, "10", 0, "pair_target")
        (targets[version],) = comfy.images(wf)
    assert max_diff(targets[5][:, 40:], targets[6][:, 40:]) > 0, "the added box started as before"
    assert max_diff(targets[5][:, 8:24], targets[6][:, 8:24]) <= 2, "the kept box changed"


@pytest.mark.parametrize("inversion", ["negative", "ddim"])
def test_picture_edit(comfy, inversion):
    change = {"regions": [dict(TWO_BOXES["regions"][0], edit="change", target_prompt="a green circle"),
                          TWO_BOXES["regions"][1]]}
    wf = plain_workflow(prompt=PROMPT)
    wf["10"] = picture_node("RegEditPictureEdit", regions=json.dumps(change), inversion=inversion,
                            negative_prompt="", seed=1, steps=3, cfg=7.0)
    saved(wf, "10", 0, "picture_edit")
    picture, edit = comfy.images(wf)
    assert max_diff(picture[:, :24], edit[:, :24]) > 0, "the changed box did not change"
    assert max_diff(picture[:, 44:], edit[:, 44:]) <= 2, "the rest of the picture changed"


def test_drag_moves_the_handle_and_keeps_the_rest(comfy):
    move = {"pairs": [{"handle": {"type": "polygon", "points": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]},
                       "target": {"type": "polygon", "points": [[0.55, 0.55], [0.85, 0.55], [0.85, 0.85],
                                                                [0.55, 0.85]]}}]}
    wf = plain_workflow(prompt=PROMPT, batch=2)
    wf["10"] = picture_node("RegEditDrag", drag=json.dumps(move), prompt="", seed=1, steps=3)
    saved(wf, "10")
    images = comfy.images(wf)
    assert len(images) == 4
    for picture, dragged in zip(images[:2], images[2:]):
        assert max_diff(picture[48:, :16], dragged[48:, :16]) <= 2, "outside handle and target changed"
        assert max_diff(picture[36:54, 36:54], dragged[36:54, 36:54]) > 0, "the target did not change"


def test_bad_drag_document(comfy):
    wf = plain_workflow(prompt=PROMPT)
    wf["10"] = picture_node("RegEditDrag", drag='{"pairs": []}', prompt="", seed=1, steps=3)
    saved(wf, "10")
    err = comfy.error_of(wf)
    assert "RegEdit: drag" in err.text() and "Fix:" in err.text(), err.text()
    assert comfy.alive()


@pytest.mark.parametrize("ckpt,denoise,lime", [(SD15_IP2P, 1.0, "{}"), (SD15, 0.75, '{"roi": [{"x": 0, "y": 0, '
                                                                                    '"w": 0.5, "h": 0.5}]}')])
def test_lime(comfy, ckpt, denoise, lime):
    wf = plain_workflow(prompt=PROMPT)
    wf["11"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}}
    wf["10"] = {"class_type": "RegEditLime", "inputs": {
        "model": ["11", 0], "clip": ["11", 1], "vae": ["11", 2], "image": ["6", 0],
        "prompt": "make the red circle green", "negative_prompt": "", "lime": lime, "seed": 1, "steps": 4,
        "cfg": 7.0, "denoise": denoise, "sampler_name": "euler", "scheduler": "normal"}}
    saved(wf, "10", 0, "lime")
    wf["12"] = {"class_type": "MaskToImage", "inputs": {"mask": ["10", 1]}}
    saved(wf, "12", 0, "lime_region")
    picture, edited, region = comfy.images(wf)
    inside = region[..., 0] > 127
    assert 0 < inside.mean() < 1, "LIME's region is empty or the whole picture"
    outside = ~_grown(inside, 6)  # the paste's margin and feather around the region
    assert np.abs(picture.astype(int) - edited.astype(int)).max(-1)[outside].max() <= 2, "outside the region changed"


def _grown(mask, r):
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out


@pytest.mark.skipif(not WITH_SDXL, reason="REGEDIT_E2E_COMFYUI_SDXL=1 writes and tests an SDXL checkpoint")
def test_regions_on_sdxl(comfy):
    plain = comfy.images(plain_workflow(SDXL, prompt=PROMPT))[0]
    got = comfy.images(regions_workflow(ckpt=SDXL))[0]
    assert max_diff(plain, got) > 10
    assert np.array_equal(got, comfy.images(regions_workflow(ckpt=SDXL))[0])


@pytest.mark.parametrize("name", sorted(p.stem for p in WORKFLOWS.glob("*.json")))
def test_example_workflows_run_on_shapesworld(comfy, name):
    wf = json.loads((WORKFLOWS / f"{name}.json").read_text())
    res = comfy.run(copy.deepcopy(wf), timeout=900)
    assert res.images, f"{name} saved no image"
    assert all(img.shape[:2] == (64, 64) and img.std() > 1 for img in res.images), name
    comfy.log(f"workflow {name}: {res.seconds:.1f}s, {len(res.images)} images")


@pytest.mark.skipif(not WITH_SDXL, reason="REGEDIT_E2E_COMFYUI_SDXL=1 writes and tests an SDXL checkpoint")
def test_every_image_node_on_sdxl(comfy):
    """Layout init, an edit pair, a picture's edit, a drag and LIME (img2img: no SDXL instruct-pix2pix
    checkpoint here) on the SDXL checkpoint, in one workflow."""
    wf = regions_workflow(ckpt=SDXL)
    common = {"model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2]}
    wf["11"] = {"class_type": "RegEditLayoutInit", "inputs": dict(common, regions=json.dumps(TWO_BOXES), width=64,
                                                                  height=64, batch_size=1, seed=3, steps=3)}
    wf["12"] = {"class_type": "KSamplerAdvanced", "inputs": {
        "model": ["10", 0], "add_noise": "disable", "noise_seed": 3, "steps": 3, "cfg": 7.0, "sampler_name": "euler",
        "scheduler": "normal", "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["11", 0],
        "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable"}}
    wf["13"] = {"class_type": "VAEDecode", "inputs": {"samples": ["12", 0], "vae": ["1", 2]}}
    edit = {"regions": [TWO_BOXES["regions"][0], dict(TWO_BOXES["regions"][1], edit="remove")]}
    wf["14"] = {"class_type": "RegEditEditPair", "inputs": dict(common, regions=json.dumps(edit), prompt=PROMPT,
                negative_prompt="", width=64, height=64, pairs=1, seed=5, steps=3, cfg=7.0, sampler_name="euler",
                scheduler="normal")}
    change = {"regions": [dict(TWO_BOXES["regions"][0], edit="change", target_prompt="a green circle"),
                          TWO_BOXES["regions"][1]]}
    wf["15"] = picture_node("RegEditPictureEdit", regions=json.dumps(change), inversion="negative",
                            negative_prompt="", seed=1, steps=3, cfg=7.0)
    move = {"pairs": [{"handle": {"type": "polygon", "points": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]},
                       "target": {"type": "polygon", "points": [[0.55, 0.55], [0.85, 0.55], [0.85, 0.85],
                                                                [0.55, 0.85]]}}]}
    wf["16"] = picture_node("RegEditDrag", drag=json.dumps(move), prompt="", seed=1, steps=3)
    wf["17"] = picture_node("RegEditLime", prompt="a green circle", negative_prompt="",
                            lime='{"roi": [{"x": 0, "y": 0, "w": 0.5, "h": 0.5}]}', seed=1, steps=3, cfg=7.0,
                            denoise=0.75, sampler_name="euler", scheduler="normal")
    for node, output in (("13", 0), ("14", 0), ("14", 1), ("15", 0), ("16", 0), ("17", 0)):
        saved(wf, node, output)
    images = comfy.images(wf, timeout=1800)
    assert len(images) == 7  # the regions' image first, then each node's
    picture = images[0]
    assert all(img.shape == (64, 64, 3) and img.std() > 1 for img in images)
    target, source = images[2], images[3]
    assert max_diff(source[:, 8:24], target[:, 8:24]) <= 2, "the pair's kept box changed"
    assert max_diff(picture[:, 44:], images[4][:, 44:]) <= 2, "the picture edit changed the rest"
    assert max_diff(picture[48:, :16], images[5][48:, :16]) <= 2, "the drag changed the rest"
