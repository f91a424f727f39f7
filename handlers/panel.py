"""The admin panel's static files, security headers on every answer, and ``GET /healthz``.

Every answer (errors included) carries ``Strict-Transport-Security: max-age=31536000;
includeSubDomains`` (Atlassian's Marketplace security requirements: HSTS of at least a year),
``Cache-Control: no-cache, no-store`` (answers carry personal data: never cached; static files set
their own), a strict CSP, ``nosniff`` and ``no-referrer``.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, jsonify, send_from_directory

import access_desk
from handlers import services


def static_dir() -> Path:
    """The panel's files: ``access_desk/static``, package data in an installed wheel and, in a
    checkout, a symbolic link to the repository's ``static/``."""
    return Path(access_desk.__file__).resolve().parent / "static"


STATIC_DIR = static_dir()

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'none'"
)

HSTS = "max-age=31536000; includeSubDomains"  # one year

bp = Blueprint("panel", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    if services().store.ping():
        return jsonify({"status": "ok"}), 200
    return jsonify({"status": "unavailable", "error": "store_unavailable"}), 503


@bp.get("/")
def index() -> Response:
    return send_from_directory(STATIC_DIR, "index.html", max_age=0)


@bp.get("/<path:name>")
def static_file(name: str) -> Response:
    return send_from_directory(STATIC_DIR, name, max_age=0)


def register(app: Flask) -> None:
    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-cache, no-store")
        response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response
