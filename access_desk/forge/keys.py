"""Forge's FIT signing keys (the JWKS), cached so that verifying a FIT never waits on Forge's CDN.

``KeySet.get(kid)`` answers from the last good key set whenever it holds ``kid``, whatever any fetch
is doing. Fetches run one at a time on a background thread, and at most one starts per
``cooldown_seconds`` (30 s), whether the previous one succeeded or failed. A fetch starts when:

- the set holds no ``kid`` asked for (or there is no usable set yet): the caller then waits for that
  fetch, or for the one already in flight, at most ``wait_seconds`` (``timeout_seconds`` when there
  is no usable set at all). During the cooldown an unknown ``kid`` is refused at once, so a flood
  of random ``kid``s costs one fetch per 30 s and delays nobody whose key is known;
- the set is older than ``fresh_seconds`` (``FORGE_JWKS_CACHE_SECONDS``): the refresh runs in the
  background and callers keep using the old keys meanwhile.

A failed refresh keeps the last good set, which keeps verifying until it is ``max_stale_seconds``
(24 h) old; after that ``get`` raises ``NoKeys`` until a fetch succeeds. A fetch fails on a network
error or timeout (``timeout_seconds`` per read, twice that for the whole body), a non-200 answer,
a body over ``MAX_BYTES``, or a JWKS with no usable RS256 key.

With a ``shelf`` (the store: ``store.keys``) the last good set and when it was fetched are shared by
every server process and instance: a process reads the shelf on its first ``get`` (a fresh gunicorn
worker, or a server started while the CDN is down, verifies with the keys another process fetched,
within the same 24 hours), reads it again (at most once per ``SHELF_READ_SECONDS``) before
fetching for an unknown ``kid`` (in the caller's thread: a database read, never the CDN) and before
a background refresh (another process may have fetched a fresh set: then no fetch is made), and
writes each good fetch to it. A shelf that fails (the database is down) is logged and skipped: the
keys in memory still verify. Times are wall-clock epoch seconds (``clock``), since they are shared
between processes.

Errors::

    KeyLookupError       (base)
     +-- UnknownKid      the set (fresh or just refetched) has no key with this ``kid``
     +-- NoKeys          no usable key set: never fetched, or the last good one is over 24 h old
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import jwt
import requests

log = logging.getLogger("access_desk.keys")

MAX_BYTES = 256 * 1024  # Forge's JWKS is about 2 KB
COOLDOWN_SECONDS = 30.0
MAX_STALE_SECONDS = 24 * 3600.0
SHELF_READ_SECONDS = 1.0  # how often an unknown kid or a due refresh may read the shelf again


class KeyLookupError(Exception):
    """Base of the errors ``KeySet.get`` raises."""


class UnknownKid(KeyLookupError):
    """No key of the current set has this ``kid``."""


class NoKeys(KeyLookupError):
    """There is no usable key set: Forge's JWKS could not be fetched in the last 24 hours."""


class KeyShelf(Protocol):
    """Where the last good key set of each URL is kept for every process (``store.keys``)."""

    def signing_keys(self, url: str) -> tuple[str, float] | None:
        """The stored JWKS document (JSON text) of ``url`` and when it was fetched, or None."""
        ...

    def save_signing_keys(self, url: str, jwks: str, fetched_at: float) -> None:
        """Keep ``jwks`` as the key set of ``url`` unless a later fetch is already stored."""
        ...


def _background(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="jwks-fetch", daemon=True).start()


