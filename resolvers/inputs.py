"""Payload parsing shared by the resolvers: lists are trimmed, blanks dropped, duplicates removed."""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from typing import Any

from resolvers.context import BadInput, TooMany

MAX_ENTRIES = 10_000
MAX_LENGTH = 320  # longer than any email address (254) or account id (128)


def string_list(
    payload: Mapping[str, Any],
    field: str,
    *,
    key: Callable[[str], str] = lambda s: s,
    max_length: int = MAX_LENGTH,
) -> list[str]:
    """``payload[field]`` as distinct, trimmed, non-blank strings in first-seen order.

    ``key`` decides what counts as a duplicate (emails compare case-insensitively and keep the first
    spelling). Raises ``BadInput`` (naming each bad index) or ``TooMany`` past ``MAX_ENTRIES``.
    """
    raw = payload.get(field)
    if raw is None:
        raise BadInput(f"'{field}' is required.", {field: "required"})
    if not isinstance(raw, list):
        raise BadInput(f"'{field}' must be a list of strings.", {field: "must be a list"})
    bad = {f"{field}[{i}]": "must be a string" for i, v in enumerate(raw) if not isinstance(v, str)}
    if bad:
        raise BadInput(f"Every entry of '{field}' must be a string.", bad)
    broken = {f"{field}[{i}]": "is not valid text" for i, v in enumerate(raw) if not _is_text(v)}
    if broken:
        raise BadInput(f"Some entries of '{field}' are not valid text.", broken)
    long = {
        f"{field}[{i}]": f"longer than {max_length} characters"
        for i, v in enumerate(raw)
        if len(v.strip()) > max_length
    }
    if long:
        raise BadInput(f"Some entries of '{field}' are longer than {max_length} characters.", long)
    seen: set[str] = set()
    result: list[str] = []
    for value in raw:
        value = value.strip()
        k = key(value)
        if value and k not in seen:
            seen.add(k)
            result.append(value)
    if not result:
        raise BadInput(f"'{field}' has no entries.", {field: "empty"})
    if len(result) > MAX_ENTRIES:
        raise TooMany(
            f"'{field}' has {len(result)} distinct entries; at most {MAX_ENTRIES} are allowed.",
            {field: len(result), "limit": MAX_ENTRIES},
        )
    return result


def _is_text(value: str) -> bool:
    """No NUL characters (databases refuse them) and no lone surrogates (not UTF-8)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def email_key(email: str) -> str:
    """What makes two emails the same entry: equal after lower-casing ``A``-``Z`` only (``ß`` is not
    ``ss``, the Kelvin sign is not ``K``: those are different addresses)."""
    return email.translate(_ASCII_LOWER)


def only_fields(payload: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(payload) - allowed)
    if extra:
        raise BadInput("Unknown fields in the payload.", {name: "unknown field" for name in extra})


def optional_bool(payload: Mapping[str, Any], field: str, default: bool = False) -> bool:
    value = payload.get(field, default)
    if not isinstance(value, bool):
        raise BadInput(f"'{field}' must be true or false.", {field: "must be a boolean"})
    return value


def optional_int(
    payload: Mapping[str, Any], field: str, default: int, *, low: int, high: int
) -> int:
    value = payload.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInput(
            f"'{field}' must be a whole number from {low} to {high}.",
            {field: f"must be an integer from {low} to {high}"},
        )
    return value


def optional_str(payload: Mapping[str, Any], field: str) -> str | None:
    value = payload.get(field)
    if value is not None and not (isinstance(value, str) and _is_text(value)):
        raise BadInput(f"'{field}' must be a string.", {field: "must be a string"})
    return value
