"""Paging cursors: opaque tokens that ``list_jobs`` and ``list_audit`` hand out as ``before``.

A cursor is ``[kind, *values]`` as compact JSON in unpadded URL-safe base64. ``uncursor`` checks the
kind and every value with its parser, so a tampered or foreign cursor is ``BadCursor`` (answer 400
bad_input), never a database error.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any

from access_desk.store.errors import BadCursor

_CURSOR_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # job ids are secrets.token_urlsafe(12)


def cursor(kind: str, *parts: Any) -> str:
    raw = json.dumps([kind, *parts], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def uncursor(value: str, kind: str, parsers: tuple[Callable[[Any], Any], ...]) -> list[Any]:
    """The values of a cursor ``cursor`` made, each checked by its parser; anything else (a
    tampered or foreign cursor) is ``BadCursor``, never a database error."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        if not isinstance(parts, list) or len(parts) != len(parsers) + 1 or parts[0] != kind:
            raise ValueError(value)
        return [parse(v) for parse, v in zip(parsers, parts[1:], strict=True)]
    except (binascii.Error, ValueError, TypeError, OverflowError, RecursionError):
        raise BadCursor("not a cursor from this list") from None


def cursor_time(value: Any) -> float:
    """An epoch time in a cursor (a number in [0, 1e12))."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(value)
    seconds = float(value)
    if not 0 <= seconds < 1e12:  # also refuses NaN and infinities
        raise ValueError(value)
    return seconds


def cursor_id(value: Any) -> str:
    """A job id in a cursor."""
    if not isinstance(value, str) or not _CURSOR_ID.fullmatch(value):
        raise ValueError(value)
    return value


def cursor_int(value: Any) -> int:
    """A row id in a cursor (a non-negative 64-bit integer)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError(value)
    return value
