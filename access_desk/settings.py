"""Settings: the environment (README "Configuration") read once into a frozen dataclass.

``Settings.from_env(environ)`` checks every variable and raises one ``SettingsError`` naming every
problem, so an operator fixes them all in one go. Nothing here reads ``os.environ`` by itself: the
caller passes the mapping (``create_app`` passes ``os.environ``; tests pass a dict).

Every number is finite (``nan`` and ``inf`` are refused). Checks beyond parsing, made by
``from_env`` and again when a ``Settings`` is built directly (``from_env`` names them in the same
one message as the parsing problems):

- ``FORGE_APP_ID`` is ``ari:cloud:ecosystem::app/<uuid>`` (a bare uuid is prefixed);
- ``API_BASE_URL_ALLOWLIST`` prefixes are kept in canonical form
  (``confluence.allowlist.canonical_base``: scheme and host lowercased, default port dropped) and
  each ends with ``/``;
- no ``http://`` URL where tokens or signing keys travel (``API_BASE_URL_ALLOWLIST``,
  ``GRAPHQL_URL``, ``FORGE_JWKS_URL``, ``FORGE_IC_JWKS_URLS``, ``PERSONAL_DATA_URL``), nor as
  ``PUBLIC_BASE_URL`` (the webhook URL senders sign their requests to), unless ``ALLOW_HTTP=1``,
  which ``./dev`` and the tests set for the simulator on loopback;
- ``GRAPHQL_URL`` and ``PERSONAL_DATA_URL`` (where the app's system token goes) share scheme and
  host with an ``API_BASE_URL_ALLOWLIST`` prefix (``confluence.allowlist.on_allowlisted_host``);
- ``FIT_LEEWAY_SECONDS`` is at most ``MAX_FIT_LEEWAY_SECONDS`` (60): more would keep expired
  tokens replayable;
- ``JOB_LEASE_SECONDS`` is longer than twice ``JOB_STEP_SECONDS`` (a step's requests may take up to
  twice the step: its lease must outlast them);
- ``MAX_CALLS_PER_INSTALLATION`` and ``MAX_CALLS_PER_USER``, when given, fit the process's
  threads (``GUNICORN_THREADS``; ``handlers.inflight.Limits``): one installation never takes every
  thread, one user never more than their installation.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from access_desk.call_limits import limits_problems
from access_desk.confluence.allowlist import canonical_base, on_allowlisted_host

APP_ARI_PREFIX = "ari:cloud:ecosystem::app/"
MAX_FIT_LEEWAY_SECONDS = 60.0
_APP_ARI = re.compile(
    re.escape(APP_ARI_PREFIX)
    + r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


class SettingsError(ValueError):
    """The environment is incomplete or wrong; ``problems`` lists each issue in words."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"Access Desk cannot start; fix the environment:\n{lines}")


@dataclass(frozen=True, slots=True)
class Settings:
    app_id: str
    secret_key: str
    jwks_url: str = "https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json"
    # Isolated Cloud: (icLabel, JWKS URL) pairs; a FIT with another icLabel is refused
    ic_jwks_urls: tuple[tuple[str, str], ...] = ()
    api_base_url_allowlist: tuple[str, ...] = ("https://api.atlassian.com/",)
    graphql_url: str = "https://api.atlassian.com/graphql"
    database_url: str = "sqlite:///var/access-desk.sqlite3"
    public_base_url: str | None = None
    call_deadline_seconds: float = 20.0
    upstream_concurrency: int = 4
    upstream_timeout_seconds: float = 10.0
    upstream_max_retries: int = 4
    admin_cache_seconds: float = 60.0
    threads: int = 8  # GUNICORN_THREADS: threads per server process (gunicorn.conf.py)
    max_calls_per_installation: int | None = None  # None: derived from ``threads``
    max_calls_per_user: int | None = None  # None: derived from ``threads``
    lookup_cache_seconds: float = 300.0
    installation_share: float = 0.5  # of the app's quota pool, per window
    user_share: float = 0.5  # of its installation's share, per window
    fit_leeway_seconds: float = 5.0
    background_worker: bool = True
    worker_poll_seconds: float = 2.0
    job_lease_seconds: float = 60.0
    job_step_seconds: float = 15.0
    log_level: str = "INFO"
    jwks_cache_seconds: float = 600.0
    allow_http: bool = False
    personal_data_url: str = "https://api.atlassian.com/app/report-accounts/"
    personal_data_report_days: int = 7
    personal_data_retention_days: int = 90
    follow_up_delays_seconds: tuple[float, ...] = (3600.0, 24 * 3600.0)

    def __post_init__(self) -> None:
        problems = _app_id_problems(self.app_id) + _cross_problems(lambda name: getattr(self, name))
        if problems:
            raise SettingsError(problems)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        problems: list[str] = []
        values: dict[str, Any] = {}

        app_id = environ.get("FORGE_APP_ID", "").strip()
        if not app_id:
            problems.append(
                "FORGE_APP_ID is required (ari:cloud:ecosystem::app/<uuid> or the uuid)"
            )
        else:
            if not app_id.startswith(APP_ARI_PREFIX) and _APP_ARI.fullmatch(
                APP_ARI_PREFIX + app_id
            ):
                app_id = APP_ARI_PREFIX + app_id
            problems += _app_id_problems(app_id)
        values["app_id"] = app_id

        secret_key = environ.get("SECRET_KEY", "").strip()
        if not secret_key:
            problems.append(
                "SECRET_KEY is required: a Fernet key, e.g. from "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            )
        elif not _is_fernet_key(secret_key):
            problems.append("SECRET_KEY is not a Fernet key (32 url-safe base64-encoded bytes)")
        values["secret_key"] = secret_key

        for name, var, parse in _OPTIONAL:
            raw = environ.get(var)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[name] = parse(raw.strip())
            except ValueError as exc:
                problems.append(f"{var}={raw!r} is invalid: {exc}")

        def current(name: str) -> Any:
            return values.get(name, cls.__dataclass_fields__[name].default)

        problems += _cross_problems(current)
        if problems:
            raise SettingsError(problems)
        return cls(**values)


