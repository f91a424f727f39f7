"""ONE table from exception class to (HTTP status, error code); every error answer is JSON.

Bodies are ``{"error": code, "message": text for a person, "details": optional}``. Anything not in the
table is logged with its traceback and answered 500 ``internal_error`` with no detail.

Every error answer stays under 64 KB, whatever the request: ``details`` names at most 20 fields or
indexes (a ``"more"`` entry counts the rest), and a message, a name or a value longer than 300
characters is cut short (ending in ``…``).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from access_desk.forge.invocation import (
    InvalidToken,
    KeysUnavailable,
    UnsupportedEnvironment,
    UntrustedSite,
)
from access_desk.jobs.runner import JobNotFound
from access_desk.store import BadCursor
from resolvers.context import (
    BadInput,
    MissingToken,
    NotAllowed,
    NotFound,
    ResolverError,
    TooMany,
)

log = logging.getLogger("access_desk.errors")


class InvalidSignature(ResolverError):
    """A webhook's signature could not be verified (for any reason: the answer is always the same)."""


class UnknownResolver(ResolverError):
    """No resolver has the requested function key."""


class PayloadTooLarge(ResolverError):
    """The body is larger than the route accepts."""


class Busy(ResolverError):
    """Too many calls of this installation or user are in flight; try again in ``retry_after`` s."""

    retry_after = 1


ERRORS: dict[type[Exception], tuple[int, str]] = {
    InvalidToken: (401, "invalid_token"),
    UnsupportedEnvironment: (401, "unsupported_environment"),
    UntrustedSite: (403, "untrusted_site"),
    KeysUnavailable: (503, "keys_unavailable"),
    InvalidSignature: (401, "invalid_signature"),
    BadInput: (400, "bad_input"),
    BadCursor: (400, "bad_input"),
    MissingToken: (400, "missing_user_token"),
    NotAllowed: (403, "not_allowed"),
    NotFound: (404, "not_found"),
    JobNotFound: (404, "not_found"),
    UnknownResolver: (404, "unknown_resolver"),
    TooMany: (413, "too_many"),
    PayloadTooLarge: (413, "too_large"),
    Busy: (429, "busy"),
}


MAX_DETAILS = 20
MAX_TEXT = 300
MAX_ERROR_BYTES = 64 * 1024


def error_response(status: int, code: str, message: str, details: object = None) -> Response:
    body: dict[str, object] = {"error": code, "message": _clip(message)}
    if details is not None:
        body["details"] = _bounded(details, depth=2)
    response = jsonify(body)
    if len(response.get_data()) > MAX_ERROR_BYTES:  # cannot happen with the bounds above
        body.pop("details", None)
        response = jsonify(body)
    response.status_code = status
    return response


def _bounded(value: object, depth: int) -> object:
    """``value`` with at most ``MAX_DETAILS`` entries per list or object (an object counts the
    rest in ``"more"``), texts clipped, and nothing nested deeper than ``depth``."""
    if isinstance(value, str):
        return _clip(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth < 0:
        return "…"
    if isinstance(value, dict):
        items = list(value.items())
        kept: dict[str, object] = {
            _clip(str(k)): _bounded(v, depth - 1) for k, v in items[:MAX_DETAILS]
        }
        if len(items) > MAX_DETAILS:
            kept["more"] = len(items) - MAX_DETAILS
        return kept
    if isinstance(value, list | tuple):
        return [_bounded(v, depth - 1) for v in value[:MAX_DETAILS]]
    return _clip(str(value))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def register(app: Flask) -> None:
    @app.errorhandler(Exception)
    def _handle(exc: Exception) -> Response:
        for cls in type(exc).__mro__:
            if cls in ERRORS:
                status, code = ERRORS[cls]
                response = error_response(status, code, str(exc), getattr(exc, "details", None))
                if isinstance(exc, Busy):
                    response.headers["Retry-After"] = str(exc.retry_after)
                return response
        if isinstance(exc, HTTPException):
            code = (exc.name or "error").lower().replace(" ", "_")
            return error_response(exc.code or 500, code, exc.description or exc.name)
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side.")
