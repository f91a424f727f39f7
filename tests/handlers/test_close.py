"""Closing an app (``Services.close``): what the process keeps back is written, and nothing touches
the database afterwards (a test's app before its database is dropped; a process's shutdown)."""

from __future__ import annotations

import time

import sqlalchemy as sa

from access_desk.settings import Settings
from access_desk.store import Store
from handlers import Services
from tests.conftest import Backend


def test_closing_writes_what_is_kept_back_then_leaves_the_database_alone(
    backend_on_each_db: Backend, db_url: str, settings: Settings
) -> None:
    backend = backend_on_each_db
    svc = backend.client.application.extensions["access_desk"]
    assert isinstance(svc, Services)
    site = backend.platform.installation.site
    found = backend.call("lookupUsers", {"accountIds": site.user_ids[:3] + ["ghost"]})
    assert found.status_code == 200, found.get_data(as_text=True)

    svc.close()
    time.sleep(0.3)  # three flush intervals: a flusher still running would have written by now
    pool = svc.store.engine.pool
    assert isinstance(pool, sa.pool.QueuePool)
    assert pool.checkedin() == 0 and pool.checkedout() == 0  # no connection made after the close

    other = Store(db_url, settings.secret_key)
    try:
        cached = other.cached_users(
            backend.platform.installation.id, site.admin_id, site.user_ids[:3] + ["ghost"], 300
        )
    finally:
        other.close()
    assert set(cached) == {*site.user_ids[:3], "ghost"} and cached["ghost"] is None
