"""Which batch rows of one UNet call are a pair's source and target, read from what the sampler passed.

The pair run builds its conditioning itself, so each row of the sampler's conditional tensor has a
known role (``roles``: "source" or "target" per reference row). A row of a UNet call takes the role
of the reference rows its text context equals. When a row matches rows of both roles (identical
whole prompts) the call's rows of that kind are read in the reference's order, which is how every
sampler passes them. The k-th source row pairs with the k-th target row.
"""

from __future__ import annotations

import torch

from .controller import _matches


def row_roles(context: torch.Tensor | None, rows: tuple[int, ...], reference: torch.Tensor | None,
              roles: tuple[str, ...]) -> dict[int, str]:
    """Role of each row in ``rows`` (indices into ``context``)."""
    if not rows:
        return {}
    found: dict[int, str] = {}
    ambiguous = reference is None or context is None
    if not ambiguous:
        t = min(context.shape[1], reference.shape[1])
        for row in rows:
            hits = {roles[j] for j in range(reference.shape[0])
                    if j < len(roles) and bool(_matches(context[row:row + 1, :t], reference[j:j + 1, :t])[0])}
            if len(hits) != 1:
                ambiguous = True
                break
            found[row] = hits.pop()
    if ambiguous:
        if len(rows) % len(roles) and len(rows) != len(roles):
            return {row: "source" for row in rows}
        return {row: roles[k % len(roles)] for k, row in enumerate(rows)}
    return found


def pairs_of(roles: dict[int, str]) -> list[tuple[int, int]]:
    """(source row, target row) pairs, the k-th source with the k-th target."""
    sources = [r for r, role in sorted(roles.items()) if role == "source"]
    targets = [r for r, role in sorted(roles.items()) if role == "target"]
    return list(zip(sources, targets))
