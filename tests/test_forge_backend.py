"""The Forge backend against the ldm backend, on the same UNet and the same sampler step.

Forge is not installed in CI, so its side is driven here the way Forge drives it: a ``UnetPatcher``
clone carrying ``patches_replace`` and a ``model_function_wrapper``; each transformer block projects
``q, k, v`` and calls the replacement with its ``transformer_options`` (``block``, ``block_index``,
``n_heads``, ``cond_or_uncond``), as ``backend/nn/unet.py`` does; the sampler batches chunks with uncond
first (``calc_cond_uncond_batch``). Both backends must give the same noise predictions. The e2e tests
run the real Forge.
"""

import contextlib
import copy
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("ldm.modules.diffusionmodules.openaimodel",
                    reason="stable-diffusion-sdkit (the ldm package) is not installed")

from lib_regedit.attention.call import RowLayout  # noqa: E402
from lib_regedit.backends import forge_backend, ldm_backend  # noqa: E402
from lib_regedit.documents import parse_region_document  # noqa: E402
from lib_regedit.webui.session import WebUISession  # noqa: E402
from test_ldm_backend import DOC, ENCODE, cfg_step, make_unet  # noqa: E402

COND, UNCOND = 0, 1


class UnetPatcher:
    """The part of Forge's ``backend.patcher.unet.UnetPatcher`` the backend uses."""

    def __init__(self, diffusion_model, model_options=None):
        self.model = SimpleNamespace(diffusion_model=diffusion_model)
        self.model_options = model_options if model_options is not None else {"transformer_options": {}}

    def clone(self):
        return UnetPatcher(self.model.diffusion_model, copy.deepcopy(self.model_options))

    def set_model_patch_replace(self, patch, name, block_name, number, transformer_index=None):
        options = self.model_options.setdefault("transformer_options", {})
        options.setdefault("patches_replace", {}).setdefault(name, {})[(block_name, number, transformer_index)] = patch

    def set_model_unet_function_wrapper(self, wrapper):
        self.model_options["model_function_wrapper"] = wrapper


@contextlib.contextmanager
def forge_blocks(unet, model_options, transformer_options):
    """Each block's attention goes through its registered replacement as Forge's block calls it."""
    replace = model_options.get("transformer_options", {}).get("patches_replace", {})
    patched = []
    for key, (_, block) in forge_backend.transformer_blocks(unet).items():
        for target in ("attn1", "attn2"):
            fn = replace.get(target, {}).get(key)
            if fn is None:
                continue
            attn = getattr(block, target)

            def forward(x, context=None, mask=None, attn=attn, fn=fn, key=key):
                ctx = x if context is None else context
                opts = dict(transformer_options, block=key[:2], block_index=key[2], n_heads=attn.heads)
                return attn.to_out(fn(attn.to_q(x), attn.to_k(ctx), attn.to_v(ctx), opts))

            attn.forward = forward
            patched.append(attn)
    try:
        yield
    finally:
        for attn in patched:
            del attn.forward


def forge_step(patcher, session, x, cond, uncond, step, separate=False):
    """One Forge CFG evaluation: on_cfg_denoiser, then the UNet call(s), uncond chunk first."""
    batch = x.shape[0]
    session.on_cfg_denoiser(step, 4, cond, uncond)
    unet = patcher.model.diffusion_model
    calls = [[(uncond, UNCOND)], [(cond, COND)]] if separate else [[(uncond, UNCOND), (cond, COND)]]
    results = {}
    for chunks in calls:
        marks = [m for _, m in chunks]
        x_in = torch.cat([x] * len(chunks))
        t = torch.full((x_in.shape[0],), 500)
        options = dict(patcher.model_options.get("transformer_options", {}), cond_or_uncond=marks,
                       sigmas=torch.full((batch,), 1.0))

        def apply_model(input, timestep, c_crossattn, transformer_options):
            with forge_blocks(unet, patcher.model_options, transformer_options):
                return unet(input, timestep, context=c_crossattn)

        args = {"input": x_in, "timestep": t, "cond_or_uncond": marks,
                "c": {"c_crossattn": torch.cat([c for c, _ in chunks]), "transformer_options": options}}
        wrapper = patcher.model_options.get("model_function_wrapper")
        with torch.no_grad():
            out = wrapper(apply_model, args) if wrapper else apply_model(x_in, t, **args["c"])
        for (_, mark), part in zip(chunks, out.chunk(len(chunks))):
            results[mark] = part
    return results[COND], results[UNCOND]


@pytest.fixture(scope="module")
def unet():
    return make_unet()


