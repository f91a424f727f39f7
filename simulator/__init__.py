"""Stand-ins for the platform (Forge, Confluence, the GraphQL gateway), for ./dev and the tests.

Written from docs/platform.md and Atlassian's OpenAPI document; never imports the app's own modules.
``Platform`` is the entry point (see ``simulator.platform``); ``python -m simulator`` serves one.
Imports flow one way: the state (``simulator.state`` and the modules it holds: site, tokens, quota,
faults, journal, ...) <- the HTTP modules (one blueprint each, ``simulator.edge`` under them) <- the
Flask app (``simulator.wsgi``) <- ``simulator.platform`` and ``__main__``
(tests/simulator/test_imports.py checks it).
"""

from simulator.faults import Fault, Faults
from simulator.journal import RequestRecord
from simulator.platform import Platform, Server
from simulator.quota import Meter, Quota
from simulator.site import Site
from simulator.state import Installation, PlatformState

__all__ = [
    "Fault",
    "Faults",
    "Installation",
    "Meter",
    "Platform",
    "PlatformState",
    "Quota",
    "RequestRecord",
    "Server",
    "Site",
]
