"""The WebUI's generation-parameters text ("infotext"): quoting, and the RegEdit entry.

The format is the WebUI's: ``prompt\\nNegative prompt: ...\\nKey: value, Key: value``, where a value
holding a comma, a colon or a newline is written as a JSON string.
"""

from __future__ import annotations

import json

INFOTEXT_KEY = "RegEdit regions"
KEYWORDS_KEY = "RegEdit keywords"
DRAG_INFOTEXT_KEY = "RegEdit drag"
LIME_INFOTEXT_KEY = "RegEdit LIME"
PAIR_IMAGE_KEY = "RegEdit pair"  # which image of an edit pair: "source" or "target"
INVERSION_KEY = "RegEdit inversion"  # a real-image edit: the inversion it was made through


def quote(text: str) -> str:
    text = str(text)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def regions_entry(parameters: str) -> str | None:
    """The ``RegEdit regions`` value of a parameters text (its last line), unquoted, or None."""
    line = parameters.rsplit("\n", 1)[-1]
    start = line.find(INFOTEXT_KEY + ": ")
    if start < 0:
        return None
    rest = line[start + len(INFOTEXT_KEY) + 2:]
    if rest.startswith('"'):
        try:
            value, _ = json.JSONDecoder().raw_decode(rest)
            return value
        except json.JSONDecodeError:
            return None
    return rest.split(", ", 1)[0]


def parameters_text(prompt: str, negative_prompt: str, params: dict) -> str:
    lines = [prompt]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    lines.append(", ".join(f"{k}: {quote(v)}" for k, v in params.items() if v is not None))
    return "\n".join(lines)
