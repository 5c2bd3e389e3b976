"""ComfyUI's backend against the Forge backend, on the same UNet and the same sampler step.

ComfyUI is not installed in CI, so its side is driven here the way ComfyUI drives it: a ``ModelPatcher``
clone carrying ``patches_replace``, a ``model_function_wrapper`` and an ``outer_sample`` wrapper; the
sampler puts its schedule into ``transformer_options["sample_sigmas"]`` and calls the model with the
sigma as its timestep, uncond and cond chunks marked in ``cond_or_uncond``. ``tests/e2e_comfyui`` runs
the real ComfyUI.
"""

import copy

import pytest
import torch

pytest.importorskip("ldm.modules.diffusionmodules.openaimodel",
                    reason="stable-diffusion-sdkit (the ldm package) is not installed")

from lib_regedit.attention.controller import Controller, GenerationState  # noqa: E402
from lib_regedit.backends import comfy_backend, forge_backend  # noqa: E402
from lib_regedit.documents import parse_region_document  # noqa: E402
from lib_regedit.regions.prompting import build_effects  # noqa: E402
from lib_regedit.webui.session import WebUISession  # noqa: E402
from test_forge_backend import COND, UNCOND, UnetPatcher, forge_blocks, forge_step  # noqa: E402
from test_ldm_backend import DOC, ENCODE, make_unet  # noqa: E402

SIGMAS = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0])  # a 4-step schedule


class ModelPatcher(UnetPatcher):
    """Forge's patcher plus what ComfyUI's ``ModelPatcher`` adds: sampling wrappers."""

    def __init__(self, diffusion_model, model_options=None, wrappers=None):
        super().__init__(diffusion_model, model_options)
        self.wrappers = wrappers if wrappers is not None else {}

    def clone(self):
        return ModelPatcher(self.model.diffusion_model, copy.deepcopy(self.model_options),
                            {k: {k1: list(w) for k1, w in v.items()} for k, v in self.wrappers.items()})

    def add_wrapper_with_key(self, wrapper_type, key, wrapper):
        self.wrappers.setdefault(wrapper_type, {}).setdefault(key, []).append(wrapper)


def sample(patcher, body):
    """One ComfyUI sampling call: the ``outer_sample`` wrappers around ``body()``."""
    def run(wrappers):
        if not wrappers:
            return body()
        return wrappers[0](lambda *a, **k: run(wrappers[1:]))
    return run([w for ws in patcher.wrappers.get(comfy_backend.OUTER_SAMPLE, {}).values() for w in ws])


def comfy_step(patcher, x, cond, uncond, sigma):
    """One CFG evaluation as ComfyUI's ``calc_cond_batch`` makes it: one call, cond and uncond chunks."""
    unet = patcher.model.diffusion_model
    marks = [COND, UNCOND]
    x_in = torch.cat([x, x])
    options = dict(patcher.model_options.get("transformer_options", {}), cond_or_uncond=marks,
                   sigmas=torch.full((x_in.shape[0],), sigma), sample_sigmas=SIGMAS)

    def apply_model(input, timestep, c_crossattn, transformer_options):
        with forge_blocks(unet, patcher.model_options, transformer_options):
            return unet(input, torch.full((input.shape[0],), 500), context=c_crossattn)

    args = {"input": x_in, "timestep": torch.full((x_in.shape[0],), sigma), "cond_or_uncond": marks,
            "c": {"c_crossattn": torch.cat([cond, uncond]), "transformer_options": options}}
    with torch.no_grad():
        out = patcher.model_options["model_function_wrapper"](apply_model, args)
    return out.chunk(2)


def build_for(doc):
    def build():
        built = build_effects(doc, ENCODE)
        state = GenerationState()
        return Controller(built.effects, state), (built.fusion if doc.mode == "latent" else None)
    return build


@pytest.fixture(scope="module")
def unet():
    return make_unet()


def test_the_step_is_read_from_the_samplers_schedule():
    assert comfy_backend.step_of(torch.tensor([4.0, 4.0]), SIGMAS) == (0, 4)
    assert comfy_backend.step_of(torch.tensor([1.0]), SIGMAS) == (3, 4)
    assert comfy_backend.step_of(2.5, SIGMAS) == (1, 4)  # a second-order sampler's extra call counts as its step
    assert comfy_backend.step_of(0.5, None) == (0, 1)


