"""``Platform``: the simulated Forge + Confluence + GraphQL gateway, served on one loopback port.

``Platform`` is ``simulator.state.PlatformState`` (installations, tokens, FITs, faults, ...) plus
serving it: ``serve(host, port)`` starts a threaded werkzeug server of the simulator's Flask app
(``simulator.wsgi``) in a daemon thread and returns a ``Server`` (``url``, ``stop()``); the URLs
(``url``, ``jwks_url``, ``graphql_url``, ``personal_data_url``, ``allowlist_prefix``, each
installation's ``api_base_url``) are known from then on. Tokens, FITs and faults work before and
after serving. The Flask app also mounts the control API (``/_sim/``) and the admin page host
(``/``) that calls ``remote_url``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from simulator.state import PlatformState
from simulator.wsgi import create_simulator_app


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class _PlainLogHandler(WSGIRequestHandler):
    """One uncoloured line per request on the ``werkzeug`` logger (for a log file)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.log("info", '"%s" %s %s', self.requestline, code, size)


@dataclass
class Server:
    url: str
    httpd: BaseWSGIServer
    thread: threading.Thread

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


class Platform(PlatformState):
    """The simulated platform and its server (see the module docstring)."""

    def wsgi_app(self) -> Flask:
        return create_simulator_app(self)

    def serve(
        self, host: str = "127.0.0.1", port: int = 0, *, log_requests: bool = False
    ) -> Server:
        """Serve on ``host:port`` (0: any free port) in a daemon thread.

        Requests are logged (one line each on the ``werkzeug`` logger) only with ``log_requests``.
        """
        handler = _PlainLogHandler if log_requests else _QuietHandler
        httpd = make_server(host, port, self.wsgi_app(), threaded=True, request_handler=handler)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{httpd.server_port}"
        for inst in self.installations:
            inst.platform_url = self.url
        thread = threading.Thread(
            target=httpd.serve_forever, args=(0.05,), name="simulator", daemon=True
        )
        thread.start()
        return Server(self.url, httpd, thread)
