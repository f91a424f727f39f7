"""The OAuth scopes Access Desk's Confluence calls need, and which calls are made with an offline
user token (docs/platform.md, "Manifest" and "Offline user token").

``SCOPES`` maps each operation (the names ``costs`` and ``confluence.client.Client`` use) to its scope.
``OFFLINE`` are the operations made with an offline user token (nobody in session): a job's check
and invite chunks and its follow-ups' checks (``jobs``, through the worker), and the admin check of
``diagnose``'s offline token row (is the webhook admin still an administrator?). An offline client
(``confluence.client.Client.offline``) refuses any other operation, so this list is what the code does.
``impersonated()`` is the set of scopes ``manifest.yml`` must flag ``allowImpersonation: true``
(least privilege: no other scope is; ``tests/forge/test_manifest.py`` pins the two together).
"""

from __future__ import annotations

SCOPES: dict[str, str] = {
    "users_bulk": "read:user:confluence",
    "check_access": "read:configuration:confluence",
    "invite": "read:configuration:confluence",
    "user_current": "read:content-details:confluence",
}
OFFLINE = frozenset({"check_access", "invite", "user_current"})


def impersonated() -> frozenset[str]:
    """The scopes offline calls use: exactly those to flag ``allowImpersonation: true``."""
    return frozenset(SCOPES[operation] for operation in OFFLINE)
