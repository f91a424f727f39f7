"""Store: everything Access Desk keeps, in SQLite (default) or PostgreSQL, through SQLAlchemy Core.

``Store(url, secret_key)`` builds one engine; ``migrate()`` brings the schema to Alembic's head
(``migrations/``), serialized between processes: a ``pg_advisory_lock`` on PostgreSQL, an exclusive
``flock`` on ``<database>.migrate.lock`` on SQLite. SQLite connections run in WAL mode with a busy
timeout and foreign keys on.

Tenancy: every method that reads or writes tenant data takes ``installation_id`` first and scopes
every query by it; another installation's job, audit entry or secret reads as ``None``/empty.
Secrets (system tokens, offline user tokens, webhook secrets) are stored encrypted with
``Fernet(secret_key)`` and kept out of every ``repr``; a value that no longer decrypts (the key
changed) reads as absent.

Jobs are claimed with leases: ``claim_job`` atomically takes one runnable job (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, a conditional ``UPDATE`` checked by rowcount on SQLite), and writes to a job
(``record_outcomes``, ``finish_job``, ``renew_lease``) happen only while the caller's lease holds.
Item outcomes never go back from final to ``pending``.

Errors::

    StoreError
     +-- BadCursor             a ``before`` cursor that this store did not hand out
     +-- UnknownInstallation   ``set_webhook_secret`` for an installation never stored

Times are epoch seconds from ``clock`` (``time.time``); ``to_json`` renders ISO 8601 UTC.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import functools
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from records import AuditEntry, Counts, Installation, Job, JobItem
from tables import (
    audit,
    installations,
    job_items,
    jobs,
    offline_tokens,
    rate_holds,
    webhook_deliveries,
)

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATE_LOCK_KEY = 0x41636365_7373  # "Access": the pg_advisory_lock key held around migrations
WEBHOOK_PREVIOUS_SECRET_SECONDS = 24 * 3600
OUTCOMES = ("pending", "invited", "alreadyHasAccess", "invalid", "failed")
FINAL_OUTCOMES = frozenset(OUTCOMES) - {"pending"}
_CURSOR_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # job ids are secrets.token_urlsafe(12)
AUDIT_SUBJECTS = 100  # a finished job's audit entry names at most this many emails


class StoreError(Exception):
    """Base of every error this module raises (database errors are SQLAlchemy's own)."""


class BadCursor(StoreError, ValueError):
    """A paging cursor that is malformed or was not made by this store (answer 400 bad_input)."""

    details = {"before": "not a cursor from this list"}


class UnknownInstallation(StoreError, LookupError):
    """The installation has never been stored."""


# -- the store -----------------------------------------------------------------------------------


class Store:
    """All persistent state; thread-safe (one engine, a connection per call). See the module doc."""

    def __init__(self, url: str, secret_key: str, *, clock: Callable[[], float] = time.time):
        self._url = sa.make_url(url)
        self._fernet = Fernet(secret_key.encode())
        self._clock = clock
        self._sqlite = self._url.get_backend_name() == "sqlite"
        self._db_file: Path | None = None
        if self._sqlite:
            database = self._url.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                self._db_file = Path(database)
                self._db_file.parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = sa.create_engine(self._url, connect_args={"timeout": 30})
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = sa.create_engine(self._url, pool_pre_ping=True)

    def __repr__(self) -> str:
        return f"Store({self._url.render_as_string(hide_password=True)!r})"

    def now(self) -> float:
        """The store's clock (epoch seconds); leases and ``not_before`` are compared with it."""
        return self._clock()

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.SQLAlchemyError:
            log.warning("store ping failed", exc_info=True)
            return False

    # -- schema --------------------------------------------------------------------------------

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision``; safe when several processes start at once."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("path_separator", "os")
        with self._migration_lock(), self.engine.connect() as conn:
            if not self._sqlite:
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATE_LOCK_KEY})
                conn.commit()
            try:
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
                conn.commit()
            finally:
                if not self._sqlite:
                    conn.rollback()
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATE_LOCK_KEY})
                    conn.commit()

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self._db_file is None:
            yield
            return
        with open(f"{self._db_file}.migrate.lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    # -- secrets -------------------------------------------------------------------------------

    def _encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode("ascii")

    def _decrypt(self, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return self._fernet.decrypt(value.encode("ascii")).decode()
        except (InvalidToken, ValueError):
            log.warning("a stored secret does not decrypt with SECRET_KEY; treating it as absent")
            return None

    # -- installations -------------------------------------------------------------------------

    def upsert_installation(
        self,
        installation_id: str,
        *,
        cloud_id: str,
        api_base_url: str,
        system_token: str | None = None,
        system_token_expires_at: float | None = None,
    ) -> None:
        """Create or refresh an installation; idempotent.

        A ``system_token`` replaces the stored one only when it expires later (a token without an
        expiry only fills an empty or expired slot), so a late redelivery cannot go backwards.
        """
        now = self._clock()
        with self.engine.begin() as conn:
            conn.execute(
                _insert(conn, installations)
                .values(
                    installation_id=installation_id,
                    uuid=installation_uuid(installation_id),
                    cloud_id=cloud_id,
                    api_base_url=api_base_url,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["installation_id"])
            )
            conn.execute(
                sa.update(installations)
                .where(installations.c.installation_id == installation_id)
                .values(cloud_id=cloud_id, api_base_url=api_base_url, updated_at=now)
            )
            if system_token:
                stored = installations.c.system_token_expires_at
                newer = sa.or_(installations.c.system_token_enc.is_(None), stored.is_(None))
                if system_token_expires_at is not None:
                    newer = sa.or_(newer, stored < system_token_expires_at)
                else:
                    newer = sa.or_(newer, stored <= now)
                conn.execute(
                    sa.update(installations)
                    .where(installations.c.installation_id == installation_id, newer)
                    .values(
                        system_token_enc=self._encrypt(system_token),
                        system_token_expires_at=system_token_expires_at,
                    )
                )

    def installation(self, installation_id: str) -> Installation | None:
        where = installations.c.installation_id == installation_id
        return self._installation_where(where)

    def installation_by_uuid(self, uuid: str) -> Installation | None:
        """By the tail of ``ari:cloud:ecosystem::installation/<uuid>`` (webhook URLs carry it)."""
        return self._installation_where(installations.c.uuid == uuid)

    def _installation_where(self, where: sa.ColumnElement[bool]) -> Installation | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(installations).where(where)).first()
        if row is None:
            return None
        return Installation(
            installation_id=row.installation_id,
            uuid=row.uuid,
            cloud_id=row.cloud_id,
            api_base_url=row.api_base_url,
            system_token=self._decrypt(row.system_token_enc),
            system_token_expires_at=row.system_token_expires_at,
            webhook_admin=row.webhook_admin,
            webhook_secret_rotated_at=row.webhook_secret_rotated_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    # -- webhook secrets -----------------------------------------------------------------------

    def set_webhook_secret(
        self,
        installation_id: str,
        secret: str,
        admin_account_id: str,
        *,
        revoke_previous: bool = False,
    ) -> None:
        """Make ``secret`` current; the one it replaces keeps verifying for 24 h, or stops at once
        with ``revoke_previous``."""
        now = self._clock()
        previous = None if revoke_previous else installations.c.webhook_secret_enc
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(installations)
                .where(installations.c.installation_id == installation_id)
                .values(
                    webhook_secret_prev_enc=previous,
                    webhook_secret_enc=self._encrypt(secret),
                    webhook_admin=admin_account_id,
                    webhook_secret_rotated_at=now,
                    updated_at=now,
                )
            )
            if done.rowcount != 1:
                raise UnknownInstallation("store the installation before its webhook secret")

    def webhook_secrets(self, installation_id: str) -> list[str]:
        """The current secret, then the previous one while it is under 24 h old; [] if never set."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    installations.c.webhook_secret_enc,
                    installations.c.webhook_secret_prev_enc,
                    installations.c.webhook_secret_rotated_at,
                ).where(installations.c.installation_id == installation_id)
            ).first()
        if row is None:
            return []
        found = [self._decrypt(row.webhook_secret_enc)]
        rotated = row.webhook_secret_rotated_at or 0.0
        if self._clock() < rotated + WEBHOOK_PREVIOUS_SECRET_SECONDS:
            found.append(self._decrypt(row.webhook_secret_prev_enc))
        return [s for s in found if s]

    @functools.cached_property
    def _stand_in(self) -> str:
        """Decrypted where no webhook secret is stored, so that path costs what a stored one does."""
        return self._encrypt("whsec_" + base64.b64encode(bytes(32)).decode())

    def webhook_secrets_by_uuid(self, uuid: str) -> tuple[str | None, list[str]]:
        """For ``POST /webhooks/<uuid>``: the installation id (None when unknown) and its secrets
        as ``webhook_secrets`` lists them, in one query that decrypts the two webhook secret slots
        and nothing else. An unknown installation, an empty slot and a uuid no database can hold
        (NUL) decrypt a stand-in instead, so the answer takes as long either way."""
        row = None
        if "\x00" not in uuid:
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(
                        installations.c.installation_id,
                        installations.c.webhook_secret_enc,
                        installations.c.webhook_secret_prev_enc,
                        installations.c.webhook_secret_rotated_at,
                    ).where(installations.c.uuid == uuid)
                ).first()
        current, previous = (
            (row.webhook_secret_enc, row.webhook_secret_prev_enc) if row else (None, None)
        )
        rotated = (row.webhook_secret_rotated_at if row else None) or 0.0
        fresh = self._clock() < rotated + WEBHOOK_PREVIOUS_SECRET_SECONDS
        found = [
            self._decrypt(current or self._stand_in),
            self._decrypt(previous or self._stand_in),
        ]
        kept = [found[0] if current else None, found[1] if previous and fresh else None]
        return (row.installation_id if row else None), [s for s in kept if s]

    def webhook_admin(self, installation_id: str) -> str | None:
        """The admin who last rotated the webhook secret: webhook jobs act as them."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(installations.c.webhook_admin).where(
                    installations.c.installation_id == installation_id
                )
            ).scalar()

    # -- offline user tokens -------------------------------------------------------------------

    def offline_token(self, installation_id: str, account_id: str) -> tuple[str, float] | None:
        """The stored offline token of the user and when it expires (it may have expired)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(offline_tokens.c.token_enc, offline_tokens.c.expires_at).where(
                    offline_tokens.c.installation_id == installation_id,
                    offline_tokens.c.account_id == account_id,
                )
            ).first()
        token = self._decrypt(row.token_enc) if row is not None else None
        return (token, row.expires_at) if row is not None and token else None

    def save_offline_token(
        self, installation_id: str, account_id: str, token: str, expires_at: float
    ) -> None:
        values = {"token_enc": self._encrypt(token), "expires_at": expires_at}
        with self.engine.begin() as conn:
            conn.execute(
                _insert(conn, offline_tokens)
                .values(installation_id=installation_id, account_id=account_id, **values)
                .on_conflict_do_update(
                    index_elements=["installation_id", "account_id"], set_=values
                )
            )

    # -- jobs ----------------------------------------------------------------------------------

    def create_job(
        self,
        installation_id: str,
        *,
        source: str,
        dry_run: bool,
        created_by: str | None,
        emails: Sequence[str],
        kind: str = "invite",
    ) -> Job:
        """A queued job whose items are all ``pending`` and unchecked, in the given order."""
        with self.engine.begin() as conn:
            return self._insert_job(
                conn,
                secrets.token_urlsafe(12),
                installation_id,
                source=source,
                dry_run=dry_run,
                created_by=created_by,
                emails=emails,
                kind=kind,
            )

    def create_webhook_job(
        self,
        installation_id: str,
        webhook_id: str,
        *,
        dry_run: bool,
        created_by: str | None,
        emails: Sequence[str],
    ) -> tuple[str, bool]:
        """The job of a webhook delivery and whether it is new: the delivery is recorded and its job
        created in one transaction, so a repeated (or concurrent) ``webhook_id`` gets the first
        delivery's job and never leaves a second job behind."""
        job_id = secrets.token_urlsafe(12)
        with self.engine.begin() as conn:
            added = conn.execute(
                _insert(conn, webhook_deliveries)
                .values(
                    installation_id=installation_id,
                    webhook_id=webhook_id,
                    job_id=job_id,
                    received_at=self._clock(),
                )
                .on_conflict_do_nothing(index_elements=["installation_id", "webhook_id"])
                .returning(webhook_deliveries.c.job_id)
            ).first()
            if added is None:  # the id was seen: its first delivery's job stands
                stored = _delivery_job(conn, installation_id, webhook_id)
                assert stored is not None
                return stored, False
            self._insert_job(
                conn,
                job_id,
                installation_id,
                source="webhook",
                dry_run=dry_run,
                created_by=created_by,
                emails=emails,
            )
        return job_id, True

    def _insert_job(
        self,
        conn: sa.Connection,
        job_id: str,
        installation_id: str,
        *,
        source: str,
        dry_run: bool,
        created_by: str | None,
        emails: Sequence[str],
        kind: str = "invite",
    ) -> Job:
        now = self._clock()
        row = {
            "id": job_id,
            "installation_id": installation_id,
            "kind": kind,
            "source": source,
            "dry_run": dry_run,
            "state": "queued",
            "created_at": now,
            "created_by": created_by,
            "updated_at": now,
            "total": len(emails),
            "pending": len(emails),
            "invited": 0,
            "already_has_access": 0,
            "invalid": 0,
            "failed": 0,
        }
        items = [
            {"job_id": job_id, "position": i, "email": e, "outcome": "pending", "checked": False}
            for i, e in enumerate(emails)
        ]
        conn.execute(sa.insert(jobs).values(row))
        if items:
            conn.execute(sa.insert(job_items), items)
        return Job(
            id=job_id,
            installation_id=installation_id,
            kind=kind,
            source=source,
            dry_run=dry_run,
            state="queued",
            created_at=now,
            created_by=created_by,
            updated_at=now,
            total=len(emails),
            counts=Counts(pending=len(emails)),
            lease_owner=None,
            lease_until=None,
            not_before=None,
            error=None,
            items=tuple(JobItem(i, e, "pending", None, False) for i, e in enumerate(emails)),
        )

    def job(self, installation_id: str, job_id: str, *, items: bool = True) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(jobs).where(
                    jobs.c.id == job_id, jobs.c.installation_id == installation_id
                )
            ).first()
            if row is None:
                return None
            loaded: tuple[JobItem, ...] | None = None
            if items:
                rows = conn.execute(
                    sa.select(job_items)
                    .where(job_items.c.job_id == job_id)
                    .order_by(job_items.c.position)
                )
                loaded = tuple(
                    JobItem(r.position, r.email, r.outcome, r.error, bool(r.checked)) for r in rows
                )
        return _job(row, loaded)

    def list_jobs(
        self, installation_id: str, limit: int, before: str | None = None
    ) -> tuple[list[Job], str | None]:
        """Jobs without items, newest first; pass the returned cursor as ``before`` for more."""
        query = sa.select(jobs).where(jobs.c.installation_id == installation_id)
        if before is not None:
            created_at, job_id = _uncursor(before, "j", (_cursor_time, _cursor_id))
            query = query.where(
                sa.or_(
                    jobs.c.created_at < created_at,
                    sa.and_(jobs.c.created_at == created_at, jobs.c.id < job_id),
                )
            )
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            found = [_job(r, None) for r in conn.execute(query)]
        if len(found) <= limit:
            return found, None
        last = found[limit - 1]
        return found[:limit], _cursor("j", last.created_at, last.id)

    def count_jobs_by_state(self) -> dict[str, int]:
        """Jobs per state across every installation (for the queue-depth metric)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)
            ).all()
        return {str(state): int(n) for state, n in rows}

    def claim_job(
        self,
        worker_id: str,
        lease_seconds: float,
        *,
        installation_id: str | None = None,
        job_id: str | None = None,
    ) -> Job | None:
        """Lease ONE runnable job to ``worker_id``, oldest first, and return it (without items).

        Runnable: ``queued`` or ``running``, ``not_before`` passed, and no lease or an expired lease
        (a crashed worker's); when ``job_id`` is given, also a lease already held by ``worker_id``
        (the claim then renews it).
        A ``queued`` job becomes ``running``. None when nothing is runnable.
        """
        now = self._clock()
        free = sa.or_(
            jobs.c.lease_owner.is_(None), jobs.c.lease_until.is_(None), jobs.c.lease_until <= now
        )
        if job_id is not None:
            free = sa.or_(free, jobs.c.lease_owner == worker_id)
        runnable = sa.and_(
            jobs.c.state.in_(("queued", "running")),
            sa.or_(jobs.c.not_before.is_(None), jobs.c.not_before <= now),
            free,
        )
        if installation_id is not None:
            runnable = sa.and_(runnable, jobs.c.installation_id == installation_id)
        if job_id is not None:
            runnable = sa.and_(runnable, jobs.c.id == job_id)
        candidates = (
            sa.select(jobs.c.id, jobs.c.installation_id)
            .where(runnable)
            .order_by(jobs.c.created_at, jobs.c.id)
        )
        take = {
            "lease_owner": worker_id,
            "lease_until": now + lease_seconds,
            "state": sa.case((jobs.c.state == "queued", "running"), else_=jobs.c.state),
        }
        claimed: tuple[str, str] | None = None
        if not self._sqlite:
            with self.engine.begin() as conn:
                row = conn.execute(
                    candidates.limit(1).with_for_update(skip_locked=True, of=jobs)
                ).first()
                if row is not None:
                    conn.execute(sa.update(jobs).where(jobs.c.id == row.id).values(take))
                    claimed = (row.installation_id, row.id)
        else:
            # Plain SELECTs run outside a transaction under pysqlite; the conditional UPDATE is
            # the atomic step (SQLite serializes writers), and rowcount says whether we won.
            with self.engine.connect() as conn:
                rows = conn.execute(candidates.limit(8)).all()
            for row in rows:
                with self.engine.begin() as conn:
                    won = conn.execute(
                        sa.update(jobs).where(jobs.c.id == row.id, runnable).values(take)
                    )
                if won.rowcount == 1:
                    claimed = (row.installation_id, row.id)
                    break
        if claimed is None:
            return None
        return self.job(claimed[0], claimed[1], items=False)

    def _held(self, job_id: str, worker_id: str, now: float) -> sa.ColumnElement[bool]:
        return sa.and_(
            jobs.c.id == job_id,
            jobs.c.lease_owner == worker_id,
            jobs.c.lease_until > now,
        )

    def renew_lease(self, job_id: str, worker_id: str, lease_seconds: float) -> bool:
        """Extend a lease still held by ``worker_id``; False when it was lost (or expired)."""
        now = self._clock()
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(jobs)
                .where(self._held(job_id, worker_id, now))
                .values(lease_until=now + lease_seconds)
            )
            return done.rowcount == 1

    def release_job(self, job_id: str, worker_id: str, *, not_before: float | None = None) -> bool:
        """Give up ``worker_id``'s lease; ``not_before`` (epoch) delays the next claim."""
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
        if not_before is not None:
            values["not_before"] = not_before
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.lease_owner == worker_id)
                .values(values)
            )
            return done.rowcount == 1

    def next_items(
        self, installation_id: str, job_id: str, *, checked: bool, limit: int = 100
    ) -> list[str]:
        """Emails of the first ``limit`` pending items that are (not) yet checked, in order."""
        query = (
            sa.select(job_items.c.email)
            .join(jobs, jobs.c.id == job_items.c.job_id)
            .where(
                jobs.c.id == job_id,
                jobs.c.installation_id == installation_id,
                job_items.c.outcome == "pending",
                job_items.c.checked == checked,
            )
            .order_by(job_items.c.position)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def record_outcomes(
        self,
        installation_id: str,
        job_id: str,
        worker_id: str,
        outcomes: dict[str, tuple[str, str | None]],
        *,
        checked: bool | None = None,
    ) -> bool:
        """Set item outcomes (email -> (outcome, error)) and the job's counts in ONE transaction.

        Only while ``worker_id`` holds the job's lease: otherwise nothing is written and False is
        returned. Only ``pending`` items change; ``checked`` (when given) is set on all of them.
        """
        bad = {o for o, _ in outcomes.values()} - set(OUTCOMES)
        if bad:
            raise ValueError(f"unknown outcomes {sorted(bad)}")
        now = self._clock()
        with self.engine.begin() as conn:
            held = conn.execute(
                sa.update(jobs)
                .where(
                    self._held(job_id, worker_id, now), jobs.c.installation_id == installation_id
                )
                .values(
                    updated_at=now,
                    state=sa.case((jobs.c.state == "queued", "running"), else_=jobs.c.state),
                )
            )
            if held.rowcount != 1:
                return False
            if outcomes:
                values: dict[str, Any] = {
                    "outcome": sa.bindparam("b_outcome"),
                    "error": sa.bindparam("b_error"),
                }
                if checked is not None:
                    values["checked"] = checked
                conn.execute(
                    sa.update(job_items)
                    .where(
                        job_items.c.job_id == job_id,
                        job_items.c.email == sa.bindparam("b_email"),
                        job_items.c.outcome == "pending",
                    )
                    .values(values),
                    [
                        {"b_email": email, "b_outcome": outcome, "b_error": error}
                        for email, (outcome, error) in outcomes.items()
                    ],
                )
            self._recount(conn, job_id)
        return True

    def finish_job(
        self,
        installation_id: str,
        job_id: str,
        worker_id: str,
        *,
        state: str = "done",
        error: str | None = None,
    ) -> bool:
        """End a job (``done`` or ``failed``) while holding its lease, and write its audit entry.

        ``failed`` also fails every item still pending, with ``error``. Exactly one audit entry
        per job: the state change and the entry share one transaction. False if the lease is lost.
        """
        if state not in ("done", "failed"):
            raise ValueError("a job finishes 'done' or 'failed'")
        now = self._clock()
        with self.engine.begin() as conn:
            ended = conn.execute(
                sa.update(jobs)
                .where(
                    self._held(job_id, worker_id, now),
                    jobs.c.installation_id == installation_id,
                    jobs.c.state.in_(("queued", "running")),
                )
                .values(
                    state=state, error=error, lease_owner=None, lease_until=None, updated_at=now
                )
            )
            if ended.rowcount != 1:
                return False
            if state == "failed":
                conn.execute(
                    sa.update(job_items)
                    .where(job_items.c.job_id == job_id, job_items.c.outcome == "pending")
                    .values(outcome="failed", error=error or "failed")
                )
            counts = self._recount(conn, job_id)
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one()
            subjects = conn.execute(
                sa.select(job_items.c.email)
                .where(job_items.c.job_id == job_id)
                .order_by(job_items.c.position)
                .limit(AUDIT_SUBJECTS)
            ).scalars()
            outcome: dict[str, Any] = {"jobId": job_id, "state": state, **counts.to_json()}
            if error is not None:
                outcome["error"] = error
            conn.execute(
                sa.insert(audit).values(
                    installation_id=installation_id,
                    at=now,
                    actor=row.created_by or row.source,
                    action="invite.dryRun" if row.dry_run else "invite",
                    source=row.source,
                    subjects=list(subjects),
                    outcome=outcome,
                )
            )
        return True

    def _recount(self, conn: Connection, job_id: str) -> Counts:
        rows = conn.execute(
            sa.select(job_items.c.outcome, sa.func.count())
            .where(job_items.c.job_id == job_id)
            .group_by(job_items.c.outcome)
        )
        by = {outcome: int(n) for outcome, n in rows}
        counts = Counts(
            pending=by.get("pending", 0),
            invited=by.get("invited", 0),
            already_has_access=by.get("alreadyHasAccess", 0),
            invalid=by.get("invalid", 0),
            failed=by.get("failed", 0),
        )
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == job_id)
            .values(
                pending=counts.pending,
                invited=counts.invited,
                already_has_access=counts.already_has_access,
                invalid=counts.invalid,
                failed=counts.failed,
            )
        )
        return counts

    # -- audit ---------------------------------------------------------------------------------

    def add_audit(
        self,
        installation_id: str,
        *,
        actor: str,
        action: str,
        source: str,
        subjects: Sequence[str],
        outcome: dict[str, Any] | str,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(audit).values(
                    installation_id=installation_id,
                    at=self._clock(),
                    actor=actor,
                    action=action,
                    source=source,
                    subjects=list(subjects),
                    outcome=outcome,
                )
            )

    def list_audit(
        self, installation_id: str, limit: int, before: str | None = None
    ) -> tuple[list[AuditEntry], str | None]:
        """Entries newest first; pass the returned cursor as ``before`` for the next page."""
        query = sa.select(audit).where(audit.c.installation_id == installation_id)
        if before is not None:
            (entry_id,) = _uncursor(before, "a", (_cursor_int,))
            query = query.where(audit.c.id < entry_id)
        query = query.order_by(audit.c.id.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            found = [
                AuditEntry(
                    id=r.id,
                    installation_id=r.installation_id,
                    at=r.at,
                    actor=r.actor,
                    action=r.action,
                    source=r.source,
                    subjects=tuple(r.subjects or ()),
                    outcome=r.outcome,
                )
                for r in conn.execute(query)
            ]
        if len(found) <= limit:
            return found, None
        return found[:limit], _cursor("a", found[limit - 1].id)

    # -- webhook deliveries --------------------------------------------------------------------

    def delivery_job(self, installation_id: str, webhook_id: str) -> str | None:
        """The job a webhook delivery made, if that ``webhook_id`` was seen."""
        with self.engine.connect() as conn:
            return _delivery_job(conn, installation_id, webhook_id)

    # -- shared rate-limit state ---------------------------------------------------------------

    def hold(self, key: str, until: float) -> None:
        """Calls for ``key`` wait until ``until`` (epoch); a later hold already stored stays."""
        with self.engine.begin() as conn:
            stmt = _insert(conn, rate_holds).values(key=key, until=until, near_limit=False)
            later = sa.case(
                (rate_holds.c.until < stmt.excluded.until, stmt.excluded.until),
                else_=rate_holds.c.until,
            )
            conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"until": later}))

    def held_until(self, key: str) -> float:
        """Epoch until which calls for ``key`` must wait (0.0: no hold)."""
        return self._rate(key)[0]

    def set_near_limit(self, key: str, near: bool) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                _insert(conn, rate_holds)
                .values(key=key, until=0.0, near_limit=near)
                .on_conflict_do_update(index_elements=["key"], set_={"near_limit": near})
            )

    def is_near_limit(self, key: str) -> bool:
        return self._rate(key)[1]

    def _rate(self, key: str) -> tuple[float, bool]:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(rate_holds.c.until, rate_holds.c.near_limit).where(
                    rate_holds.c.key == key
                )
            ).first()
        return (0.0, False) if row is None else (float(row.until), bool(row.near_limit))


