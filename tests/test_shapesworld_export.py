"""The diffusers -> LDM single-file conversion, on a tiny random ShapesWorld-shaped model."""

from __future__ import annotations

import pytest
import torch

from lib_regedit.shapesworld import model as M
from lib_regedit.shapesworld.export import export
from lib_regedit.shapesworld.verify import compare, compare_with_diffusers_loader

pytest.importorskip("ldm.modules.diffusionmodules.openaimodel")


def tiny_models():
    torch.manual_seed(0)
    # The LDM modules hard-code GroupNorm(32), so channels stay multiples of 32.
    unet = M.build_unet(block_out_channels=(32, 32, 64), cross_attention_dim=32, sample_size=8)
    vae = M.build_vae(block_out_channels=(32, 32, 32), sample_size=32)
    vae.register_to_config(scaling_factor=0.7)
    text = M.build_text_encoder(hidden_size=32, intermediate_size=32, num_hidden_layers=2, projection_dim=32)
    with torch.no_grad():  # make the random weights matter (zero-initialised outputs would hide mistakes)
        for p in list(unet.parameters()) + list(vae.parameters()):
            p.add_(torch.randn_like(p) * 0.02)
    return vae.eval(), unet.eval(), text.eval()


def test_identity_layers_are_exact_and_clip_skip_agrees():
    _, _, text = tiny_models()
    ids = torch.randint(0, 49406, (2, 77))
    out = text(ids, output_hidden_states=True)
    fast = M.encode_tokens(text, ids)
    assert torch.equal(out.last_hidden_state, fast)
    final_norm = M.text_core(text).final_layer_norm
    for n in range(1, len(out.hidden_states)):  # the WebUI's clip skip: hidden_states[-n] -> final LayerNorm
        assert torch.equal(final_norm(out.hidden_states[-n]), fast)


def test_single_file_matches_diffusers_folder(tmp_path):
    vae, unet, text = tiny_models()
    info = export(vae, unet, text, tmp_path, name="tiny", clip_version=str(tmp_path / "tiny_clip"),
                  dtype=torch.float32)
    diffs = compare(info["folder"], info["checkpoint"], info["yaml"], info["clip"])
    assert diffs["unet_scale"] > 1e-3
    for key in ("text", "unet", "vae_encode", "vae_decode", "scale_factor"):
        assert diffs[key] < 1e-4, (key, diffs)


def test_exported_folder_loads_as_pipeline(tmp_path):
    from diffusers import StableDiffusionPipeline
    vae, unet, text = tiny_models()
    info = export(vae, unet, text, tmp_path, name="tiny", dtype=torch.float32)
    pipe = StableDiffusionPipeline.from_pretrained(info["folder"], local_files_only=True)
    out = pipe("a red circle", num_inference_steps=2, height=32, width=32, output_type="np",
               generator=torch.Generator().manual_seed(0)).images
    assert out.shape == (1, 32, 32, 3)
    # unused vocabulary rows are zero, the caption words are kept
    emb = M.text_core(pipe.text_encoder).embeddings.token_embedding.weight
    assert int((emb.abs().sum(1) > 0).sum()) == info["kept_tokens"]
    yaml = info["yaml"].read_text()
    assert "FrozenCLIPEmbedder" in yaml and "LatentDiffusion" in yaml


def test_diffusers_single_file_loader_reads_our_checkpoint(tmp_path):
    vae, unet, text = tiny_models()
    info = export(vae, unet, text, tmp_path, name="tiny", dtype=torch.float32)
    diffs = compare_with_diffusers_loader(info["folder"], info["checkpoint"])
    assert all(v < 1e-6 for v in diffs.values()), diffs
