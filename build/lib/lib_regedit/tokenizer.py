"""An offline CLIP tokenizer.

The CLIP BPE vocabulary (``bpe_simple_vocab_16e6.txt.gz``) ships inside PyPI's ``open_clip_torch``.
We read that file without importing ``open_clip`` (whose import pulls in torchvision) and write the
``vocab.json``/``merges.txt`` pair that ``transformers.CLIPTokenizer`` loads, the same 49,408-token
vocabulary as OpenAI's CLIP ViT-L/14 tokenizer that SD 1.x and SDXL use.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from pathlib import Path

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = 49408


def find_bpe_vocab() -> Path:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the CLIP BPE vocabulary comes from PyPI's open_clip_torch: "
                           "pip install --no-deps open_clip_torch")
    for location in spec.submodule_search_locations:
        path = Path(location) / VOCAB_FILE
        if path.exists():
            return path
    raise RuntimeError(f"{VOCAB_FILE} not found in the open_clip package; reinstall open_clip_torch")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def write_clip_tokenizer_files(out_dir: str | os.PathLike) -> Path:
    """Write vocab.json, merges.txt and the tokenizer configs of the CLIP tokenizer into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = gzip.open(find_bpe_vocab(), "rt", encoding="utf-8").read().split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]  # as in OpenAI CLIP: 48,894 merges
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == VOCAB_SIZE, len(vocab)
    (out / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False),
                                    encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "pad_token": "<|endoftext|>"}
    (out / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")
    config = dict(special, model_max_length=77, tokenizer_class="CLIPTokenizer", do_lower_case=True,
                  clean_up_tokenization_spaces=False)
    (out / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return out


def build_clip_tokenizer(cache_dir: str | os.PathLike | None = None):
    """A ``transformers.CLIPTokenizer`` built offline. Files are written to ``cache_dir`` (or a temp dir)."""
    from transformers import CLIPTokenizer

    if cache_dir is None:
        import tempfile
        cache_dir = Path(tempfile.gettempdir()) / "regedit-clip-tokenizer"
    cache = Path(cache_dir)
    if not (cache / "merges.txt").exists():
        write_clip_tokenizer_files(cache)
    return CLIPTokenizer.from_pretrained(str(cache), local_files_only=True)
