"""Stand-ins for the platform (Forge, Confluence, the GraphQL gateway), for ./dev and the tests.

Written from docs/platform.md and Atlassian's OpenAPI document; never imports the app's own modules.
``Platform`` is the entry point (see ``simulator.platform``); ``python -m simulator`` serves one.
"""

from simulator.faults import Fault, Faults
from simulator.journal import RequestRecord
from simulator.platform import Installation, Platform, Server
from simulator.quota import Meter, Quota
from simulator.site import Site

__all__ = [
    "Fault",
    "Faults",
    "Installation",
    "Meter",
    "Platform",
    "Quota",
    "RequestRecord",
    "Server",
    "Site",
]
