"""What every simulated upstream request goes through: faults, latency, the request log.

``answer(platform, endpoint, handler)`` parses the JSON body and the bearer token, applies the first
matching fault (see ``simulator.faults``) and the platform's ``latency``, calls ``handler(call)``
otherwise, adds ``X-RateLimit-NearLimit: true`` to 200 answers when ``platform.near_limit`` is set,
and logs the request (the token's owner, never the token).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Response, request

from simulator.faults import Fault
from simulator.journal import RequestRecord, now
from simulator.state import PlatformState
from simulator.tokens import Grant, bearer

TITLES = {
    400: ("INVALID_REQUEST_PARAMETER", "Bad Request"),
    401: ("UNAUTHORIZED", "Unauthorized"),
    403: ("FORBIDDEN", "Forbidden"),
    404: ("NOT_FOUND", "Not Found"),
    429: ("TOO_MANY_REQUESTS", "Too Many Requests"),
    500: ("INTERNAL_SERVER_ERROR", "Internal Server Error"),
    503: ("SERVICE_UNAVAILABLE", "Service Unavailable"),
}


@dataclass(frozen=True, slots=True)
class Call:
    """One request as a handler sees it. ``grant`` is None for a missing/unknown/expired token."""

    grant: Grant | None
    body: Any
    body_ok: bool  # False when a body was sent that is not JSON


def error(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    """Confluence's error shape: ``{"errors": [{"status", "code", "title", "detail"}]}``."""
    code, title = TITLES.get(status, ("ERROR", "Error"))
    payload = {"errors": [{"status": status, "code": code, "title": title, "detail": detail}]}
    return json_response(payload, status, headers)


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    response = Response(json.dumps(payload), status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _parse_body() -> tuple[Any, bool]:
    raw = request.get_data(cache=True)
    if not raw:
        return None, True
    try:
        return json.loads(raw), True
    except ValueError:
        return None, False


def _drop() -> Response:
    """Shut the connection down so the client sees it close without an answer."""
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    response = Response(b"", status=500)
    response.headers["Connection"] = "close"
    return response


SCOPE_MISMATCH = "Unauthorized; scope does not match"


def _fault_answer(fault: Fault) -> Response:
    if fault.kind == "scope":  # the API gateway's answer, not Confluence's error shape
        return json_response({"code": 401, "message": SCOPE_MISMATCH}, 401, fault.answer_headers())
    detail = {
        "429": "Rate limit exceeded (simulated).",
        "burst": "Too many requests this second (simulated).",
        "503": "The service is unavailable (simulated).",
        "500": "Something went wrong (simulated).",
        "401": "The token is not valid for this site (simulated).",
        "403": "The app may not do this on this site (simulated).",
        "404": "Not found (simulated).",
    }[fault.kind]
    status = 429 if fault.kind == "burst" else int(fault.kind)
    return error(status, detail, fault.answer_headers())


def answer(platform: PlatformState, endpoint: str, handler: Callable[[Call], Response]) -> Response:
    token = bearer(request.headers.get("Authorization"))
    owner = platform.tokens.owner(token)
    body, body_ok = _parse_body()
    fault = platform.faults.take(endpoint)
    if fault is not None and fault.delay > 0:
        time.sleep(fault.delay)
    if platform.latency > 0:
        time.sleep(platform.latency)

    def record(status: int) -> None:
        platform.journal.add(
            RequestRecord(
                endpoint=endpoint,
                method=request.method,
                path=request.path,
                account_id=owner.account_id if owner else None,
                body=body,
                status=status,
                at=now(),
                installation_id=owner.installation_id if owner else None,
            )
        )

    if fault is not None and fault.kind == "drop":
        record(0)  # before the client sees the connection close, so the log keeps the order
        return _drop()
    if fault is not None and fault.kind not in ("latency", "drop"):
        response = _fault_answer(fault)
    else:
        response = handler(Call(platform.tokens.lookup(token), body, body_ok))
        if response.status_code == 200 and platform.near_limit:
            response.headers["X-RateLimit-NearLimit"] = "true"
    record(response.status_code)
    return response