def _app_id_problems(app_id: str) -> list[str]:
    if _APP_ARI.fullmatch(app_id):
        return []
    return [
        f"FORGE_APP_ID={app_id!r} is invalid: it must be the app ARI {APP_ARI_PREFIX}<uuid> "
        "(from manifest.yml app.id after `forge register`) or the bare uuid"
    ]


def _cross_problems(get: Callable[[str], Any]) -> list[str]:
    """The checks between settings (see the module docstring); ``get(field)`` is its value."""
    allowlist = tuple(get("api_base_url_allowlist"))
    public = get("public_base_url")
    problems = _http_problems(
        bool(get("allow_http")),
        API_BASE_URL_ALLOWLIST=allowlist,
        GRAPHQL_URL=(get("graphql_url"),),
        FORGE_JWKS_URL=(get("jwks_url"),),
        FORGE_IC_JWKS_URLS=tuple(url for _, url in get("ic_jwks_urls")),
        PERSONAL_DATA_URL=(get("personal_data_url"),),
        PUBLIC_BASE_URL=(public,) if public else (),
    )
    for var, name in (("GRAPHQL_URL", "graphql_url"), ("PERSONAL_DATA_URL", "personal_data_url")):
        if not on_allowlisted_host(get(name), allowlist):
            problems.append(
                f"{var}={get(name)!r} is not on an API_BASE_URL_ALLOWLIST host "
                f"({', '.join(allowlist)}): the app's system token goes there"
            )
    for name, var in _NUMBERS:
        value = get(name)
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{var}={value!r} is invalid: must be a finite number")
    leeway = get("fit_leeway_seconds")
    if leeway > MAX_FIT_LEEWAY_SECONDS:
        problems.append(
            f"FIT_LEEWAY_SECONDS={leeway:g} is too long: at most {MAX_FIT_LEEWAY_SECONDS:g} s of "
            "clock skew (Forge's tokens live about 25 s; more would keep expired ones replayable)"
        )
    lease, step = get("job_lease_seconds"), get("job_step_seconds")
    if not lease > 2 * step:
        problems.append(
            f"JOB_LEASE_SECONDS={lease:g} must be longer than twice JOB_STEP_SECONDS={step:g}: a "
            "step's requests may take up to twice the step, and its lease must outlast them"
        )
    problems += limits_problems(
        get("threads"), get("max_calls_per_installation"), get("max_calls_per_user")
    )
    return problems


def _http_problems(allow_http: bool, **urls: tuple[str, ...]) -> list[str]:
    """One problem per variable that has an ``http://`` URL, unless ``allow_http``."""
    if allow_http:
        return []
    return [
        f"{var} has an http:// URL ({plain[0]!r}): tokens and signing keys must travel over "
        "https; only ./dev and the tests may set ALLOW_HTTP=1 for the simulator on loopback"
        for var, values in urls.items()
        if (plain := [u for u in values if u.lower().startswith("http://")])
    ]


def _is_fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode())) == 32
    except (binascii.Error, ValueError):
        return False


def _url(raw: str) -> str:
    if not raw.lower().startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return raw


def _allowlist(raw: str) -> tuple[str, ...]:
    """Comma-separated URL prefixes, each in canonical form and ending with ``/``."""
    prefixes = [p.strip() for p in raw.split(",") if p.strip()]
    if not prefixes:
        raise ValueError("needs at least one URL prefix")
    canonical = []
    for p in prefixes:
        _url(p)
        if not p.endswith("/"):
            raise ValueError(f"prefix {p!r} must end with '/' so it cannot match a longer host")
        base = canonical_base(p)
        if base is None:
            raise ValueError(
                f"prefix {p!r} is not a plain URL (no user@, '..', '%', query or fragment)"
            )
        canonical.append(base + "/")
    return tuple(canonical)


