"""Token grounding for ShapesWorld training (``train.py --grounding``).

Region prompts, keyword selection, LIME and layout guidance all read per-token cross-attention maps,
so the model is better for them when each object's words attend to that object. The data generator
knows where every object is, so training can ask for it directly, as TokenCompose does (Wang et al.
2024, *TokenCompose: Text-to-Image Diffusion with Token-level Supervision*, its token loss):

    L_ground = mean over objects' colour and shape tokens and layers of (1 - sum_{p in box} A(p) / sum_p A(p))^2

where ``A`` is the token's cross-attention map (mean over heads) in a down or up cross-attention
layer, and the box is the object's, at the layer's resolution. It is added to the noise loss with
weight ``--grounding``. Captions dropped for CFG and blank scenes carry no target.

This module: the per-sample targets (token positions and object boxes, rebuilt from the data seed),
an attention processor that keeps the probabilities, and the loss.
"""

from __future__ import annotations

import torch

from ..masks import box_coverage
from .data import scene_for

MAX_OBJECTS = 3
WORDS_PER_OBJECT = 2  # colour, shape


def targets(tokenizer, seed: int, n: int, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of the ``n`` training scenes: the positions of each object's colour and shape tokens
    in its tokenised caption ``ids`` (n, K) with K = 6 (-1 where there is none), and the object boxes
    (n, K, 4) repeated per word."""
    vocab = {}

    def token(word):
        if word not in vocab:
            (vocab[word],) = tokenizer(word, add_special_tokens=False).input_ids
        return vocab[word]

    k = MAX_OBJECTS * WORDS_PER_OBJECT
    positions = torch.full((n, k), -1, dtype=torch.long)
    boxes = torch.zeros(n, k, 4)
    for i in range(n):
        row = ids[i].tolist()
        cursor = 0
        for j, obj in enumerate(scene_for(seed, i).objects):
            for w, word in enumerate((obj.colour, obj.shape)):
                pos = row.index(token(word), cursor)
                positions[i, j * WORDS_PER_OBJECT + w] = pos
                boxes[i, j * WORDS_PER_OBJECT + w] = torch.tensor(obj.box)
                cursor = pos + 1
    return positions, boxes


def box_masks(boxes: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(..., 4) boxes to (..., h·w) masks (coverage of each cell)."""
    return box_coverage(boxes, *hw).reshape(*boxes.shape[:-1], hw[0] * hw[1])


class ProbsProcessor:
    """Cross-attention with explicit probabilities, kept (mean over heads) for the loss."""

    def __init__(self, store: list):
        self.store = store

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        batch, tokens, _ = hidden_states.shape
        heads = attn.heads

        def split(t):
            return t.view(batch, -1, heads, t.shape[-1] // heads).transpose(1, 2)

        q, k, v = split(attn.to_q(hidden_states)), split(attn.to_k(encoder_hidden_states)), \
            split(attn.to_v(encoder_hidden_states))
        probs = ((q @ k.transpose(-1, -2)) * attn.scale).softmax(-1)
        self.store.append(probs.mean(1))  # (batch, h·w, T)
        out = (probs @ v).transpose(1, 2).reshape(batch, tokens, -1)
        return attn.to_out[1](attn.to_out[0](out))


def install(unet) -> list:
    """Put :class:`ProbsProcessor` on the down and up cross-attention layers; returns the store the
    processors fill (clear it before each forward)."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    store: list = []
    processors = {}
    for name in unet.attn_processors:
        wanted = name.endswith("attn2.processor") and not name.startswith("mid_block")
        processors[name] = ProbsProcessor(store) if wanted else AttnProcessor2_0()
    unet.set_attn_processor(processors)
    return store


def loss(store: list, positions: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """L_ground over the captured layers. ``positions`` (B, K) with -1 for none, ``boxes`` (B, K, 4)."""
    return losses(store, positions, boxes)[0]


def losses(store: list, positions: torch.Tensor, boxes: torch.Tensor,
           others: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """L_ground, and with ``others`` (B, M, 4: the scene's other objects' boxes, zero-sized where there
    is none) the choice term L_choice: the same square, of the share of the word's attention on the
    scene's objects that falls outside its own object's box,

        L_choice = mean of (1 - sum_{p in box} A(p) / sum_{p in any object's box} A(p))^2

    L_ground alone is satisfied by attending to every object, since the background is what it
    penalises most; L_choice takes the other objects as the negatives, so a word must choose its own."""
    valid = positions >= 0
    if not valid.any():
        zero = torch.zeros(())
        return zero, (zero if others is not None else None)
    index = positions.clamp(min=0)
    ground_terms, choice_terms = [], []
    masks_at: dict = {}
    for probs in store:
        side = int(round(probs.shape[1] ** 0.5))
        if side not in masks_at:
            own = box_masks(boxes, (side, side)).to(probs.dtype)  # (B, K, N)
            objects = None
            if others is not None:
                rest = box_masks(others, (side, side)).to(probs.dtype).amax(1, keepdim=True)  # (B, 1, N)
                objects = torch.maximum(own, rest)
            masks_at[side] = own, objects
        own, objects = masks_at[side]
        maps = probs.gather(2, index[:, None, :].expand(-1, probs.shape[1], -1)).transpose(1, 2)  # (B, K, N)
        inside = (maps * own).sum(-1)
        ground_terms.append(((1 - inside / maps.sum(-1).clamp_min(1e-8)) ** 2)[valid].mean())
        if objects is not None:
            share = inside / (maps * objects).sum(-1).clamp_min(1e-8)
            choice_terms.append(((1 - share) ** 2)[valid].mean())
    choice = torch.stack(choice_terms).mean() if others is not None else None
    return torch.stack(ground_terms).mean(), choice
