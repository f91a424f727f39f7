"""Payload parsing shared by the resolvers: lists of entries read by the pasted-list rules
(``entries``), blanks dropped, duplicates removed; the other fields' types."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from access_desk import entries
from resolvers.context import BadInput, TooMany

MAX_ENTRIES = 10_000
MAX_LENGTH = entries.MAX_LENGTH  # longer than any email address (254): free text fields


def entry_list(payload: Mapping[str, Any], field: str, kind: entries.Kind) -> list[str]:
    """``payload[field]`` read by the pasted-list rules (``entries``): each string may
    hold several entries (new lines, commas, semicolons), a first entry naming the column is a
    header, ``Name <addr>`` and ``mailto:addr`` give the address. Distinct entries (emails compared
    with ASCII letters folded, ids exactly) in first-seen order: the valid ones as the rules read
    them, invalid ones as written (trimmed), so a caller can answer for each
    (``entries.accepted`` tells them apart).

    Raises ``BadInput`` for a missing or empty list, a non-string, a string that is not text or
    holds an entry longer than its kind allows (``entries.LIMITS``: 320 characters for an email,
    128 for an account id, the columns' width; each index named), or ``TooMany`` past
    ``MAX_ENTRIES`` entries.
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
    limit = entries.LIMITS[kind]
    long = {
        f"{field}[{i}]": f"longer than {limit} characters"
        for i, v in enumerate(raw)
        if len(v.strip()) > limit and _longest(v, kind) > limit  # one string may hold several
    }
    if long:
        raise BadInput(f"Some entries of '{field}' are longer than {limit} characters.", long)
    result = entries.parse("\n".join(raw), kind).written
    if not result:
        raise BadInput(f"'{field}' has no entries.", {field: "empty"})
    if len(result) > MAX_ENTRIES:
        raise TooMany(
            f"'{field}' has {len(result)} distinct entries; at most {MAX_ENTRIES} are allowed.",
            {field: len(result), "limit": MAX_ENTRIES},
        )
    return result


def _longest(text: str, kind: entries.Kind) -> int:
    """The length of the longest entry ``text`` holds, by the pasted-list rules."""
    return max((len(e) for e in entries.parse(text, kind).written), default=0)


def _is_text(value: str) -> bool:
    """No NUL characters (databases refuse them) and no lone surrogates (not UTF-8)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
