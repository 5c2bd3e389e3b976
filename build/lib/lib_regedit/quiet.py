"""Console lines the user cannot act on, filtered out.

Without torchvision, every import of a diffusers pipeline makes transformers warn that its image
processors fall back to their PIL versions. RegEdit uses no image processor (the safety checker is
off), so the fallback changes nothing; the lines are dropped, and every other warning stays.
"""

from __future__ import annotations

import logging

NOT_ACTIONABLE = ("requires torchvision (not installed); falling back to",)


class _DropNotActionable(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in NOT_ACTIONABLE)


def install() -> None:
    """Idempotent: the filter sits on the one logger that emits those lines."""
    logger = logging.getLogger("transformers.utils.import_utils")
    if not any(isinstance(f, _DropNotActionable) for f in logger.filters):
        logger.addFilter(_DropNotActionable())
