"""A database written before the ``access_desk`` package existed opens and migrates under it.

``data/main-0011.sqlite3`` was written by the flat layout's code (``store.Store`` at migration head
"0011", one installation with a system token and one dry-run job) with the secret key below. The
migrations moved into the package (``access_desk/store/migrations``) with the same revision ids,
so Alembic finds the revision such a database is at, and ``migrate`` goes on from there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from access_desk.store import Store
from access_desk.store.base import MIGRATIONS
from access_desk.store.tables import quota_turns

FIXTURE = Path(__file__).resolve().parent / "data" / "main-0011.sqlite3"
KEY = "0B4ZqJm2q8Gq3u0zW9h9V6cHn8m3Yq0rJm9x2QyYk4s="
INSTALLATION = "ari:cloud:ecosystem::installation/old-main"
REVISIONS = [f"{n:04d}" for n in range(1, 12)]  # "0001".."0011", as the flat layout had them


def scripts() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def test_the_revision_ids_and_their_chain_are_unchanged() -> None:
    found = scripts()
    chain = [rev.revision for rev in reversed(list(found.walk_revisions()))]
    assert chain[: len(REVISIONS)] == REVISIONS
    for before, after in zip(REVISIONS, REVISIONS[1:], strict=False):
        assert found.get_revision(after).down_revision == before


def test_a_database_written_by_the_flat_layout_opens_and_migrates(tmp_path: Path) -> None:
    database = tmp_path / "old.sqlite3"
    shutil.copy(FIXTURE, database)
    store = Store(f"sqlite:///{database}", KEY)
    with store.engine.connect() as conn:
        (before,) = conn.exec_driver_sql("SELECT version_num FROM alembic_version").one()
    assert before == "0011"
    assert scripts().get_revision(before) is not None  # still a known revision

    store.migrate()

    with store.engine.connect() as conn:
        versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    assert versions == [(scripts().get_current_head(),)]
    installation = store.installation(INSTALLATION)
    assert installation is not None
    assert installation.api_base_url == "https://api.atlassian.com/ex/confluence/cloud-old"
    assert installation.system_token == "system-token-old"  # still decrypts
    [job], _ = store.list_jobs(INSTALLATION, 10)
    assert job.dry_run and job.created_by == "557058:old-admin"
    assert job.counts.pending == 2
    with store.engine.connect() as conn:  # 0012 carried its queued job's work into the turns
        turns = conn.execute(sa.select(quota_turns.c.installation_id, quota_turns.c.work_at)).all()
    assert turns == [(INSTALLATION, job.created_at)]
    claimed = store.claim_job("worker", 60)  # the background worker's claim finds it in turn
    assert claimed is not None and claimed.id == job.id
