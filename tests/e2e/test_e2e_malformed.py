"""Hundreds of generated malformed payloads: each gets a clear error, and the WebUI keeps serving.

Three kinds of payload:

- ``body``: the request itself is broken (not JSON, truncated, wrong field types). The WebUI's own
  validation answers; we require a 4xx with a ``detail`` and a live server.
- ``doc``: a region document with one thing wrong, sent as an object and again as a JSON string.
  The generation must fail with RegEdit's message naming that field (``RegEdit: regions[0].w: ...
  Fix: ...``).
- ``empty``: nothing to do (an empty document, or arguments the WebUI drops). Either a plain image,
  bit-identical to one without the extension, or a clear RegEdit error.

After the loop (and every 40 payloads) a plain generation must still be bit-identical to the baseline.
"""

from __future__ import annotations

import copy
import json
from collections import Counter

from e2e_webui import pixels, plain_payload, with_regions

from lib_regedit.documents.region import VERSION

GOOD_REGION = {"x": 0.1, "y": 0.1, "w": 0.3, "h": 0.3, "prompt": "a red circle"}
GOOD_DOC = {"prompt": "a landscape", "negative_prompt": "", "regions": [dict(GOOD_REGION)]}
NAN, INF = float("nan"), float("inf")

# Values that are wrong for any number field (numeric strings such as "0.5" are accepted on purpose).
NOT_NUMBERS = [None, "abc", "", True, False, [], [0.5], {}, {"v": 0.5}, NAN, INF, -INF, "NaN", "1e999", "-inf"]
OUT_OF_UNIT = [-0.1, -1e-9, 1.0000001, 1.5, 2, 1e308, -1e308]


def region_doc(**changes) -> dict:
    doc = copy.deepcopy(GOOD_DOC)
    for key, value in changes.items():
        if value is _DELETE:
            del doc["regions"][0][key]
        else:
            doc["regions"][0][key] = value
    return doc


def top_doc(**changes) -> dict:
    doc = copy.deepcopy(GOOD_DOC)
    for key, value in changes.items():
        if value is _DELETE:
            del doc[key]
        else:
            doc[key] = value
    return doc


_DELETE = object()


