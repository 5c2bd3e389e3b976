"""What the background r_bg says when the document has no background region (document field
``background_prompt``).

MultiDiffusion and MRGD (seed 001, Eq. 1) fuse a background source r_bg wherever no box covers the
image. When the user gives no background region, something must fill that role:

- ``"rest"`` (the default): the whole prompt with the region phrases taken out, so the background
  keeps the scene and style words ("on the grass, highly detailed") but no longer asks for the
  objects. Without that, the whole prompt asks for every object in every pixel outside the boxes,
  and the objects land there instead of in their boxes (measured in docs/regions.md's defaults table);
- ``"whole"``: the whole prompt (the behaviour of documents before version 2);
- ``"empty"``: the empty prompt;
- ``"negative"``: the negative prompt.

:func:`rest_of_prompt` is a pure function on text, so it is tested without a model.
"""

from __future__ import annotations

import re

from ..documents.region import BACKGROUND_SOURCES as SOURCES  # noqa: F401 (the document field's choices)
from ..prompt_syntax import EXTRA_NETWORK

# Words that only join phrases: left dangling once the phrases they joined are removed.
FUNCTION_WORDS = frozenset("""
a an the and or with of on in at to by beside behind next near under over above below from for
its their his her while plus some two three four
""".split())
ARTICLES = frozenset({"a", "an", "the", "some"})
_WORD = re.compile(r"[\w'-]+", re.UNICODE)
EMPHASIS_WEIGHT = re.compile(r":\s*-?(\d+\.?\d*|\.\d+)\s*(?=[)\]])")  # "(red circle:1.2)": the ":1.2"
BREAK = re.compile(r"\bBREAK\b")


def _plain_text(prompt: str) -> str:
    """The prompt without the WebUI's syntax: extra-network tags go, emphasis brackets and weights go
    (their words stay), and ``BREAK`` separates parts like a comma."""
    text = EXTRA_NETWORK.sub(" ", prompt)
    text = EMPHASIS_WEIGHT.sub(" ", text)
    text = re.sub(r"[()\[\]{}]", " ", text)
    return BREAK.sub(",", text)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def rest_of_prompt(prompt: str, region_prompts) -> str:
    """``prompt`` with each region prompt taken out, then each remaining word that a region prompt
    names (other than joining words; plurals match), and the joining words left dangling. Commas
    separate parts; the WebUI's syntax (``<lora:name:1>`` tags, ``(emphasis:1.2)``, ``BREAK``) is
    read as plain text first.

    >>> rest_of_prompt("a red circle and a blue square", ["a red circle", "a blue square"])
    ''
    >>> rest_of_prompt("a photo of a cat and a dog on the grass, best quality", ["a cat", "a dog"])
    'a photo on the grass, best quality'
    """
    text = _plain_text(prompt)
    phrases = sorted({_plain_text(p).strip() for p in region_prompts if p and _plain_text(p).strip()}, key=len,
                     reverse=True)
    for phrase in phrases:
        text = re.sub(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", " , " if "," in phrase else " ", text,
                      flags=re.IGNORECASE)
    named = {_stem(w) for p in phrases for w in _words(p) if w not in FUNCTION_WORDS}
    parts = []
    for part in text.split(","):
        words = [w for w in part.split() if _stem(_bare(w)) not in named]
        words = _tidy(words)
        if words:
            parts.append(" ".join(words))
    return ", ".join(parts)


def _stem(word: str) -> str:
    """A crude singular ("cats" and "cat" are one word here), applied to both sides alike."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _bare(word: str) -> str:
    return "".join(_words(word))


def _tidy(words: list[str]) -> list[str]:
    """Drop runs of joining words that no longer join anything: a leading run keeps only a final
    article, a run between words keeps its last joining word and the articles after it ("of and on
    the" becomes "on the"), a trailing run goes."""
    out: list[str] = []
    run: list[str] = []
    for word in words:
        if _bare(word) in FUNCTION_WORDS or not _bare(word):
            run.append(word)
            continue
        if run:
            out.extend(_joining(run) if out else run[-1:] if _bare(run[-1]) in ARTICLES else [])
            run = []
        out.append(word)
    return out


def _joining(run: list[str]) -> list[str]:
    last = max((i for i, w in enumerate(run) if _bare(w) not in ARTICLES), default=len(run) - 1)
    return run[last:]
