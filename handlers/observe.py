"""One JSON log line and metrics per request, the trace id in context, and ``GET /metrics``."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, Response, g, request

import logs
import metrics
from handlers import services

log = logging.getLogger("access_desk.http")
bp = Blueprint("observe", __name__)


@bp.get("/metrics")
def metrics_text() -> Response:
    store = services().store
    body = metrics.exposition(store.count_jobs_by_state)
    return Response(body, mimetype="text/plain; version=0.0.4; charset=utf-8")


def register(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        logs.trace_id.set(request.headers.get("x-b3-traceid"))
        logs.installation.set(None)

    @app.after_request
    def _finish(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
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