def doc_cases():
    """(name, document, field path the error must name)."""
    cases = []
    for key in ("x", "y", "w", "h"):
        for i, v in enumerate(NOT_NUMBERS):
            cases.append((f"{key}-notnumber-{i}", region_doc(**{key: v}), f"regions[0].{key}"))
        for v in OUT_OF_UNIT:
            cases.append((f"{key}-range-{v}", region_doc(**{key: v}), f"regions[0].{key}"))
        cases.append((f"{key}-missing", region_doc(**{key: _DELETE}), f"regions[0].{key}"))
    for key in ("w", "h"):
        cases.append((f"{key}-zero", region_doc(**{key: 0}), f"regions[0].{key}"))
        cases.append((f"{key}-tiny-zero", region_doc(**{key: 1e-400}), f"regions[0].{key}"))
    cases.append(("past-right", region_doc(x=0.8, w=0.5), "regions[0].w"))
    cases.append(("past-bottom", region_doc(y=0.7, h=0.4), "regions[0].h"))
    for i, v in enumerate([0, -1, 10.5, NAN, "heavy", [], None if False else {}]):
        cases.append((f"weight-{i}", region_doc(weight=v), "regions[0].weight"))
    for i, v in enumerate([-0.1, 0.6, NAN, INF, "soft", [1]]):
        cases.append((f"feather-{i}", region_doc(feather=v), "regions[0].feather"))
    for i, v in enumerate([_DELETE, None, 123, 1.5, True, [], ["a"], {}, "", "   ", "x" * 5000, "a\x00b"]):
        cases.append((f"region-prompt-{i}", region_doc(prompt=v), "regions[0].prompt"))
    for i, v in enumerate([123, [], {}, True, "n" * 5000]):
        cases.append((f"region-negative-{i}", region_doc(negative_prompt=v), "regions[0].negative_prompt"))
    for i, v in enumerate(["foreground", "", 1, [], "BACKGROUND"]):
        cases.append((f"role-{i}", region_doc(role=v), "regions[0].role"))
    for i, v in enumerate(["word", 5, [1], [""], ["  "], ["k" * 200], [None], ["a"] * 65]):
        cases.append((f"keywords-{i}", region_doc(keywords=v), "regions[0].keywords"))
    for i, key in enumerate(["z", "X", "width", "prompts", ""]):
        cases.append((f"region-unknown-{i}", region_doc(**{key: 1}), f"regions[0].{key}" if key else "regions[0]."))
    for i, v in enumerate([_DELETE, None, "abc", 5, {}, True]):
        cases.append((f"regions-{i}", top_doc(regions=v), "regions"))
    for i, v in enumerate([1, "x", None, [], [1, 2], True, 0.5]):
        cases.append((f"region-item-{i}", top_doc(regions=[v]), "regions[0]"))
    cases.append(("regions-second-bad", top_doc(regions=[dict(GOOD_REGION), dict(GOOD_REGION, h=-1)]), "regions[1].h"))
    cases.append(("regions-33", top_doc(regions=[dict(GOOD_REGION)] * 33), "regions"))
    cases.append(("regions-5000", top_doc(regions=[dict(GOOD_REGION)] * 5000), "regions"))
    cases.append(("two-backgrounds", top_doc(regions=[{"role": "background", "prompt": "sky"},
                                                      {"role": "background", "prompt": "sea"}]), "regions"))
    for i, v in enumerate(["bogus", 1, [], "ATTENTION"]):
        cases.append((f"mode-{i}", top_doc(mode=v), "mode"))
    for key, values in (("whole_prompt_start", [-0.1, 1.5, NAN, "soon", []]),
                        ("whole_prompt_weight", [-1, 11, INF, "x"]),
                        ("background_weight", [-1, 11, NAN, {}]),
                        ("version", [0, VERSION + 1, "one", 1.5, NAN]),
                        ("init_noise_outside", [-0.1, 1.5, NAN, "most"]),
                        ("init_sketch", ["star", 1, [], "DISC"]),
                        ("init_steps", [-1, 2.5, 1001, "few"]),
                        ("background_prompt", ["all", 1, [], "REST"])):
        for i, v in enumerate(values):
            cases.append((f"{key}-{i}", top_doc(**{key: v}), key))
    for i, v in enumerate([123, [], {}, "n" * 5000, "a\x00b"]):
        cases.append((f"negative-{i}", top_doc(negative_prompt=v), "negative_prompt"))
    for i, key in enumerate(["foo", "Regions", "prompt2"]):
        cases.append((f"unknown-{i}", top_doc(**{key: 1}), key))
    return cases


def string_doc_cases():
    """Documents that are broken as text: (name, JSON-string argument, field path)."""
    return [
        ("str-open-brace", "{", "regedit"), ("str-close", "}", "regedit"), ("str-list", "[1, 2]", "regedit"),
        ("str-number", "123", "regedit"), ("str-nan", "NaN", "regedit"), ("str-string", '"doc"', "regedit"),
        ("str-single-quotes", "{'prompt': 'a', 'regions': []}", "regedit"),
        ("str-trailing-comma", '{"prompt": "a", "regions": [],}', "regedit"),
        ("str-truncated", json.dumps(GOOD_DOC)[:-7], "regedit"), ("str-garbage", "\x00\x01\x02", "regedit"),
        ("str-true", "true", "regedit"), ("str-null-in-list", "[null]", "regedit"),
        ("str-deep", "[" * 50_000 + "]" * 50_000, "regedit"),
        ("str-huge", json.dumps(dict(GOOD_DOC, pad="x" * 1_100_000)), "regedit"),
    ]


def arg_cases():
    """Non-document first arguments: (name, value, field path)."""
    return [(f"arg-{i}", v, "regedit") for i, v in enumerate([42, 3.5, True, [], [GOOD_DOC], [1, 2], NAN])]


