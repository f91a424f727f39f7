"""The store's foundation, shared by every aggregate: the engine (SQLite pragmas or a PostgreSQL
pool), the clock, migrations under a cross-process lock, and Fernet encryption of secrets.

``StoreBase(url, secret_key)`` builds one engine; ``migrate()`` brings the schema to Alembic's head
(``migrations/``), serialized between processes: a ``pg_advisory_lock`` on PostgreSQL, an exclusive
``flock`` on ``<database>.migrate.lock`` on SQLite. SQLite connections run in WAL mode with a busy
timeout and foreign keys on. A stored secret that no longer decrypts (the key changed) reads as
absent.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("store")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"  # package data in the wheel
MIGRATE_LOCK_KEY = 0x41636365_7373  # "Access": the pg_advisory_lock key held around migrations
# A real invite job that invited anyone follows up this long after it ended: about an hour, about a
# day (``store.followups``; ``FOLLOW_UP_DELAYS_SECONDS`` sets others).
FOLLOW_UP_AFTER = (3600.0, 24 * 3600.0)


class StoreBase:
    """One engine, one clock and one Fernet key, shared by the aggregate mixins of ``Store``."""

    def __init__(
        self,
        url: str,
        secret_key: str,
        *,
        clock: Callable[[], float] = time.time,
        follow_up_after: tuple[float, ...] = FOLLOW_UP_AFTER,
    ):
        self._url = sa.make_url(url)
        self._fernet = Fernet(secret_key.encode())
        self._clock = clock
        # Seconds after a job ended that its follow-ups are due, ascending (``store.followups``).
        self._follow_up_after = follow_up_after
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


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing/do_update`` on both backends."""
    return insert_for(conn.dialect.name, table)


def insert_for(dialect: str, table: sa.Table) -> Any:
    """``dialect_insert`` by the dialect's name (for a statement built once per dialect)."""
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()
