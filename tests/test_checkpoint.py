"""The model interface (``lib_regedit/backends/checkpoint.py``) and its implementations: the diffusers
pipeline and AUTOMATIC1111's ``ldm`` model (Forge's runs in ``tests/e2e_forge``). Each answers the same
questions the same way: conditioning, ε, the posterior mean, decode, attach."""

from types import SimpleNamespace

import pytest
import torch

from lib_regedit import api
from lib_regedit.attention.controller import Controller, Effect, GenerationState
from lib_regedit.backends.checkpoint import Conditioning, eps_of, forward_of
from lib_regedit.backends.diffusers_checkpoint import DiffusersCheckpoint
from tiny_models import tiny_sd_pipeline, tiny_sdxl_pipeline


class Counter(Effect):
    """Counts the attention calls it sees."""

    def __init__(self):
        self.calls = 0

    def prepare(self, call):
        self.calls += 1
        return None


@pytest.fixture(scope="module")
def sd():
    pipe = tiny_sd_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_conditioning_rows_and_expand_carry_the_pooled_vector():
    cond = Conditioning(torch.arange(12.).reshape(3, 2, 2), torch.arange(6.).reshape(3, 2))
    picked = cond.rows([2, 0])
    assert torch.equal(picked.context[0], cond.context[2]) and torch.equal(picked.vector[1], cond.vector[0])
    one = Conditioning(cond.context[:1], cond.vector[:1]).expand(4)
    assert one.context.shape == (4, 2, 2) and one.vector.shape == (4, 2)
    assert Conditioning(cond.context[:1]).expand(2).vector is None


def test_diffusers_checkpoint_answers_as_the_pipeline_does(sd):
    checkpoint = DiffusersCheckpoint(sd, 32, 32)
    pixels = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.equal(checkpoint.posterior_mean(pixels), api.clean_latent(sd, pixels))
    cond = checkpoint.conditioning("a red circle")
    assert torch.equal(cond.context, api.encode(sd, "a red circle")[0]) and cond.vector is None
    z = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        direct = sd.unet(z, torch.tensor(500), encoder_hidden_states=cond.context.expand(2, -1, -1)).sample
        assert torch.equal(checkpoint.eps(z, 500, cond), direct)
        assert torch.equal(forward_of(checkpoint, None)(z, 500, cond.context.expand(2, -1, -1), ("c", "c")), direct)
    out = eps_of(checkpoint, cond)(z, 500)
    assert out.device.type == "cpu" and not out.requires_grad and torch.equal(out, direct)
    assert checkpoint.decode(checkpoint.posterior_mean(pixels)).shape == pixels.shape
    assert checkpoint.tokenize("a red circle") == api.tokenize(sd, "a red circle")
    assert not checkpoint.needs_image_conditioning()


def test_diffusers_attach_reaches_every_attention_call_and_is_taken_off(sd):
    checkpoint = DiffusersCheckpoint(sd, 32, 32)
    before = dict(sd.unet.attn_processors)
    counter = Counter()
    cond = checkpoint.conditioning("a dog")
    with torch.no_grad(), checkpoint.attach(Controller([counter], GenerationState(total_steps=1))):
        checkpoint.eps(torch.randn(1, 4, 8, 8), 10, cond)
    assert counter.calls > 0
    assert {k: type(v) for k, v in sd.unet.attn_processors.items()} == {k: type(v) for k, v in before.items()}


def test_sdxl_negative_prompt_follows_the_pipeline_s_own_path():
    pipe = tiny_sdxl_pipeline()
    checkpoint = DiffusersCheckpoint(pipe, 32, 32)
    _, uncond, _, negative_pooled = api.encode(pipe, "", "")
    negative = checkpoint.conditioning("", negative=True)
    assert torch.equal(negative.context, uncond) and torch.equal(negative.vector, negative_pooled)
    positive = checkpoint.conditioning("a cat")
    assert positive.vector is not None and positive.vector.shape[0] == 1


def test_ldm_checkpoint_calls_apply_model_and_converts_v_prediction():
    ldm = pytest.importorskip("test_ldm_backend")
    from lib_regedit.backends.ldm_checkpoint import LdmCheckpoint

    unet = ldm.make_unet()
    alphas = torch.linspace(0.99, 0.01, 1000)
    seen = []

    def apply_model(x, t, cond):
        seen.append(cond)
        return unet(x, t, context=cond["c_crossattn"][0])

    model = SimpleNamespace(model=SimpleNamespace(diffusion_model=unet), alphas_cumprod=alphas, apply_model=apply_model,
                            parameterization="eps", first_stage_model=None)
    context = torch.randn(1, 77, ldm.CTX)
    checkpoint = LdmCheckpoint(model, lambda prompt, negative: context)
    z = torch.randn(2, 4, 16, 16)
    with torch.no_grad():
        eps = checkpoint.eps(z, 300, checkpoint.conditioning("x").expand(2))
        assert torch.equal(eps, unet(z, torch.full((2,), 300), context=context.expand(2, -1, -1)))
        model.parameterization = "v"
        v = unet(z, torch.full((2,), 300), context=context.expand(2, -1, -1))
        a = alphas[300]
        torch.testing.assert_close(checkpoint.eps(z, 300, Conditioning(context.expand(2, -1, -1))),
                                   a.sqrt() * v + (1 - a).sqrt() * z)
    assert "c_crossattn" in seen[0] and checkpoint.alphas.dtype == torch.float32
    counter = Counter()
    with torch.no_grad(), checkpoint.attach(Controller([counter], GenerationState(total_steps=1))):
        checkpoint.eps(z, 300, Conditioning(context.expand(2, -1, -1)))
    assert counter.calls > 0
    from lib_regedit.backends import ldm_backend

    assert ldm_backend.remove_leftovers(unet) == 0
