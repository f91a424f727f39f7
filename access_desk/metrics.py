"""Prometheus metrics: requests, upstream calls by status, retries and rate-limit waits, jobs,
dormant installations, and Confluence's points quota (points spent, 429s received, and each pool's
limit, remaining points and hold read from the ledger at scrape time).

Under gunicorn with several workers, ``PROMETHEUS_MULTIPROC_DIR`` (set by ``gunicorn.conf.py``)
makes every worker write its samples there and ``/metrics`` adds them up, whichever worker answers
(dead workers' files are folded into archives by the master: ``metrics_files``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import requests
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from access_desk import metrics_files

REQUESTS = Counter(
    "access_desk_requests_total", "HTTP requests answered", ["endpoint", "method", "status"]
)
REQUEST_SECONDS = Histogram(
    "access_desk_request_seconds", "Time to answer an HTTP request", ["endpoint"]
)
UPSTREAM = Counter(
    "access_desk_upstream_calls_total", "Calls to Confluence and Atlassian", ["operation", "status"]
)
WAITS = Counter("access_desk_upstream_waits_total", "Retry and rate-limit waits before a call")
WAIT_SECONDS = Counter("access_desk_upstream_wait_seconds_total", "Seconds spent in those waits")
POINTS = Counter(
    "access_desk_quota_points_spent_total",
    "Confluence quota points spent by answered calls (by the cost model in costs.COSTS)",
)
RATE_LIMITED = Counter(
    "access_desk_quota_429_total", "429 (rate limited) answers received from Confluence"
)
JOB_SECONDS = Histogram(
    "access_desk_job_seconds",
    "Time from a job's creation to its end",
    ["state"],
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
)

_OPERATIONS = (
    ("/users-bulk", "users_bulk"),
    ("/check-access-by-email", "check_access"),
    ("/invite-by-email", "invite"),
    ("/user/current", "user_current"),
    ("/graphql", "graphql"),
    ("/report-accounts", "report_accounts"),
)


def instrument(session: requests.Session) -> None:
    """Count every upstream answer by operation and status (a response hook on the session)."""

    def count(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        path = urlsplit(response.url).path
        operation = next((op for suffix, op in _OPERATIONS if suffix in path), "other")
        UPSTREAM.labels(operation, str(response.status_code)).inc()

    if count not in session.hooks["response"]:
        session.hooks["response"].append(count)


def metered(sleep: Callable[[float], None]) -> Callable[[float], None]:
    """``sleep`` that counts the waits the Confluence client makes (retries, Retry-After, holds)."""

    def wait(seconds: float) -> None:
        WAITS.inc()
        WAIT_SECONDS.inc(max(0.0, seconds))
        sleep(seconds)

    return wait


class QueueDepth(Collector):
    """Jobs not yet finished, read from the store at scrape time."""

    def __init__(self, count: Callable[[], dict[str, int]]) -> None:
        self._count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("access_desk_jobs", "Jobs by state", labels=["state"])
        for state, n in sorted(self._count().items()):
            family.add_metric([state], n)
        yield family


class Dormant(Collector):
    """Dormant installations (no scheduled trigger for 72 h, or a site refusing every call),
    read from the store at scrape time."""

    def __init__(self, count: Callable[[], int]) -> None:
        self._count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "access_desk_dormant_installations",
            "Installations whose jobs are paused (dormant)",
            value=self._count(),
        )


class QuotaPools(Collector):
    """Each known quota pool (``pool`` = ``app``, or a site's api_base_url for a site's own pool):
    its points per window, what is left, and the seconds its hold still runs, read at scrape time
    as ``(pool, limit, remaining, held seconds)`` rows (None: not known)."""

    def __init__(
        self, pools: Callable[[], list[tuple[str, int | None, int | None, float]]]
    ) -> None:
        self._pools = pools

    def collect(self) -> Iterator[GaugeMetricFamily]:
        limit = GaugeMetricFamily(
            "access_desk_quota_limit_points", "A quota pool's points per window", labels=["pool"]
        )
        remaining = GaugeMetricFamily(
            "access_desk_quota_remaining_points",
            "Points a quota pool has left in its window, as last reported",
            labels=["pool"],
        )
        held = GaugeMetricFamily(
            "access_desk_quota_held_seconds",
            "Seconds a quota pool's hold (429 or spent window) still runs",
            labels=["pool"],
        )
        for pool, points_limit, left, seconds in self._pools():
            if points_limit is not None:
                limit.add_metric([pool], points_limit)
            if left is not None:
                remaining.add_metric([pool], left)
            held.add_metric([pool], seconds)
        yield limit
        yield remaining
        yield held


def exposition(
    queue: Callable[[], dict[str, int]],
    dormant: Callable[[], int] | None = None,
    pools: Callable[[], list[tuple[str, int | None, int | None, float]]] | None = None,
) -> bytes:
    """The text exposition of every metric (all workers' when multiprocess mode is on)."""
    registry = CollectorRegistry()
    shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if shared:
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        for collector in (
            REQUESTS,
            REQUEST_SECONDS,
            UPSTREAM,
            WAITS,
            WAIT_SECONDS,
            POINTS,
            RATE_LIMITED,
            JOB_SECONDS,
        ):
            registry.register(collector)
    registry.register(QueueDepth(queue))
    if dormant is not None:
        registry.register(Dormant(dormant))
    if pools is not None:
        registry.register(QuotaPools(pools))
    with metrics_files.reading(shared):  # no dead worker's files move meanwhile
        return generate_latest(registry)