class StoreGate:
    """``confluence.Gate`` backed by the store, so holds are shared by every worker and instance.

    Reads are cached in-process for ``cache_seconds`` (0.5 s) per key; a hold or a near-limit
    change seen here updates the cache at once, and an unchanged near-limit flag is not rewritten.
    Times are wall-clock epoch seconds (``clock``), since instances share them.
    """

    def __init__(
        self, store: Store, *, clock: Callable[[], float] = time.time, cache_seconds: float = 0.5
    ) -> None:
        self._store = store
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, float, bool]] = {}  # key -> (read at, until, near)

    def _state(self, key: str) -> tuple[float, bool]:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1], cached[2]
        until, near = self._store._rate(key)
        with self._lock:
            self._cache[key] = (now, until, near)
        return until, near

    def wait_seconds(self, key: str) -> float:
        return max(0.0, self._state(key)[0] - self._clock())

    def hold(self, key: str, seconds: float) -> None:
        until = self._clock() + max(0.0, seconds)
        self._store.hold(key, until)
        with self._lock:
            read_at, cached_until, near = self._cache.get(key, (0.0, 0.0, False))
            self._cache[key] = (read_at, max(until, cached_until), near)

    def near_limit(self, key: str, near: bool) -> None:
        if self._state(key)[1] == near:
            return
        self._store.set_near_limit(key, near)
        with self._lock:
            read_at, until, _ = self._cache.get(key, (0.0, 0.0, near))
            self._cache[key] = (read_at, until, near)

    def is_near_limit(self, key: str) -> bool:
        return self._state(key)[1]


