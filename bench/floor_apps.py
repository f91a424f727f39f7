"""The floor apps of ``bench/floor.py``: the least this stack (gunicorn, Flask, requests, PyJWT,
SQLAlchemy) can spend on a panel call, as small WSGI apps served under the same gunicorn
configuration as the product (``gunicorn.conf.py``). Bench code, not product code.

``gunicorn 'bench.floor_apps:create()'`` serves the level named by ``FLOOR_LEVEL``, on the same
route as the product (``POST /resolvers/<key>``) so that the load generator sends the same requests:

- ``a``: bare Flask: the JSON body parsed, a small JSON answer;
- ``aq``: ``a`` plus one indexed query: a primary-key ``SELECT`` on the product's lookup cache
  (``FLOOR_DATABASE_URL``, through the product's ``Store`` engine, so with its SQLite pragmas or
  PostgreSQL pool);
- ``b``: ``a`` plus one ``requests`` call to the simulated Confluence (``FLOOR_API_BASE``, one
  pooled session per process): the request the product makes for that call kind
  (``user/current`` for whoami, ``users-bulk`` for lookupUsers, ``check-access-by-email`` for
  checkAccess) with the call's user token; its JSON answer is the reply;
- ``c``: ``b`` plus a PyJWT RS256 verification of the FIT (``jwt.decode`` with audience, issuer and
  the required claims), against the simulated Forge's key set (``FLOOR_JWKS_URL``, fetched once per
  process).

``counted()`` is the product itself (``app.create_app()``) wrapped to count, per request,
the store statements, transactions and connections it used and the CPU its thread spent in the
app (answered in ``X-Bench-*`` headers) and, with ``BENCH_PROFILE_DIR`` set, to profile each call
sent with ``X-Bench-Profile: 1`` with ``cProfile`` on the thread's CPU clock (one profile per
thread and call kind, ``X-Bench-Kind``, written to that folder when the worker exits); with
``BENCH_STATEMENTS_DIR`` set, every distinct statement the process sends to the store is kept
with the parameters of its first use and written there (JSON lines) when the worker exits, for
``bench/scale.py`` to ``EXPLAIN``.
"""

from __future__ import annotations

import atexit
import cProfile
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jwt
import requests
import sqlalchemy as sa
from flask import Flask, Response, jsonify, request

ISSUER = "forge/invocation-token"
UPSTREAM = {
    "whoami": ("GET", "/wiki/rest/api/user/current?expand=operations", None),
    "lookupUsers": ("POST", "/wiki/api/v2/users-bulk", "accountIds"),
    "checkAccess": ("POST", "/wiki/api/v2/user/access/check-access-by-email", "emails"),
}
LEVELS = ("a", "aq", "b", "c")


def create(level: str | None = None) -> Flask:
    """The floor app of ``level`` (default ``FLOOR_LEVEL``); see the module docstring."""
    level = level or os.environ["FLOOR_LEVEL"]
    if level not in LEVELS:
        raise ValueError(f"FLOOR_LEVEL must be one of {LEVELS}, not {level!r}")
    app = Flask(__name__)
    session = requests.Session()
    session.trust_env = False
    api_base = os.environ.get("FLOOR_API_BASE", "").rstrip("/")
    app_id = os.environ.get("FORGE_APP_ID", "")
    keys: dict[str, Any] = {}
    keys_lock = threading.Lock()
    query: Callable[[dict[str, Any]], object] | None = None
    if level == "aq":
        query = _indexed_query(os.environ["FLOOR_DATABASE_URL"], os.environ["SECRET_KEY"])

    def key_for(token: str) -> Any:
        kid = str(jwt.get_unverified_header(token).get("kid"))
        with keys_lock:
            if not keys:
                jwks = session.get(os.environ["FLOOR_JWKS_URL"], timeout=10).json()
                keys.update({str(k.key_id): k for k in jwt.PyJWKSet.from_dict(jwks).keys})
            return keys[kid].key

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.post("/resolvers/<key>")
    def call(key: str) -> Response:
        payload = request.get_json(force=True, silent=True) or {}
        if level == "c":
            token = request.headers.get("Authorization", "").partition(" ")[2]
            claims = jwt.decode(
                token,
                key_for(token),
                algorithms=["RS256"],
                audience=app_id,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "nbf", "iss", "aud"]},
            )
            assert claims["app"]["installationId"]
        if level in ("b", "c"):
            method, path, field = UPSTREAM[key]
            user = request.headers.get("x-forge-oauth-user", "")
            answer = session.request(
                method,
                api_base + path,
                json={field: payload.get(field, [])} if field else None,
                headers={"Authorization": f"Bearer {user}", "Accept": "application/json"},
                timeout=10,
            )
            return jsonify(answer.json())
        if query is not None:
            query(payload)
        return jsonify({"key": key, "ok": True})

    return app