def test_rows_are_read_from_forges_chunk_marks():
    assert forge_backend.rows_of([UNCOND, COND], 6) == RowLayout((3, 4, 5), (0, 1, 2))
    assert forge_backend.rows_of([COND], 2) == RowLayout((0, 1), ())
    assert forge_backend.rows_of([UNCOND], 2) == RowLayout((), (0, 1))
    assert forge_backend.rows_of(None, 2) == RowLayout((0, 1), ())


def test_one_row_selection_for_every_backends_reruns():
    """Forge's wrapper and the ldm/diffusers latent hook select a rerun's rows with the same function:
    every tensor with the call's batch first, at any depth of dicts, lists and tuples; the rest as is."""
    from lib_regedit.backends import unet_hooks

    assert forge_backend.select_rows is unet_hooks.select_rows
    batch = torch.arange(4.0)[:, None]
    shared, t = torch.ones(3, 2), torch.tensor(5)
    value = {"x": batch, "nested": {"y": [batch, (batch, shared)]}, "t": t, "n": 7, "s": "text"}
    out = unet_hooks.select_rows(value, [3, 1], 4)
    assert torch.equal(out["x"], torch.tensor([[3.0], [1.0]]))
    assert isinstance(out["nested"]["y"], list) and isinstance(out["nested"]["y"][1], tuple)
    assert torch.equal(out["nested"]["y"][1][0], out["x"]) and out["nested"]["y"][1][1] is shared
    assert out["t"] is t and out["n"] == 7 and out["s"] == "text"


def test_a_callers_fixed_rows_come_before_forges_marks():
    """An inversion builds every UNet call itself and says which rows are which (``fixed_rows``); the
    Forge wrapper's marks (every row conditional, as it calls the model) must not override them."""
    from lib_regedit.attention.controller import Controller, GenerationState

    controller = Controller([], GenerationState())
    controller.begin_unet_call(None, 2, (8, 8), rows=RowLayout((0, 1), ()))
    assert controller.state.rows == RowLayout((0, 1), ())
    controller.state.fixed_rows = RowLayout((1,), (0,))
    controller.begin_unet_call(None, 2, (8, 8), rows=RowLayout((0, 1), ()))
    assert controller.state.rows == RowLayout((1,), (0,))


def test_transformer_blocks_are_keyed_as_forge_registers_them(unet):
    blocks = forge_backend.transformer_blocks(unet)
    assert ("input", 1, 0) in blocks and ("middle", 0, 0) in blocks and ("output", 3, 0) in blocks
    name, block = blocks[("input", 1, 0)]
    assert name == "input_blocks.1.1.transformer_blocks.0" and type(block).__name__ == "BasicTransformerBlock"


