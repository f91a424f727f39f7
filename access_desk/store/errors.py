"""The errors the store raises (database errors are SQLAlchemy's own)::

StoreError
 +-- BadCursor             a ``before`` cursor that this store did not hand out
 +-- UnknownInstallation   ``set_webhook_secret`` for an installation never stored
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the store raises (database errors are SQLAlchemy's own)."""


class BadCursor(StoreError, ValueError):
    """A paging cursor that is malformed or was not made by this store (answer 400 bad_input)."""

    details = {"before": "not a cursor from this list"}


class UnknownInstallation(StoreError, LookupError):
    """The installation has never been stored."""