class KeySet:
    """The cached JWKS at ``url``. Thread-safe; build one per process and share it."""

    def __init__(
        self,
        url: str,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        fresh_seconds: float = 600.0,
        cooldown_seconds: float = COOLDOWN_SECONDS,
        max_stale_seconds: float = MAX_STALE_SECONDS,
        timeout_seconds: float = 5.0,
        wait_seconds: float = 2.0,
        spawn: Callable[[Callable[[], None]], None] = _background,
        shelf: KeyShelf | None = None,
    ) -> None:
        self._url = url
        self._session = session or requests.Session()
        self._clock = clock
        self._fresh = fresh_seconds
        self._cooldown = cooldown_seconds
        self._max_stale = max_stale_seconds
        self._timeout = timeout_seconds
        self._wait = wait_seconds
        self._spawn = spawn
        self._shelf = shelf
        self._shelf_read_at: float | None = None  # when the shelf was last read
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # when the current set was fetched
        self._started_at: float | None = None  # when the last fetch started (the cooldown)
        self._in_flight: threading.Event | None = None
        self.fetches = 0  # fetches started
        self.failures = 0  # fetches that failed

    def __repr__(self) -> str:
        return f"KeySet(url={self._url!r})"

    def get(self, kid: str) -> jwt.PyJWK:
        """The key named ``kid``; raises ``UnknownKid`` or ``NoKeys`` (see the module docstring)."""
        now = self._clock()
        with self._lock:
            usable = self._usable(now)
            key = self._keys.get(kid) if usable else None
        if key is None and self._read_shelf(now):  # another process may have fetched it
            with self._lock:
                usable = self._usable(now)
                key = self._keys.get(kid) if usable else None
        with self._lock:
            if key is not None:
                assert self._fetched_at is not None
                start = self._claim(now) if now - self._fetched_at >= self._fresh else None
            else:
                start = self._claim(now)
            pending = self._in_flight
        if start is not None:
            try:
                self._spawn(lambda: self._fetch(start))
            except RuntimeError:  # no thread could be started: let a later call try again
                log.exception("could not start the JWKS fetch")
                self._finish(start)
        if key is not None:
            return key
        if pending is not None:
            pending.wait(self._wait if usable else max(self._wait, self._timeout))
        with self._lock:
            usable = self._usable(self._clock())
            key = self._keys.get(kid) if usable else None
        if key is not None:
            return key
        if not usable:
            raise NoKeys("Forge's signing keys could not be fetched")
        raise UnknownKid("no signing key has this kid")

    def _read_shelf(self, now: float) -> bool:
        """Adopt the shelf's set when it is newer than ours and under 24 h old (at most once per
        ``SHELF_READ_SECONDS``); True when a set was adopted."""
        if self._shelf is None:
            return False
        with self._lock:
            if self._shelf_read_at is not None and now - self._shelf_read_at < SHELF_READ_SECONDS:
                return False
            self._shelf_read_at = now
        try:
            stored = self._shelf.signing_keys(self._url)
            if stored is None:
                return False
            document, fetched_at = stored
            if now - fetched_at >= self._max_stale:
                return False
            with self._lock:
                if self._fetched_at is not None and fetched_at <= self._fetched_at:
                    return False
            keys = parse_jwks(json.loads(document))
        except Exception as exc:  # a broken shelf never stops verification from memory
            log.warning("could not read the stored JWKS", extra={"error": str(exc)})
            return False
        with self._lock:
            if self._fetched_at is not None and fetched_at <= self._fetched_at:
                return False
            self._keys, self._fetched_at = keys, fetched_at
        return True

    def _save_shelf(self, document: str, fetched_at: float) -> None:
        if self._shelf is None:
            return
        try:
            self._shelf.save_signing_keys(self._url, document, fetched_at)
        except Exception as exc:  # the keys in memory still verify; the next fetch tries again
            log.warning("could not store the JWKS", extra={"error": str(exc)})

    def _fresh_enough(self) -> bool:
        with self._lock:
            fetched = self._fetched_at
        return fetched is not None and self._clock() - fetched < self._fresh

    def _usable(self, now: float) -> bool:
        return self._fetched_at is not None and now - self._fetched_at < self._max_stale

    def _claim(self, now: float) -> threading.Event | None:
        """Start a fetch unless one is in flight or the cooldown runs (call with the lock held)."""
        if self._in_flight is not None:
            return None
        if self._started_at is not None and now - self._started_at < self._cooldown:
            return None
        self._started_at = now
        self._in_flight = threading.Event()
        self.fetches += 1
        return self._in_flight

    def _fetch(self, done: threading.Event) -> None:
        try:
            if self._read_shelf(self._clock()) and self._fresh_enough():
                return  # another process fetched a set that is still fresh: no fetch needed
            document = self._download()
            keys = parse_jwks(document)
        except Exception as exc:  # whatever went wrong, the fetch failed and the old keys stay
            with self._lock:
                self.failures += 1
            log.warning("JWKS fetch failed; keeping the last good keys", extra={"error": str(exc)})
        else:
            fetched_at = self._clock()
            with self._lock:
                self._keys = keys
                self._fetched_at = fetched_at
            self._save_shelf(json.dumps({"keys": usable_entries(document)}), fetched_at)
        finally:
            self._finish(done)

    def _finish(self, done: threading.Event) -> None:
        with self._lock:
            self._in_flight = None
        done.set()

    def _download(self) -> Any:
        deadline = self._clock() + self._timeout * 2
        body = b""
        with self._session.get(
            self._url, timeout=self._timeout, stream=True, allow_redirects=False
        ) as response:
            if response.status_code != 200:
                raise ValueError(f"the JWKS answered {response.status_code}")
            for chunk in response.iter_content(chunk_size=16 * 1024):
                body += chunk
                if len(body) > MAX_BYTES:
                    raise ValueError("the JWKS is too large")
                if self._clock() > deadline:
                    raise ValueError("the JWKS took too long to arrive")
        return json.loads(body)


def usable_entries(document: Any) -> list[dict[str, Any]]:
    """The entries of a JWKS document that are usable RS256 signing keys, in order."""
    entries = document.get("keys") if isinstance(document, dict) else None
    kept: list[dict[str, Any]] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or entry.get("use", "sig") != "sig":
            continue
        if entry.get("alg", "RS256") != "RS256":
            continue
        try:
            jwt.PyJWK(entry, algorithm="RS256")
        except jwt.PyJWTError:
            continue
        kept.append(entry)
    return kept


def parse_jwks(document: Any) -> dict[str, jwt.PyJWK]:
    """The usable RS256 signing keys of a JWKS document by ``kid``; ``ValueError`` when none."""
    keys = {e["kid"]: jwt.PyJWK(e, algorithm="RS256") for e in usable_entries(document)}
    if not keys:
        raise ValueError("the JWKS has no usable RS256 key")
    return keys
