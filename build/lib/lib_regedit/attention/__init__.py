"""The one attention entry point: backends turn their call into an :class:`AttentionCall` and hand it
to the active :class:`Controller`, which composes the effects."""

from .call import AttentionCall, RowLayout, attend
from .controller import Controller, GenerationState

__all__ = ["AttentionCall", "RowLayout", "attend", "Controller", "GenerationState"]