def body_cases():
    """Broken requests: (name, raw bytes)."""
    # (b"[]" is no error to the WebUI: pydantic v1 reads it as an empty dict, a default 512x512 run.)
    good = json.dumps(plain_payload())
    raw = [b"", b"{", b"}", b"[", b"[1, 2]", b"null", b"0", b'"text"', b'{"prompt": }', b'{"prompt": "a",}',
           b'{"prompt": "\xff\xfe"}', b"\x00" * 100, b"{" * 10_000, good.encode()[:-1],
           good.encode()[: len(good) // 2], b'{"steps": "many"}', b'{"width": "wide"}', b'{"batch_size": []}',
           b'{"seed": {}}', b'{"alwayson_scripts": "regedit"}', b'{"alwayson_scripts": [1, 2]}',
           b'{"alwayson_scripts": {"regedit_no_such": {"args": []}}}', b'{"cfg_scale": "high"}',
           b'{"n_iter": "x"}', b'{"prompt": "a", "steps": 3, "width": 64, "height": 64, "denoising_strength": "x"}']
    return [(f"body-{i}", r) for i, r in enumerate(raw)]


def empty_cases():
    """Nothing to do: (name, alwayson_scripts value)."""
    return [
        ("empty-string", {"regedit": {"args": [""]}}), ("empty-spaces", {"regedit": {"args": ["   "]}}),
        ("empty-null", {"regedit": {"args": [None]}}), ("empty-args", {"regedit": {"args": []}}),
        ("empty-no-args", {"regedit": {}}), ("empty-string-value", {"regedit": "x"}),
        ("empty-regions", {"regedit": {"args": [{"prompt": "a", "regions": []}]}}),
        ("empty-object", {"regedit": {"args": [{}]}}),
    ]


def _clear_regedit_error(text: str, path: str) -> bool:
    return f"RegEdit: {path}" in text and "Fix:" in text


def test_malformed_payloads(webui, baseline, assert_plain_unchanged):
    small = plain_payload(steps=2)
    cases = []
    for name, doc, path in doc_cases():
        cases.append(("doc", f"{name}/object", with_regions(small, doc), path))
        cases.append(("doc", f"{name}/string", with_regions(small, json.dumps(doc)), path))
    for name, text, path in string_doc_cases() + arg_cases():
        cases.append(("doc", name, with_regions(small, text), path))
    for name, raw in body_cases():
        cases.append(("body", name, raw, None))
    plain_small = [pixels(b) for b in webui.generate("txt2img", small)["images"]]
    for name, scripts in empty_cases():
        cases.append(("empty", name, dict(small, alwayson_scripts=scripts), None))
    assert len(cases) >= 200, len(cases)

    failures, kinds = [], Counter()
    for n, (kind, name, payload, path) in enumerate(cases):
        if kind == "body":
            r = webui.post("/sdapi/v1/txt2img", data=payload, timeout=120)
        else:
            r = webui.post("/sdapi/v1/txt2img", payload, timeout=300)
        text = r.text
        kinds[(kind, r.status_code)] += 1
        if kind == "doc":
            if r.status_code < 400 or not _clear_regedit_error(text, path):
                failures.append(f"{name}: {r.status_code} {text[:300]!r} (wanted 'RegEdit: {path}')")
        elif kind == "body":
            if not 400 <= r.status_code < 500 or "detail" not in text:
                failures.append(f"{name}: {r.status_code} {text[:300]!r} (wanted a 4xx with a detail)")
        else:
            ok_plain = r.status_code == 200 and [pixels(b) for b in r.json()["images"]] == plain_small
            ok_error = r.status_code >= 400 and "RegEdit" in text and "Fix:" in text
            if not (ok_plain or ok_error):
                failures.append(f"{name}: {r.status_code} {text[:300]!r} (wanted the plain image or a RegEdit error)")
        assert webui.alive(), f"the WebUI died on payload {name}:\n{webui.log_tail()}"
        if n % 40 == 39:
            got = [pixels(b) for b in webui.generate("txt2img", small)["images"]]
            assert got == plain_small, f"a plain generation changed after payload {name}"
    print(f"{len(cases)} malformed payloads; (kind, status) counts: {dict(kinds)}")
    assert not failures, f"{len(failures)} of {len(cases)} payloads got no clear error:\n" + "\n".join(failures)
    assert_plain_unchanged(f"{len(cases)} malformed payloads")