IC_LABEL = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _labelled_urls(raw: str) -> tuple[tuple[str, str], ...]:
    """Comma-separated ``label=URL`` pairs (Isolated Cloud labels and their JWKS URLs)."""
    pairs: dict[str, str] = {}
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        label, sep, url = part.partition("=")
        label, url = label.strip(), url.strip()
        if not sep or not IC_LABEL.fullmatch(label):
            raise ValueError(
                f"{part!r} must be label=URL (a label of letters, digits, '.', '_' or '-')"
            )
        if label in pairs:
            raise ValueError(f"label {label!r} is given twice")
        pairs[label] = _url(url)
    return tuple(pairs.items())


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        value = kind(raw)
        if not math.isfinite(value) or value <= 0:
            raise ValueError("must be a finite number greater than 0")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _level(raw: str) -> str:
    level = raw.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return level


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a finite number, 0 or more")
    return value


def _delays(raw: str) -> tuple[float, ...]:
    """Comma-separated seconds, each greater than 0, in ascending order."""
    delays = tuple(float(part) for part in raw.split(","))
    if not all(math.isfinite(d) and d > 0 for d in delays) or list(delays) != sorted(set(delays)):
        raise ValueError("must be seconds greater than 0 in ascending order, e.g. 3600,86400")
    return delays


def _share(raw: str) -> float:
    value = float(raw)
    if not 0 < value <= 1:
        raise ValueError("must be a fraction more than 0 and at most 1, e.g. 0.5")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


# (field, environment variable, parser) for everything with a default.
_OPTIONAL: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
    ("jwks_url", "FORGE_JWKS_URL", _url),
    ("ic_jwks_urls", "FORGE_IC_JWKS_URLS", _labelled_urls),
    ("api_base_url_allowlist", "API_BASE_URL_ALLOWLIST", _allowlist),
    ("graphql_url", "GRAPHQL_URL", _url),
    ("database_url", "DATABASE_URL", str),
    ("public_base_url", "PUBLIC_BASE_URL", lambda raw: _url(raw).rstrip("/")),
    ("call_deadline_seconds", "CALL_DEADLINE_SECONDS", _positive(float)),
    ("upstream_concurrency", "UPSTREAM_CONCURRENCY", _positive(int)),
    ("upstream_timeout_seconds", "UPSTREAM_TIMEOUT_SECONDS", _positive(float)),
    ("upstream_max_retries", "UPSTREAM_MAX_RETRIES", _non_negative_int),
    ("admin_cache_seconds", "ADMIN_CACHE_SECONDS", _positive(float)),
    ("threads", "GUNICORN_THREADS", _positive(int)),
    ("max_calls_per_installation", "MAX_CALLS_PER_INSTALLATION", _positive(int)),
    ("max_calls_per_user", "MAX_CALLS_PER_USER", _positive(int)),
    ("lookup_cache_seconds", "LOOKUP_CACHE_SECONDS", _non_negative_float),
    ("installation_share", "INSTALLATION_SHARE", _share),
    ("user_share", "USER_SHARE", _share),
    ("fit_leeway_seconds", "FIT_LEEWAY_SECONDS", _positive(float)),
    ("background_worker", "BACKGROUND_WORKER", _bool),
    ("worker_poll_seconds", "WORKER_POLL_SECONDS", _positive(float)),
    ("job_lease_seconds", "JOB_LEASE_SECONDS", _positive(float)),
    ("job_step_seconds", "JOB_STEP_SECONDS", _positive(float)),
    ("log_level", "LOG_LEVEL", _level),
    ("jwks_cache_seconds", "FORGE_JWKS_CACHE_SECONDS", _positive(float)),
    ("allow_http", "ALLOW_HTTP", _bool),
    ("personal_data_url", "PERSONAL_DATA_URL", _url),
    ("personal_data_report_days", "PERSONAL_DATA_REPORT_DAYS", _non_negative_int),
    ("personal_data_retention_days", "PERSONAL_DATA_RETENTION_DAYS", _positive(int)),
    ("follow_up_delays_seconds", "FOLLOW_UP_DELAYS_SECONDS", _delays),
)

# the float settings (a Settings built directly must not hold nan or inf either)
_NUMBERS = tuple(
    (n, v) for n, v, _ in _OPTIONAL if Settings.__dataclass_fields__[n].type == "float"
)

assert {f.name for f in fields(Settings)} == {"app_id", "secret_key"} | {n for n, _, _ in _OPTIONAL}
