"""One canonical spelling of a base URL, so an allowlist prefix check means what it says.

``canonical_base(raw)`` lowercases the scheme and host, drops a default port (443 for https, 80 for
http), resolves ``.`` and ``..`` path segments and drops trailing slashes. It returns ``None`` (the URL
is refused) for anything a prefix check could be fooled by or that a real base URL never has:
userinfo (``user@host``), a ``..`` that climbs above the root, percent-escapes, backslashes,
whitespace, control or non-ASCII characters, a query or fragment, an empty or malformed host or
port, or a scheme other than http(s). So ``https://api.atlassian.com@evil.com/`` and
``https://api.atlassian.com/../evil`` never pass ``https://api.atlassian.com/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

DEFAULT_PORTS = {"https": 443, "http": 80}
_FORBIDDEN = set("%\\@?#")


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


def on_allowlisted_host(url: str, allowlist: Sequence[str]) -> bool:
    """``url`` has exactly the scheme and host of an allowlisted prefix (and no user info): where
    the app's own system token may go (the GraphQL gateway, the personal data reporting API)."""
    try:
        u = urlsplit(url)
        if u.username or u.password or u.scheme not in ("https", "http"):
            return False
    except ValueError:
        return False
    return any((u.scheme, u.netloc) == urlsplit(p)[:2] for p in allowlist)
