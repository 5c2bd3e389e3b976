"""Small typed readers for JSON fields. Each failure names the field path and the fix."""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

from ..errors import RegEditError

MAX_DOCUMENT_CHARS = 1_000_000


REGION_EXAMPLE = '{"prompt": "...", "regions": [...]}'


def load_json_object(value: Any, field: str, example: str = REGION_EXAMPLE) -> dict | None:
    """Accept a dict, a JSON string, or nothing (``None``/empty string gives ``None``). ``example``: the
    kind of document the field takes, shown in the fix when the value is not a JSON object."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        if not value.strip():
            return None
        if len(value) > MAX_DOCUMENT_CHARS:
            raise RegEditError(field, f"the document is {len(value)} characters long",
                               f"keep it under {MAX_DOCUMENT_CHARS} characters")
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RegEditError(field, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
                               f"send a JSON object such as {example}") from None
        except RecursionError:
            raise RegEditError(field, "the JSON is nested too deeply",
                               f"send a flat JSON object such as {example}") from None
    if not isinstance(value, dict):
        raise RegEditError(field, f"expected a JSON object, got {type_name(value)}",
                           f"send a JSON object such as {example}")
    return value


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def reject_unknown(obj: dict, allowed: Iterable[str], field: str) -> None:
    allowed = list(allowed)
    for key in obj:
        if key not in allowed:
            shown = f"{field}.{key}" if field else str(key)
            raise RegEditError(shown, "unknown field", f"remove it or use one of: {', '.join(allowed)}")


def get_number(obj: dict, key: str, field: str, *, default: float | None = None, lo: float | None = None,
               hi: float | None = None, lo_open: bool = False, required: bool = False) -> float:
    path = f"{field}.{key}" if field else key
    if key not in obj or (obj[key] is None and not required):
        if required or default is None:
            raise RegEditError(path, "missing", f"add a number{_range_text(lo, hi, lo_open)}")
        return default
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise RegEditError(path, f"expected a number, got the string {value[:40]!r}",
                                   f"write a number{_range_text(lo, hi, lo_open)}") from None
        else:
            raise RegEditError(path, f"expected a number, got {type_name(value)}",
                               f"write a number{_range_text(lo, hi, lo_open)}")
    value = float(value)
    if not math.isfinite(value):
        raise RegEditError(path, f"{value} is not a finite number", f"write a number{_range_text(lo, hi, lo_open)}")
    if lo is not None and (value < lo or (lo_open and value <= lo)):
        raise RegEditError(path, f"{value:g} is out of range", f"use a number{_range_text(lo, hi, lo_open)}")
    if hi is not None and value > hi:
        raise RegEditError(path, f"{value:g} is out of range", f"use a number{_range_text(lo, hi, lo_open)}")
    return value


def _range_text(lo, hi, lo_open) -> str:
    if lo is not None and hi is not None:
        return f" {'>' if lo_open else 'from'} {lo:g} {'and ≤' if lo_open else 'to'} {hi:g}"
    if lo is not None:
        return f" {'>' if lo_open else '≥'} {lo:g}"
    if hi is not None:
        return f" ≤ {hi:g}"
    return ""


def get_string(obj: dict, key: str, field: str, *, default: str | None = None, max_chars: int = 4000,
               required: bool = False, choices: Iterable[str] | None = None) -> str:
    path = f"{field}.{key}" if field else key
    if key not in obj or obj[key] is None:
        if required or default is None:
            raise RegEditError(path, "missing", "add a text value")
        return default
    value = obj[key]
    if not isinstance(value, str):
        raise RegEditError(path, f"expected a string, got {type_name(value)}", "write the value as text in quotes")
    if len(value) > max_chars:
        raise RegEditError(path, f"{len(value)} characters is too long", f"shorten it to at most {max_chars} characters")
    if "\x00" in value:
        raise RegEditError(path, "contains a NUL character", "remove control characters")
    if choices is not None:
        choices = list(choices)
        if value not in choices:
            raise RegEditError(path, f"{value[:40]!r} is not allowed", f"use one of: {', '.join(choices)}")
    return value


def get_bool(obj: dict, key: str, field: str, *, default: bool) -> bool:
    path = f"{field}.{key}" if field else key
    if key not in obj or obj[key] is None:
        return default
    value = obj[key]
    if not isinstance(value, bool):
        raise RegEditError(path, f"expected true or false, got {type_name(value)}", "write true or false")
    return value


def get_list(obj: dict, key: str, field: str, *, max_items: int, required: bool = False) -> list:
    path = f"{field}.{key}" if field else key
    if key not in obj or obj[key] is None:
        if required:
            raise RegEditError(path, "missing", "add a list (it may be empty)")
        return []
    value = obj[key]
    if not isinstance(value, list):
        raise RegEditError(path, f"expected a list, got {type_name(value)}", "write a JSON list [...]")
    if len(value) > max_items:
        raise RegEditError(path, f"{len(value)} items is too many", f"use at most {max_items}")
    return value