@pytest.mark.parametrize("fusion_mode", ["attention", "latent"])
@pytest.mark.parametrize("separate", [False, True])
def test_forge_gives_what_the_ldm_backend_gives(unet, fusion_mode, separate):
    doc = parse_region_document(dict(DOC.to_dict(), mode=fusion_mode))
    torch.manual_seed(1)
    x = torch.randn(3, 4, 16, 16)
    cond, uncond = ENCODE("whole").expand(3, -1, -1), ENCODE("neg").expand(3, -1, -1)
    plain_c, _ = cfg_step(unet, None, x, cond, uncond, 0)
    ldm_session = WebUISession(doc, ENCODE)
    with ldm_backend.attach(unet, *ldm_session.effects()):
        ldm_c, ldm_u = cfg_step(unet, ldm_session, x, cond, uncond, 1)
    forge_session = WebUISession(doc, ENCODE)
    original = UnetPatcher(unet)
    patched = forge_backend.patched(original, *forge_session.effects())
    assert patched is not original and original.model_options == {"transformer_options": {}}  # Forge's own untouched
    forge_c, forge_u = forge_step(patched, forge_session, x, cond, uncond, 1, separate)
    assert (ldm_c - plain_c).abs().mean() > 1e-3
    torch.testing.assert_close(forge_c, ldm_c, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(forge_u, ldm_u, atol=1e-4, rtol=1e-4)
    assert not any("forward" in m.__dict__ for m in unet.modules())  # the module instances were never touched


def test_another_extensions_wrapper_still_runs(unet):
    seen = []

    def other(apply_model, args):
        seen.append(args["cond_or_uncond"])
        return apply_model(args["input"], args["timestep"], **args["c"])

    x = torch.randn(1, 4, 16, 16)
    for mode in ("attention", "latent"):
        session = WebUISession(parse_region_document(dict(DOC.to_dict(), mode=mode)), ENCODE)
        patched = forge_backend.patched(UnetPatcher(unet, {"transformer_options": {}, "model_function_wrapper": other}),
                                         *session.effects())
        seen.clear()
        forge_step(patched, session, x, ENCODE("whole"), ENCODE("neg"), 0)
        assert seen[0] == [UNCOND, COND] and len(seen) > 1 if mode == "latent" else seen == [[UNCOND, COND]]


def test_idle_replacement_is_forges_own_attention(unet):
    calls = []

    def forge_attention(q, k, v, heads):
        calls.append(heads)
        return forge_backend._plain(q, k, v, heads)

    session = WebUISession(DOC, ENCODE)
    session._prepare()
    session.controller.enabled = False  # no effect wants a call
    patched = forge_backend.patched(UnetPatcher(unet), session.controller, None, forge_attention)
    x = torch.randn(1, 4, 16, 16)
    forge_step(patched, session, x, ENCODE("whole"), ENCODE("neg"), 0)
    assert calls and set(calls) == {2}


def test_an_edit_pair_gives_what_the_ldm_backend_gives(unet):
    """An edit pair (MRGD): per image a source row and a target row, prompt-to-prompt per region."""
    from lib_regedit.editing.webui_pair import WebUIPairSession

    doc = parse_region_document({"prompt": "whole", "negative_prompt": "neg", "regions": [
        {"x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "a red circle"},
        {"x": 0.5, "y": 0.25, "w": 0.5, "h": 0.5, "prompt": "a blue square", "edit": "change",
         "target_prompt": "a green square"}]})
    torch.manual_seed(2)
    x = torch.randn(2, 4, 16, 16)  # one image: (source, target)
    cond = torch.cat([ENCODE("whole"), ENCODE("whole")])
    uncond = ENCODE("neg").expand(2, -1, -1)

    def session():
        return WebUIPairSession(doc, ENCODE, None, 1, source_prompt="whole", target_prompt="whole")

    ldm_session = session()
    with ldm_backend.attach(unet, *ldm_session.effects()):
        ldm_c, ldm_u = cfg_step(unet, ldm_session, x, cond, uncond, 1)
    forge_session = session()
    forge_c, forge_u = forge_step(forge_backend.patched(UnetPatcher(unet), *forge_session.effects()), forge_session, x, cond, uncond, 1)
    assert (ldm_c[0] - ldm_c[1]).abs().mean() > 1e-4  # the target differs from the source
    torch.testing.assert_close(forge_c, ldm_c, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(forge_u, ldm_u, atol=1e-4, rtol=1e-4)


def test_a_drag_gives_what_the_ldm_backend_gives(unet):
    """RegionDrag's batch with its mutual self-attention given to a Forge patcher clone (``attach``)."""
    from lib_regedit.documents import parse_drag_document
    from lib_regedit.drag import batch

    square = [[0.1, 0.1], [0.45, 0.1], [0.45, 0.45], [0.1, 0.45]]
    doc = parse_drag_document({"pairs": [{"handle": {"type": "polygon", "points": square},
                                          "target": {"type": "polygon", "points": [[x + 0.5, y + 0.5] for x, y in square]}}]})
    alphas = torch.cumprod(1 - torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2, 0)
    context = ENCODE("a landscape")
    init = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))

    def ldm_eps(row, x, t):
        with torch.no_grad():
            return unet(x, torch.full((x.shape[0],), int(t)), context)

    ldm = batch.drag_batch(ldm_eps, init, [1], doc, 6, alphas, lambda c: ldm_backend.attached(unet, c))
    held = {}

    @contextlib.contextmanager
    def attach(controller):
        held["unet"] = forge_backend.patched(UnetPatcher(unet), controller)
        yield

    def forge_eps(row, x, t):  # as forge_model.noise_prediction calls the clone: one conditional chunk
        patcher = held["unet"]
        options = dict(patcher.model_options["transformer_options"], cond_or_uncond=[COND])

        def apply_model(input, timestep, c_crossattn, transformer_options):
            with forge_blocks(unet, patcher.model_options, transformer_options):
                return unet(input, timestep, context=c_crossattn)

        args = {"input": x, "timestep": torch.full((x.shape[0],), int(t)), "cond_or_uncond": [COND],
                "c": {"c_crossattn": context.expand(x.shape[0], -1, -1), "transformer_options": options}}
        with torch.no_grad():
            return patcher.model_options["model_function_wrapper"](apply_model, args)

    forge = batch.drag_batch(forge_eps, init, [1], doc, 6, alphas, attach)
    torch.testing.assert_close(forge, ldm, atol=1e-4, rtol=1e-4)
    plain = batch.drag_batch(forge_eps, init, [1], parse_drag_document(
        dict(doc.to_dict(), mutual_self_attention=False)), 6, alphas, attach)
    assert (plain - forge).abs().mean() > 1e-4  # the mutual self-attention did act