# -- helpers -------------------------------------------------------------------------------------


def installation_uuid(installation_id: str) -> str:
    """``ari:cloud:ecosystem::installation/<uuid>`` -> ``<uuid>`` (a bare id stays as it is)."""
    return installation_id.rsplit("/", 1)[-1]


def _insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing/do_update`` on both backends."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _job(row: Any, items: tuple[JobItem, ...] | None) -> Job:
    return Job(
        id=row.id,
        installation_id=row.installation_id,
        kind=row.kind,
        source=row.source,
        dry_run=bool(row.dry_run),
        state=row.state,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        total=row.total,
        counts=Counts(
            pending=row.pending,
            invited=row.invited,
            already_has_access=row.already_has_access,
            invalid=row.invalid,
            failed=row.failed,
        ),
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
        not_before=row.not_before,
        error=row.error,
        items=items,
    )


def _cursor(kind: str, *parts: Any) -> str:
    raw = json.dumps([kind, *parts], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _delivery_job(conn: Connection, installation_id: str, webhook_id: str) -> str | None:
    found: str | None = conn.execute(
        sa.select(webhook_deliveries.c.job_id).where(
            webhook_deliveries.c.installation_id == installation_id,
            webhook_deliveries.c.webhook_id == webhook_id,
        )
    ).scalar()
    return found


def _uncursor(cursor: str, kind: str, parsers: tuple[Callable[[Any], Any], ...]) -> list[Any]:
    """The values of a cursor ``_cursor`` made, each checked by its parser; anything else (a
    tampered or foreign cursor) is ``BadCursor``, never a database error."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(parts, list) or len(parts) != len(parsers) + 1 or parts[0] != kind:
            raise ValueError(cursor)
        return [parse(v) for parse, v in zip(parsers, parts[1:], strict=True)]
    except (binascii.Error, ValueError, TypeError, OverflowError, RecursionError):
        raise BadCursor("not a cursor from this list") from None


def _cursor_time(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(value)
    seconds = float(value)
    if not 0 <= seconds < 1e12:  # also refuses NaN and infinities
        raise ValueError(value)
    return seconds


def _cursor_id(value: Any) -> str:
    if not isinstance(value, str) or not _CURSOR_ID.fullmatch(value):
        raise ValueError(value)
    return value


def _cursor_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError(value)
    return value
