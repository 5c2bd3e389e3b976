"""Real-image inversion for region editing (MRGD §3.3): DDIM inversion, negative-prompt inversion and
multi-region null-text inversion behind one interface (``invert``), with a cache keyed per image,
model, prompts and settings."""

from .cache import InversionCache, inversion_key
from .invert import METHODS, Inversion, InversionCancelled, invert

__all__ = ["METHODS", "Inversion", "InversionCache", "InversionCancelled", "invert", "inversion_key"]
