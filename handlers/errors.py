"""ONE table from exception class to (HTTP status, error code); every error answer is JSON.

Bodies are ``{"error": code, "message": text for a person, "details": optional}``. Anything not in the
table is logged with its traceback and answered 500 ``internal_error`` with no detail.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from auth import InvalidToken, KeysUnavailable, UntrustedSite
from jobs import JobNotFound
from resolvers.context import (
    BadInput,
    MissingToken,
    NotAllowed,
    NotFound,
    ResolverError,
    TooMany,
)
from store import BadCursor

log = logging.getLogger("access_desk.errors")


class InvalidSignature(ResolverError):
    """A webhook's signature could not be verified (for any reason: the answer is always the same)."""


class UnknownResolver(ResolverError):
    """No resolver has the requested function key."""


class PayloadTooLarge(ResolverError):
    """The body is larger than the route accepts."""


ERRORS: dict[type[Exception], tuple[int, str]] = {
    InvalidToken: (401, "invalid_token"),
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
}


def error_response(status: int, code: str, message: str, details: object = None) -> Response:
    body: dict[str, object] = {"error": code, "message": message}
    if details is not None:
        body["details"] = details
    response = jsonify(body)
    response.status_code = status
    return response


def register(app: Flask) -> None:
    @app.errorhandler(Exception)
    def _handle(exc: Exception) -> Response:
        for cls in type(exc).__mro__:
            if cls in ERRORS:
                status, code = ERRORS[cls]
                return error_response(status, code, str(exc), getattr(exc, "details", None))
        if isinstance(exc, HTTPException):
            code = (exc.name or "error").lower().replace(" ", "_")
            return error_response(exc.code or 500, code, exc.description or exc.name)
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side.")
