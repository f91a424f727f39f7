"""The allowlist: the one rule for where a token may go, over one canonical spelling of a URL.

``canonical_base(raw)`` lowercases the scheme and host, drops a default port (443 for https, 80 for
http), resolves ``.`` and ``..`` path segments and drops trailing slashes. It returns ``None`` (the URL
is refused) for anything a prefix check could be fooled by or that a real base URL never has:
userinfo (``user@host``), a ``..`` that climbs above the root, percent-escapes, backslashes,
whitespace, control or non-ASCII characters, a query or fragment, an empty or malformed host or
port, or a scheme other than http(s). So ``https://api.atlassian.com@evil.com/`` and
``https://api.atlassian.com/../evil`` never pass ``https://api.atlassian.com/``.

The rule (``API_BASE_URL_ALLOWLIST``, a tuple of prefixes), used by FIT verification
(``forge.invocation``), the Confluence client, offline tokens and settings:

- ``is_allowed(url, allowlist)``: an API base URL (where a user's token goes) is allowed when its
  canonical form, with a ``/`` after it, starts with the canonical form of a prefix with a ``/``
  after it. So a prefix never matches a longer host, and a refused spelling matches nothing.
- ``on_allowlisted_host(url, allowlist)``: a URL where the app's own system token goes (the GraphQL
  gateway, the personal data reporting API) has exactly the scheme and host of a prefix, by the
  same canonical forms.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from urllib.parse import urlsplit

DEFAULT_PORTS = {"https": 443, "http": 80}
_FORBIDDEN = set("%\\@?#")


@functools.lru_cache(maxsize=4096)  # a pure function, asked about the same few URLs every call
def canonical_base(raw: str) -> str | None:
    """``raw`` in canonical form without a trailing slash, or ``None`` when it is refused."""
    if not raw.isascii() or any(c in _FORBIDDEN or c <= " " or c == "\x7f" for c in raw):
        return None
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname  # lowercased by urlsplit
    if scheme not in DEFAULT_PORTS or not host or not parts.netloc:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = _resolve_dots(parts.path)
    if path is None:
        return None
    return f"{scheme}://{netloc}{path}".rstrip("/")


def _resolve_dots(path: str) -> str | None:
    """``path`` with ``.`` and ``..`` segments resolved; ``None`` when ``..`` climbs above the root."""
    kept: list[str] = []
    segments = path.split("/")[1:] if path.startswith("/") else path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                kept.append("")
        elif segment == "..":
            if not kept:
                return None
            kept.pop()
            if last:
                kept.append("")
        else:
            kept.append(segment)
    return "/" + "/".join(kept) if kept else ""


def is_allowed(url: str, allowlist: Sequence[str]) -> bool:
    """``url`` is under one of the allowlisted prefixes (see the module docstring)."""
    base = canonical_base(url)
    if base is None:
        return False
    for prefix in allowlist:
        canonical = canonical_base(prefix)
        if canonical is not None and (base + "/").startswith(canonical + "/"):
            return True
    return False


def on_allowlisted_host(url: str, allowlist: Sequence[str]) -> bool:
    """``url`` has exactly the scheme and host of an allowlisted prefix (see the module docstring):
    where the app's own system token may go (the GraphQL gateway, the personal data reporting API)."""
    base = canonical_base(url)
    if base is None:
        return False
    return any(
        (canonical := canonical_base(prefix)) is not None and _origin(base) == _origin(canonical)
        for prefix in allowlist
    )


def _origin(canonical: str) -> tuple[str, str]:
    parts = urlsplit(canonical)
    return parts.scheme, parts.netloc
