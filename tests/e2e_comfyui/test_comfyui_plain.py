"""ComfyUI itself, with the test checkpoints and no RegEdit node: what every RegEdit test builds on."""

from __future__ import annotations

import numpy as np
import pytest
from comfy_client import SD15, SD15_IP2P, SDXL, WITH_SDXL, ComfyError, max_diff, plain_workflow


def test_server_serves_page_and_nodes(comfy):
    page = comfy.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    info = comfy.object_info()
    for node in ("CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode",
                 "SaveImage", "PreviewImage", "ConditioningSetArea", "ConditioningCombine"):
        assert node in info, f"{node} missing from /object_info"
    ckpts = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    assert SD15 in ckpts and SD15_IP2P in ckpts, f"the work folder's checkpoints are not listed: {ckpts}"
    if WITH_SDXL:  # (a kept work folder may hold it without the flag)
        assert SDXL in ckpts, ckpts
    assert "euler" in info["KSampler"]["input"]["required"]["sampler_name"][0]


def test_plain_sd15_image(comfy):
    res = comfy.run(plain_workflow())
    assert len(res.images) == 1
    img = res.images[0]
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert img.std() > 1, "a flat image: the sampler or the VAE did nothing"
    assert res.pngs[0][:8] == b"\x89PNG\r\n\x1a\n"
    comfy.log(f"plain SD 1.5, 64x64, 3 steps: {res.seconds:.1f}s")


def test_plain_is_reproducible(comfy):
    """The same workflow run again (every node but the loader runs again) gives the same pixels."""
    a = comfy.run(plain_workflow(seed=77))
    b = comfy.run(plain_workflow(seed=77))
    assert a.prompt_id != b.prompt_id
    assert np.array_equal(a.images[0], b.images[0])
    c = comfy.run(plain_workflow(seed=78))
    assert max_diff(a.images[0], c.images[0]) > 0, "the seed changes nothing"


def test_cached_rerun_gives_the_same_image(comfy):
    """Without the nonce ComfyUI answers from its cache: the same files, nothing sampled again."""
    wf = plain_workflow(seed=91, save=False)
    a = comfy.run(wf, rerun=False)
    b = comfy.run(wf, rerun=False)
    assert np.array_equal(a.images[0], b.images[0])


def test_rerun_input_on_a_v3_node(comfy):
    """The rerun input also passes through a node of ComfyUI's newer node API (``io.ComfyNode``)."""
    wf = plain_workflow(seed=77)
    wf["8"] = {"class_type": "LatentMultiply", "inputs": {"samples": ["4", 0], "multiplier": 1.0}}
    wf["5"]["inputs"]["latent_image"] = ["8", 0]
    assert np.array_equal(comfy.images(wf)[0], comfy.images(plain_workflow(seed=77))[0])


def test_batch_of_two(comfy):
    res = comfy.run(plain_workflow(batch=2))
    assert len(res.images) == 2
    assert max_diff(res.images[0], res.images[1]) > 0, "both images of the batch are the same"
    single = comfy.run(plain_workflow())
    # ComfyUI draws the whole batch's noise from one generator: the first image is batch 1's image
    assert max_diff(res.images[0], single.images[0]) <= 1


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m"])
def test_two_samplers(comfy, sampler):
    res = comfy.run(plain_workflow(sampler=sampler, batch=2))
    again = comfy.run(plain_workflow(sampler=sampler, batch=2))
    assert len(res.images) == 2
    assert all(np.array_equal(a, b) for a, b in zip(res.images, again.images))


def test_samplers_differ(comfy):
    a = comfy.run(plain_workflow(sampler="euler"))
    b = comfy.run(plain_workflow(sampler="dpmpp_2m"))
    assert max_diff(a.images[0], b.images[0]) > 0


def test_validation_error_is_reported(comfy):
    wf = plain_workflow()
    wf["1"]["inputs"]["ckpt_name"] = "no-such-checkpoint.safetensors"
    err = comfy.error_of(wf)
    assert err.kind == "validation"
    assert "1" in err.node_errors, err.text()
    assert "no-such-checkpoint" in err.text()


def test_validation_error_names_the_input(comfy):
    wf = plain_workflow()
    wf["5"]["inputs"]["steps"] = 0  # KSampler's steps has min 1
    err = comfy.error_of(wf)
    assert err.kind == "validation" and "steps" in err.text() and "5" in err.node_errors


def test_execution_error_is_reported(comfy):
    """A workflow that validates and fails while running (a checkpoint file that is not one) comes back
    as an execution error with the exception's type and message and the failing node."""
    broken = comfy.models / "checkpoints" / "broken-e2e.safetensors"
    broken.write_bytes(b"this is not a safetensors file")
    try:
        err = comfy.error_of(plain_workflow(broken.name))
    finally:
        broken.unlink()
    assert err.kind == "execution", err.text()
    assert err.details.get("node_type") == "CheckpointLoaderSimple" and err.details.get("node_id") == "1"
    assert err.message and err.details.get("exception_type"), err.details
    comfy.log(f"execution error: {err.details.get('exception_type')}: {err.message}")


def test_server_keeps_serving_after_errors(comfy, comfy_baseline):
    wf = plain_workflow()
    wf["5"]["inputs"]["sampler_name"] = "no_such_sampler"
    assert comfy.error_of(wf).kind == "validation"
    assert all(np.array_equal(a, b) for a, b in zip(comfy.images(plain_workflow()), comfy_baseline["single"]))


@pytest.mark.skipif(not WITH_SDXL, reason="set REGEDIT_E2E_COMFYUI_SDXL=1 to write and test the SDXL checkpoint")
def test_plain_sdxl_image(comfy):
    res = comfy.run(plain_workflow(SDXL))
    again = comfy.run(plain_workflow(SDXL))
    assert res.images[0].shape == (64, 64, 3) and res.images[0].std() > 1
    assert np.array_equal(res.images[0], again.images[0])
    comfy.log(f"plain SDXL (Segmind Vega layout), 64x64, 3 steps: {res.seconds:.1f}s")


def test_error_helper_raises_on_success(comfy):
    with pytest.raises(AssertionError):
        comfy.error_of(plain_workflow())


def test_comfy_error_carries_the_message():
    err = ComfyError("execution", "RegEdit: regions[0].box: ... Fix: ...",
                     {"exception_type": "ValueError", "exception_message": "RegEdit: regions[0].box: ... Fix: ..."})
    assert "Fix:" in err.text() and "ValueError" in err.text()


def test_regedit_pack_is_imported(comfy):
    """ComfyUI imported the linked checkout as a custom-node package (the repository's top-level
    ``__init__.py``) without "IMPORT FAILED", and the nodes it registered carry its module."""
    from comfy_client import LINK_NAME

    lines = [ln for ln in comfy.log_tail(200_000).splitlines() if ln.rstrip().endswith(f"custom_nodes/{LINK_NAME}")]
    assert lines, f"ComfyUI never tried to import custom_nodes/{LINK_NAME}:\n{comfy.log_tail(4000)}"
    assert "IMPORT FAILED" not in lines[-1], f"{lines[-1]}\n{comfy.log_tail(8000)}"
    ours = [name for name, info in comfy.object_info().items()
            if info.get("python_module", "").endswith(LINK_NAME)]
    assert ours, "the package imported but registered no node"
    comfy.log(f"RegEdit nodes registered: {sorted(ours)}")
