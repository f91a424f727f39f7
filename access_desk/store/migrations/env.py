"""Alembic environment for Access Desk, run programmatically by ``store.Store.migrate()``.

The caller hands over an open connection in ``config.attributes["connection"]`` (so the lock it
holds around the upgrade covers it); there is no ``alembic.ini`` and no offline (SQL script) mode.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through store.Store.migrate(), which passes a connection")

context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