@pytest.mark.parametrize("fusion_mode", ["attention", "latent"])
def test_comfyui_gives_what_forge_gives(unet, fusion_mode):
    doc = parse_region_document(dict(DOC.to_dict(), mode=fusion_mode))
    torch.manual_seed(1)
    x = torch.randn(2, 4, 16, 16)
    cond, uncond = ENCODE("whole").expand(2, -1, -1), ENCODE("neg").expand(2, -1, -1)
    session = WebUISession(doc, ENCODE)
    forge_c, forge_u = forge_step(forge_backend.patched(UnetPatcher(unet), *session.effects()), session, x, cond,
                                  uncond, 1)
    original = ModelPatcher(unet)
    patched = comfy_backend.patched(original, build_for(doc), latent_mode=fusion_mode == "latent")
    assert original.model_options == {"transformer_options": {}} and original.wrappers == {}  # the user's MODEL
    comfy_c, comfy_u = sample(patched, lambda: comfy_step(patched, x, cond, uncond, 3.0))
    torch.testing.assert_close(comfy_c, forge_c, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(comfy_u, forge_u, atol=1e-4, rtol=1e-4)


def test_each_sampling_call_starts_fresh_and_nothing_acts_outside_one(unet):
    built = []

    def build():
        controller, fusion = build_for(DOC)()
        built.append(controller)
        return controller, fusion

    torch.manual_seed(2)
    x = torch.randn(1, 4, 16, 16)
    cond, uncond = ENCODE("whole"), ENCODE("neg")
    patched = comfy_backend.patched(ModelPatcher(unet), build)
    first = sample(patched, lambda: comfy_step(patched, x, cond, uncond, 3.0))
    second = sample(patched, lambda: comfy_step(patched, x, cond, uncond, 3.0))
    assert len(built) == 2 and built[0] is not built[1]
    torch.testing.assert_close(first[0], second[0], atol=0, rtol=0)
    outside = comfy_step(patched, x, cond, uncond, 3.0)  # a call that no sampling call opened: the plain model
    with torch.no_grad():
        bare = patched.model.diffusion_model(torch.cat([x, x]), torch.full((2,), 500), context=torch.cat([cond, uncond]))
    torch.testing.assert_close(torch.cat(outside), bare, atol=1e-5, rtol=1e-5)
    assert (first[0] - outside[0]).abs().mean() > 1e-3  # inside a sampling call the regions act


def test_a_failed_sampling_call_leaves_no_controller(unet):
    patched = comfy_backend.patched(ModelPatcher(unet), build_for(DOC))
    assert patched.model_options["transformer_options"]["patches_replace"]["attn2"]  # patched, and idle

    def fail():
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        sample(patched, fail)
    x = torch.randn(1, 4, 16, 16)
    outside = comfy_step(patched, x, ENCODE("whole"), ENCODE("neg"), 3.0)
    with torch.no_grad():
        bare = patched.model.diffusion_model(torch.cat([x, x]), torch.full((2,), 500),
                                             context=torch.cat([ENCODE("whole"), ENCODE("neg")]))
    torch.testing.assert_close(torch.cat(outside), bare, atol=1e-5, rtol=1e-5)


# ---- the ComfyUI adapter's pieces that need no ComfyUI -----------------------------------------------

def test_the_regions_nodes_choices_override_the_document():
    from lib_regedit.comfy.regions import FROM_DOCUMENT, region_document

    doc = '{"mode": "latent", "regions": [{"x": 0, "y": 0, "w": 0.5, "h": 1, "prompt": "a red circle"}]}'
    kept = region_document(doc)
    assert kept.mode == "latent" and not kept.kssa.enabled
    changed = region_document(doc, mode="attention", background="empty", kssa="on")
    assert changed.mode == "attention" and changed.background_prompt == "empty" and changed.kssa.enabled
    assert region_document(doc, mode=FROM_DOCUMENT).mode == "latent"


@pytest.mark.parametrize("text,field", [
    ('{"regions": []}', "regions"),
    ("", "regions"),
    ('{"regions": [{"x": 0, "y": 0, "w": 0.5, "h": 1, "prompt": "a", "edit": "remove"}]}', "regions.regions"),
    ('{"regions": [{"x": 0, "y": 0, "w": 1.5, "h": 1, "prompt": "a"}]}', "regions[0].w"),
])
def test_the_regions_node_refuses_what_it_cannot_run(text, field):
    from lib_regedit.comfy.regions import region_document
    from lib_regedit.errors import RegEditError

    with pytest.raises(RegEditError) as caught:
        region_document(text)
    assert caught.value.field == field and caught.value.fix


def test_clip_words_are_comfyuis_token_positions_without_special_tokens():
    from types import SimpleNamespace

    from lib_regedit.backends.comfy_checkpoint import clip_words

    vocab = {49406: "<|startoftext|>", 320: "a</w>", 736: "red</w>", 7117: "circle</w>", 49407: "<|endoftext|>"}
    hf = SimpleNamespace(convert_ids_to_tokens=lambda i: vocab[i])
    tokenizer = SimpleNamespace(clip_l=SimpleNamespace(tokenizer=hf, start_token=49406, end_token=49407,
                                                       pad_token=49407))
    chunk = [(49406, 1.0), (320, 1.0), (736, 1.0), (7117, 1.0)] + [(49407, 1.0)] * 73
    clip = SimpleNamespace(tokenize=lambda text: {"l": [chunk, chunk]}, tokenizer=tokenizer)
    assert clip_words(clip, "a red circle") == [(1, "a"), (2, "red"), (3, "circle"), (78, "a"), (79, "red"),
                                                (80, "circle")]


def test_the_example_workflows_are_what_their_script_writes():
    import importlib.util
    import json
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "comfyui" / "workflows"
    spec = importlib.util.spec_from_file_location("make_workflows", folder / "make_workflows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    nodes_py = (folder.parent / "nodes.py").read_text()
    for name, workflow in module.workflows().items():
        assert json.loads((folder / f"{name}.json").read_text()) == workflow, \
            f"{name}.json is stale: run python comfyui/workflows/make_workflows.py"
        for node in workflow.values():
            kind = node["class_type"]
            assert not kind.startswith("RegEdit") or f'"{kind}":' in nodes_py, f"{name}: no node {kind}"
            for value in node["inputs"].values():
                if isinstance(value, list):
                    assert value[0] in workflow, f"{name}: {kind} links to a missing node {value[0]}"
