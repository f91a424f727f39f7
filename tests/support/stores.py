"""Databases for the store and job tests: SQLite always, PostgreSQL when ``TEST_POSTGRES_URL`` is set
(``./test`` starts a private cluster and sets it), and a clock the tests move by hand."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

KEY = Fernet.generate_key().decode()

BACKENDS: list[object] = ["sqlite"]
if os.environ.get("TEST_POSTGRES_URL"):
    BACKENDS.append(pytest.param("postgres", marks=pytest.mark.postgres))


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database: a temp SQLite file, or a new PostgreSQL database dropped after."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
        return
    admin_url = sa.make_url(os.environ["TEST_POSTGRES_URL"])
    name = f"ad_test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield admin_url.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
