"""Errors raised by resolvers (mapped to HTTP in ``handlers/errors.py``)::

ResolverError
 +-- BadInput        400 bad_input (``details`` names each bad field or index)
 +-- TooMany         413 too_many
 +-- MissingToken    400 missing_user_token (Forge sent no user token)
 +-- NotAllowed      403 not_allowed (not a Confluence administrator, or it could not be confirmed,
                     or the user token is not the caller's)
 +-- NotFound        404 not_found (absent, or another installation's)
"""

from __future__ import annotations

from typing import Any


class ResolverError(Exception):
    details: Any = None

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.details = details


class BadInput(ResolverError):
    pass


class TooMany(ResolverError):
    pass


class MissingToken(ResolverError):
    pass


class NotAllowed(ResolverError):
    pass


class NotFound(ResolverError):
    pass
