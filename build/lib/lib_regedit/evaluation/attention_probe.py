"""Record per-token cross-attention maps of a diffusers UNet, layer by layer, for evaluation.

A small attention processor that computes attention the plain way (project, softmax, project back)
and, on cross-attention layers, adds the head-averaged probabilities of the conditional rows to a
per-layer sum. With classifier-free guidance diffusers' ``StableDiffusionPipeline`` stacks the
unconditional rows first and the conditional rows last, so ``cond_rows="last_half"`` is the default;
pass ``"all"`` for a single-row call.
"""

from __future__ import annotations

import contextlib
import math

import torch


class RecordingProcessor:
    def __init__(self, recorder: "AttentionRecorder", name: str):
        self.recorder = recorder
        self.name = name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        is_cross = encoder_hidden_states is not None
        context = encoder_hidden_states if is_cross else hidden_states
        b, n, _ = hidden_states.shape
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))
        k = attn.head_to_batch_dim(attn.to_k(context))
        v = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(q, k, attention_mask)
        out = attn.batch_to_head_dim(torch.bmm(probs, v))
        out = attn.to_out[1](attn.to_out[0](out))
        if is_cross:
            self.recorder.add(self.name, probs.view(b, attn.heads, n, -1).mean(1))
        return out


class AttentionRecorder:
    """``with AttentionRecorder(unet) as rec: pipe(...)``; then ``rec.maps(layer)`` -> (tokens, h, w)."""

    def __init__(self, unet, latent_hw: tuple[int, int], cond_rows: str = "last_half"):
        self.unet = unet
        self.latent_hw = latent_hw
        self.cond_rows = cond_rows
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self._saved = None

    def add(self, name: str, probs: torch.Tensor) -> None:  # probs (batch, pixels, tokens)
        if self.cond_rows == "last_half" and probs.shape[0] % 2 == 0 and probs.shape[0] > 1:
            probs = probs[probs.shape[0] // 2:]
        p = probs.mean(0).detach().float()
        self.sums[name] = self.sums.get(name, 0) + p
        self.counts[name] = self.counts.get(name, 0) + 1

    def layers(self) -> list[str]:
        return list(self.sums)

    def maps(self, layer: str) -> torch.Tensor:
        """Mean attention of each token over the layer's pixels: (tokens, h, w)."""
        p = self.sums[layer] / self.counts[layer]
        n = p.shape[0]
        lh, lw = self.latent_hw
        f = math.sqrt(lh * lw / n)
        h, w = round(lh / f), round(lw / f)
        return p.T.reshape(-1, h, w)

    def __enter__(self):
        self._saved = self.unet.attn_processors
        procs = {name: RecordingProcessor(self, name.removesuffix(".processor")) if "attn2" in name else proc
                 for name, proc in self._saved.items()}
        self.unet.set_attn_processor(procs)
        return self

    def __exit__(self, *exc):
        self.unet.set_attn_processor(self._saved)
        return False


def block_of(layer: str) -> str:
    """'down_blocks.1.attentions.0.transformer_blocks.0.attn2' -> 'down_blocks.1'."""
    parts = layer.split(".")
    return parts[0] if parts[0] == "mid_block" else ".".join(parts[:2])


@contextlib.contextmanager
def recording(unet, latent_hw):
    rec = AttentionRecorder(unet, latent_hw)
    with rec:
        yield rec
