"""The edit tokens of an instruction (LIME, Simsar et al. 2025, §3): its words minus the start token,
English stop words and punctuation. LIME's regularisation keeps only these tokens inside the region of
interest, and the RoI is picked where they attend.

Stop words are scikit-learn's English list (no download); the reference implementation takes NLTK's,
which downloads its corpora at import. For picking the RoI, the reference also drops verbs with NLTK's
part-of-speech tagger; offline we drop the verbs that open instructions (:data:`INSTRUCTION_VERBS`),
which attend everywhere rather than at the object.
"""

from __future__ import annotations

import re
import string

from ..errors import RegEditError

INSTRUCTION_VERBS = frozenset({
    "make", "turn", "change", "remove", "replace", "add", "put", "convert", "transform", "swap", "recolour",
    "recolor", "paint", "colour", "color", "erase", "delete", "let", "give", "set", "get", "have", "become",
    "take", "show", "draw",
})


def stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return ENGLISH_STOP_WORDS


def _word(text: str) -> str:
    return text.strip().lower()


def is_edit_token(text: str) -> bool:
    word = _word(text)
    return bool(word) and word not in stop_words() and not all(c in string.punctuation for c in word)


def edit_positions(tokens: list[tuple[int, str]]) -> list[int]:
    """Positions of the edit tokens among ``tokens``, the (position, text) word tokens of the encoded
    instruction (start, end and padding tokens already left out, as ``api.tokenize`` gives them)."""
    return [pos for pos, text in tokens if is_edit_token(text)]


def object_positions(tokens: list[tuple[int, str]]) -> list[int]:
    """The edit tokens that name what to edit (instruction verbs left out), whose attention locates the
    RoI; all edit tokens when only verbs are left."""
    edit = [(pos, text) for pos, text in tokens if is_edit_token(text)]
    objects = [pos for pos, text in edit if _word(text) not in INSTRUCTION_VERBS]
    return objects or [pos for pos, _ in edit]


def edit_words(text: str) -> list[str]:
    """The instruction's words that would give edit tokens: a check on the text alone, before a model
    (and its tokenizer) is loaded."""
    return [w for w in re.findall(r"[^\W_]+", text.lower()) if is_edit_token(w)]


def check_instruction(instruction, field_name: str = "instruction", lime: bool = False) -> str:
    """The instruction, stripped; with ``lime``, it must also keep words after stop words and punctuation."""
    if not isinstance(instruction, str) or not instruction.strip():
        raise RegEditError(field_name, "is empty", "say what to change, e.g. 'make the red circle blue' (an "
                                                   "ordinary model takes the edit prompt: what the image should show)")
    if lime and not edit_words(instruction):
        raise RegEditError(field_name, f"no edit tokens are left after stop words and punctuation ({instruction.strip()!r})",
                           "name the object and the change, e.g. 'make the red circle blue'")
    return instruction.strip()
