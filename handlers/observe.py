"""One JSON log line and metrics per request, the trace id in context, and ``GET /metrics``."""

from __future__ import annotations

import logging
import re
import time

from flask import Blueprint, Flask, Response, g, request

from access_desk import logs, metrics
from handlers import services

log = logging.getLogger("access_desk.http")
bp = Blueprint("observe", __name__)


@bp.get("/metrics")
def metrics_text() -> Response:
    svc = services()
    store = svc.store
    body = metrics.exposition(
        store.count_jobs_by_state, store.count_dormant_installations, svc.ledger.pool_gauges
    )
    return Response(body, mimetype="text/plain; version=0.0.4; charset=utf-8")


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_TRACE_ID = re.compile(r"[0-9A-Za-z-]{1,64}")  # B3 ids are 16 or 32 hex digits


def register(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        trace = request.headers.get("x-b3-traceid")
        logs.trace_id.set(trace if trace and _TRACE_ID.fullmatch(trace) else None)
        logs.installation.set(None)

    @app.after_request
    def _finish(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        method = request.method if request.method in _METHODS else "other"  # bounded label values
        metrics.REQUESTS.labels(endpoint, method, str(response.status_code)).inc()
        metrics.REQUEST_SECONDS.labels(endpoint).observe(elapsed)
        if endpoint not in ("/healthz", "/metrics"):
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "ms": round(elapsed * 1000, 1),
                },
            )
        return response
