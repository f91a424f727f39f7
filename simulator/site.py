"""A simulated Confluence site: its seeded users, who has access, and pending invites.

``Site.seeded(index, seed_users)`` builds the same site for the same arguments on every run (a
``random.Random`` seeded from the index): one site admin, ``seed_users`` ordinary users (some hide
their email, a few are inactive, a few hide their time zone or picture), two external collaborators
and two closed accounts. ``users`` holds Confluence ``User`` objects exactly as the API returns them
(``email`` is ``""`` when hidden); the real addresses are kept privately for access checks.

Access: the admin, active ordinary users and external collaborators have site access; inactive and
closed accounts do not. ``invite`` records an email and grants access ``invite_delay`` seconds later
(checked lazily, no timers). All methods are thread-safe.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from simulator.people import FIRST_NAMES, LAST_NAMES, TIME_ZONES

EMAIL = re.compile(r"^[^@\s,;<>()\[\]\"]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
DOMAINS = ("example.com", "example.org", "example.net")
EXTERNAL_DOMAIN = "partner.example"


def is_valid_email(email: str) -> bool:
    """A plausible mailbox: one ``@``, a dotted domain, no spaces, at most 254 characters."""
    return len(email) <= 254 and EMAIL.match(email) is not None


def rng_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def account_id(rng: random.Random) -> str:
    """Atlassian account ids come in two shapes: 24 hex digits, or ``712020:<uuid>``."""
    if rng.random() < 0.5:
        return f"{rng.getrandbits(96):024x}"
    return f"712020:{rng_uuid(rng)}"


@dataclass
class Site:
    """One Confluence site with its users. ``url`` is the site URL (``_links.base`` adds /wiki)."""

    cloud_id: str
    url: str
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    admin_id: str = ""
    user_ids: list[str] = field(default_factory=list)
    external_ids: list[str] = field(default_factory=list)
    closed_ids: list[str] = field(default_factory=list)
    inactive_ids: list[str] = field(default_factory=list)
    hidden_email_ids: list[str] = field(default_factory=list)
    sample_new_emails: list[str] = field(default_factory=list)
    invite_delay: float = 0.5
    api_disabled: bool = False
    emails: dict[str, str] = field(default_factory=dict)  # account id -> real address
    invited: dict[str, str] = field(default_factory=dict)  # lower-cased -> spelling when invited
    _access: set[str] = field(default_factory=set)
    _pending: dict[str, float] = field(default_factory=dict)  # lower-cased -> monotonic grant time
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def seeded(cls, index: int, seed_users: int = 40, invite_delay: float = 0.5) -> Site:
        rng = random.Random(f"access-desk-simulated-site-{index}")
        site = cls(rng_uuid(rng), f"https://access-desk-sim-{index}.atlassian.net")
        site.invite_delay = invite_delay
        names = [(f, last) for f in FIRST_NAMES for last in LAST_NAMES]
        rng.shuffle(names)
        first, last = names.pop()
        site.admin_id = site._add(rng, f"{first} {last}", f"{first}.{last}@example.com".lower())
        for n in range(seed_users):
            first, last = names.pop()
            email = f"{first}.{last}@{DOMAINS[n % len(DOMAINS)]}".lower()
            hidden = n % 7 == 3
            status = "inactive" if n % 13 == 5 else "active"
            uid = site._add(rng, f"{first} {last}", email, hidden=hidden, status=status)
            site.user_ids.append(uid)
            if hidden:
                site.hidden_email_ids.append(uid)
            if status == "inactive":
                site.inactive_ids.append(uid)
        for _ in range(2):
            first, last = names.pop()
            email = f"{first}.{last}@{EXTERNAL_DOMAIN}".lower()
            site.external_ids.append(site._add(rng, f"{first} {last}", email, external=True))
        for _ in range(2):
            site.closed_ids.append(site._add(rng, "Former user", "", status="closed"))
        site.sample_new_emails = [f"new.hire{n}@example.com" for n in range(1, 6)]
        site.sample_new_emails.append("Contractor.Two@Example.ORG")
        return site

    def _add(
        self,
        rng: random.Random,
        name: str,
        email: str,
        *,
        hidden: bool = False,
        status: str = "active",
        external: bool = False,
    ) -> str:
        uid = account_id(rng)
        closed = status == "closed"
        default_picture = closed or rng.random() < 0.2
        picture: dict[str, Any] | None = {
            "path": "/wiki/images/icons/profilepics/default.svg"
            if default_picture
            else f"/wiki/aa-avatar/{uid}",
            "width": 48,
            "height": 48,
            "isDefault": default_picture,
        }
        if not closed and rng.random() < 0.05:
            picture = None
        self.users[uid] = {
            "accountId": uid,
            "accountType": "atlassian",
            "accountStatus": status,
            "displayName": name,
            "publicName": name if closed else name.split()[0],
            "email": "" if hidden or closed else email,
            "timeZone": None if closed or rng.random() < 0.1 else rng.choice(TIME_ZONES),
            "personalSpaceId": None if closed or rng.random() < 0.3 else str(rng.randrange(10**8)),
            "isExternalCollaborator": external,
            "profilePicture": picture,
        }
        if email:
            self.emails[uid] = email
            if status == "active":
                self._access.add(email.lower())
        return uid

    def _settle(self) -> None:
        now = time.monotonic()
        for email, at in list(self._pending.items()):
            if at <= now:
                self._access.add(email)
                del self._pending[email]

    def has_access(self, email: str) -> bool:
        with self._lock:
            self._settle()
            return email.lower() in self._access

    def users_with_access_emails(self) -> list[str]:
        """Every address that has access now (seeded ones in the site's spelling, then invitees)."""
        with self._lock:
            self._settle()
            seeded = [e for e in self.emails.values() if e.lower() in self._access]
            known = {e.lower() for e in seeded}
            late = [
                s for low, s in self.invited.items() if low in self._access and low not in known
            ]
            return seeded + late

    def invite(self, email: str) -> bool:
        """Record an invite; False when the address is invalid, has access or is already pending."""
        with self._lock:
            self._settle()
            low = email.lower()
            if not is_valid_email(email) or low in self._access or low in self._pending:
                return False
            self.invited[low] = email
            self._pending[low] = time.monotonic() + self.invite_delay
            return True

    def grant(self, email: str) -> None:
        """Give an address access at once (as if an invite had been accepted)."""
        with self._lock:
            self._access.add(email.lower())
            self._pending.pop(email.lower(), None)
