"""The WebUI's prompt syntax that is not text for the encoder: extra-network tags such as
``<lora:name:0.8>`` (the WebUI applies them to the whole model, from the main prompt only)."""

from __future__ import annotations

import re

EXTRA_NETWORK = re.compile(r"<[^<>]*>")


def without_extra_networks(prompt: str) -> tuple[str, list[str]]:
    """``prompt`` without its ``<...>`` tags (spaces tidied), and the tags."""
    tags = EXTRA_NETWORK.findall(prompt)
    if not tags:
        return prompt, []
    return re.sub(r"\s{2,}", " ", EXTRA_NETWORK.sub(" ", prompt)).strip(), tags
