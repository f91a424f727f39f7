"""``create_app(settings=None)``: the one place that wires Access Desk together.

Production runs ``gunicorn 'access_desk.app:create_app()'`` (or plain ``gunicorn``: gunicorn.conf.py
names it); settings then come from the environment, and a missing or invalid variable raises
``SettingsError`` while the app loads, so gunicorn stops with "Worker failed to boot" instead of
restarting workers forever (``gunicorn.conf.py`` checks the environment even before the workers
fork). Each server process migrates the store (serialized
between processes) and, unless ``BACKGROUND_WORKER=false``, starts its background job worker.
"""

from __future__ import annotations

import atexit
import os
import time
import urllib.request
from collections.abc import Callable
from dataclasses import replace

import requests
from flask import Flask
from requests.adapters import HTTPAdapter

from access_desk import logs, metrics
from access_desk.call_limits import Limits
from access_desk.confluence.client import Client, Clients
from access_desk.confluence.transport import Policy
from access_desk.duties import dormancy
from access_desk.duties.personal_data import PersonalData
from access_desk.duties.uninstall import Erasures
from access_desk.forge.invocation import Verifier
from access_desk.forge.keys import KeySet
from access_desk.forge.offline_tokens import OfflineTokens
from access_desk.jobs.runner import JobRunner
from access_desk.jobs.worker import Worker
from access_desk.quota.batched import BatchedQuota
from access_desk.quota.ledger import SharedLedger
from access_desk.quota.mints import Mints
from access_desk.quota.shares import Shares
from access_desk.settings import Settings
from access_desk.store import Store
from access_desk.store.batched_lookups import BatchedLookups
from access_desk.store.records import Installation
from handlers import Services, errors, forge, observe, panel, resolvers, webhooks
from handlers.inflight import InFlight
from handlers.refusals import RefusalNotes
from resolvers.context import AdminCache


def create_app(
    settings: Settings | None = None,
    *,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    keys: KeySet | None = None,
) -> Flask:
    settings = settings or Settings.from_env(os.environ)
    logs.configure(settings.log_level)
    session = session or _session(settings.upstream_concurrency)
    metrics.instrument(session)
    store = Store(
        settings.database_url,
        settings.secret_key,
        follow_up_after=settings.follow_up_delays_seconds,
        clock=wall_clock,
    )
    store.migrate()
    # the ledger's writes go to the store in batches, off the calls' path (quota.batched)
    ledger = SharedLedger(
        BatchedQuota(store), shares=Shares(settings.installation_share, settings.user_share)
    )
    policy = Policy(
        deadline_seconds=settings.call_deadline_seconds,
        concurrency=settings.upstream_concurrency,
        timeout_seconds=settings.upstream_timeout_seconds,
        max_retries=settings.upstream_max_retries,
    )
    clients = Clients(
        session,
        settings.api_base_url_allowlist,
        policy,
        ledger=ledger,
        sleep=metrics.metered(sleep),
        clock=clock,
    )
    tokens = OfflineTokens(
        session,
        settings.graphql_url,
        store,
        allowlist=settings.api_base_url_allowlist,
        timeout_seconds=settings.upstream_timeout_seconds,
        mints=Mints(store, clock=wall_clock),
    )
    runner = JobRunner(store, clock, lease_seconds=settings.job_lease_seconds)
    worker_clients = clients.with_policy(
        replace(policy, deadline_seconds=settings.job_step_seconds * 2)
    )

    def worker_client(installation: Installation, token: str) -> Client:
        """The worker acts through offline user tokens: only ``scopes.OFFLINE`` operations."""
        return worker_clients.for_site(installation.api_base_url, token).offline()

    worker = None
    if settings.background_worker:
        personal_data = PersonalData(
            session,
            settings.personal_data_url,
            store,
            allowlist=settings.api_base_url_allowlist,
            report_days=settings.personal_data_report_days,
            retention_days=settings.personal_data_retention_days,
            timeout_seconds=settings.upstream_timeout_seconds,
        )
        worker = Worker(
            store,
            runner,
            worker_client,
            tokens,
            poll_seconds=settings.worker_poll_seconds,
            lease_seconds=settings.job_lease_seconds,
            step_seconds=settings.job_step_seconds,
            chores=(dormancy.Sweeper(store).chore, personal_data.run_due, Erasures(store).run_due),
        )

    def key_set(url: str) -> KeySet:
        """Forge's keys at ``url``, the last good set shared through the store by every process."""
        return KeySet(url, session=session, fresh_seconds=settings.jwks_cache_seconds, shelf=store)

    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024
    app.extensions["access_desk"] = Services(
        settings=settings,
        verifier=Verifier(
            keys or key_set(settings.jwks_url),
            settings.app_id,
            settings.api_base_url_allowlist,
            leeway=settings.fit_leeway_seconds,
            ic_keys={label: key_set(url) for label, url in settings.ic_jwks_urls},
        ),
        clients=clients,
        offline_tokens=tokens,
        ledger=ledger,
        admins=AdminCache(store, settings.admin_cache_seconds, sleep=sleep),
        clock=clock,
        store=store,
        runner=runner,
        worker=worker,
        refusals=RefusalNotes(store),
        lookups=BatchedLookups(store),
        inflight=InFlight(
            Limits.derive(
                settings.threads,
                settings.max_calls_per_installation,
                settings.max_calls_per_user,
            )
        ),
    )
    errors.register(app)
    panel.register(app)
    observe.register(app)
    for module in (observe, resolvers, forge, webhooks, panel):
        app.register_blueprint(module.bp)
    if worker is not None:
        worker.start()
        atexit.register(worker.stop, 5.0)
    return app


def _session(concurrency: int) -> requests.Session:
    """One pooled session for every upstream call.

    Unless a proxy is configured, the environment is read once here instead of on every request
    (requests scans all of ``os.environ`` for proxy settings per call: a third of its overhead).
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=16, pool_maxsize=max(32, concurrency * 8))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if not urllib.request.getproxies():
        session.trust_env = False
        session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
    return session
