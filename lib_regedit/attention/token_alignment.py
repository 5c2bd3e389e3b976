"""Which source token each target token reads its cross-attention map from (prompt-to-prompt,
Hertz et al. 2022; MRGD Eq. 5 uses it per region).

- **Word swap**: the two prompts have as many word tokens ("a red circle" → "a blue circle"): every
  position reads the source's map at the same position.
- **Refinement** otherwise ("a circle" → "a red circle", or a region's prompt gaining or losing
  words): the tokens common to both, in order, are aligned and read the source's map; the target's
  new tokens keep their own. BOS keeps position 0; EOS and padding are aligned from the end of the
  words.

Words are ``(position in the encoded context, text)`` as the backends' ``tokenize`` gives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher

import torch


@dataclass(frozen=True)
class TokenMapping:
    index: torch.Tensor  # (T_target,) long: the source position each target position reads
    aligned: torch.Tensor  # (T_target,) bool: whether it reads the source's map at all
    swap: bool  # word swap (every position aligned) rather than refinement

    @staticmethod
    def identity(length: int) -> "TokenMapping":
        return TokenMapping(torch.arange(length), torch.ones(length, dtype=torch.bool), True)


def token_mapping(source_words, target_words, source_length: int, target_length: int) -> TokenMapping:
    """The mapping from target positions to source positions for contexts of these lengths."""
    index = torch.arange(target_length).clamp(max=source_length - 1)
    aligned = torch.zeros(target_length, dtype=torch.bool)
    if len(source_words) == len(target_words):
        for (ps, _), (pt, _) in zip(source_words, target_words):
            if pt < target_length and ps < source_length:
                index[pt] = ps
        aligned[:] = True
        return TokenMapping(index, aligned, True)
    first_t = target_words[0][0] if target_words else target_length
    first_s = source_words[0][0] if source_words else source_length
    for p in range(min(first_t, first_s, target_length)):  # BOS
        index[p], aligned[p] = p, True
    matcher = SequenceMatcher(a=[t for _, t in source_words], b=[t for _, t in target_words], autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            ps, pt = source_words[block.a + k][0], target_words[block.b + k][0]
            if pt < target_length and ps < source_length:
                index[pt], aligned[pt] = ps, True
    last_t = target_words[-1][0] if target_words else first_t - 1
    last_s = source_words[-1][0] if source_words else first_s - 1
    for p in range(last_t + 1, target_length):  # EOS and padding, from the end of the words
        q = p - last_t + last_s
        if q < source_length:
            index[p], aligned[p] = q, True
    return TokenMapping(index, aligned, False)


def edited_map(target: torch.Tensor, source: torch.Tensor, mapping: TokenMapping) -> torch.Tensor:
    """Edit(A^T, A^S): the target's cross-attention probabilities (..., T_target) with the aligned
    positions read from the source's (..., T_source)."""
    index = mapping.index.to(source.device)
    injected = source.index_select(-1, index)
    if mapping.swap:
        return injected
    return torch.where(mapping.aligned.to(target.device), injected, target)