def _indexed_query(url: str, secret_key: str) -> Callable[[dict[str, Any]], object]:
    """One primary-key read of the product's lookup cache, as the store makes its reads."""
    from access_desk.store import Store
    from access_desk.store.tables import lookup_cache

    store = Store(url, secret_key)
    c = lookup_cache.c
    select = sa.select(c.user).where(
        c.installation_id == sa.bindparam("i"),
        c.caller == sa.bindparam("c"),
        c.account_id == sa.bindparam("a"),
    )

    def run(payload: dict[str, Any]) -> object:
        ids = payload.get("accountIds") or ["nobody"]
        with store.engine.connect() as conn:
            return conn.execute(select, {"i": "floor", "c": "floor", "a": str(ids[0])}).first()

    return run


def write_statements(seen: dict[str, Any], path: Path) -> None:
    """The statements seen (``{"sql", "params"}`` per line; of an ``executemany``, the first
    row's parameters)."""
    with path.open("w") as out:
        for sql, params in list(seen.items()):
            if isinstance(params, list | tuple) and params and isinstance(params[0], dict):
                params = params[0]
            out.write(json.dumps({"sql": sql, "params": params}, default=str) + "\n")


# -- the product, counted and profiled ---------------------------------------------------------

_TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE|JOIN)\s+"?(\w+)"?', re.IGNORECASE)
_VERB = re.compile(r"^\s*(\w+)")


def statement_label(sql: str) -> str:
    """``SELECT admin_checks``, ``INSERT audit``, ...: a statement's verb and the tables it names."""
    found = _VERB.match(sql)
    verb = found.group(1).upper() if found else "?"
    tables = list(dict.fromkeys(_TABLE.findall(sql)))
    return f"{verb} {'+'.join(tables) or '-'}"


class _Counts(threading.local):
    def __init__(self) -> None:
        self.on = False
        self.statements: Counter[str] = Counter()
        self.begins = 0
        self.commits = 0
        self.checkouts = 0


def counted() -> Any:
    """The product (``app.create_app()``) with per-call store counts and, optionally, profiles
    and the statements it sends."""
    from access_desk.app import create_app
    from handlers import Services

    flask_app = create_app()
    services = flask_app.extensions["access_desk"]
    assert isinstance(services, Services)
    engine = services.store.engine
    counts = _Counts()

    seen: dict[str, Any] = {}
    statements_dir = os.environ.get("BENCH_STATEMENTS_DIR")

    behind = Counter[str]()  # statements and transactions of the threads that write in batches

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _statement(conn: Any, cursor: Any, sql: str, parameters: Any, *args: Any) -> None:
        if counts.on:
            counts.statements[statement_label(sql)] += 1
        elif threading.current_thread().name.endswith("-flush"):
            behind["statements"] += 1
        if statements_dir and sql not in seen:
            seen[sql] = parameters

    if statements_dir:
        atexit.register(write_statements, seen, Path(statements_dir) / f"{os.getpid()}.jsonl")

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        if counts.on:
            counts.begins += 1
        elif threading.current_thread().name.endswith("-flush"):
            behind["transactions"] += 1

    @sa.event.listens_for(engine, "commit")
    def _commit(conn: Any) -> None:
        if counts.on:
            counts.commits += 1

    @sa.event.listens_for(engine.pool, "checkout")
    def _checkout(*args: Any) -> None:
        if counts.on:
            counts.checkouts += 1

    folder = os.environ.get("BENCH_PROFILE_DIR")
    profiles: dict[tuple[int, str], cProfile.Profile] = {}
    if folder:

        def dump() -> None:
            for (thread, kind), profile in list(profiles.items()):
                profile.dump_stats(os.path.join(folder, f"{kind}.{os.getpid()}.{thread}.prof"))

        atexit.register(dump)

    inner = flask_app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path == "/healthz":
            return inner(environ, start_response)
        kind = environ.get("HTTP_X_BENCH_KIND") or path.rsplit("/", 1)[-1]
        counts.statements.clear()
        counts.begins = counts.commits = counts.checkouts = 0
        counts.on = True
        profile = None
        if folder and environ.get("HTTP_X_BENCH_PROFILE") == "1":
            key = (threading.get_ident(), kind)
            profile = profiles.setdefault(key, cProfile.Profile(time.thread_time))
        cpu = time.thread_time()

        def answer(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            counts.on = False
            used = counts.statements
            headers = headers + [
                ("X-Bench-Statements", str(sum(used.values()))),
                ("X-Bench-Transactions", str(counts.begins)),
                ("X-Bench-Commits", str(counts.commits)),
                ("X-Bench-Connections", str(counts.checkouts)),
                ("X-Bench-Labels", ";".join(f"{k}={n}" for k, n in sorted(used.items()))),
                ("X-Bench-Cpu-Us", str(round((time.thread_time() - cpu) * 1e6))),
                (
                    "X-Bench-Behind",
                    f"{os.getpid()}:{behind['statements']}:{behind['transactions']}",
                ),
            ]
            return start_response(status, headers, *rest)

        if profile is not None:
            profile.enable()
        try:
            return list(inner(environ, answer))
        finally:
            if profile is not None:
                profile.disable()
            counts.on = False

    flask_app.wsgi_app = wsgi  # type: ignore[method-assign]
    return flask_app
