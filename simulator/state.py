"""``PlatformState``: everything the simulated Forge + Confluence + GraphQL gateway knows.

``PlatformState(app_id)`` seeds one installation (``installation``); ``add_installation()`` adds
tenants with their own sites. It mints FITs and issues tokens, and holds the faults, the request
log (``journal``), the points meter (``meter``), the offline token mint limit (``mints``), the
personal data reporting API's state (``account_reports``) and the switches the control API sets.
The HTTP modules (``simulator.confluence``, ``simulator.gateway``, ...) read and change it;
``simulator.platform.Platform`` serves it. The URLs (``url``, ``jwks_url``, ``graphql_url``,
``personal_data_url``, ``allowlist_prefix``, each installation's ``api_base_url``) are known once
it is served. ``quota`` turns on the points meter of the simulated Confluence (see
``simulator.quota``; off by default); ``quota_clock`` is its clock (seconds since the epoch), for
tests. ``samples`` (``./dev`` turns it on) has the host page offer "Try with sample data" on the
panel's forms.

Platform facts it plays (docs/platform.md): user and system tokens live 2 to 4 hours (their JWT
``exp``; ``token_ttl`` picks one in that range for each token); offline tokens are refused unless
the deployed manifest allows impersonation (``impersonation``: the scopes ``manifest.yml`` flags
``allowImpersonation: true``, read by ``simulator.manifest`` unless given); Isolated Cloud
environments (``ic_keys``: a label's own signing keys, published at ``ic_jwks_url(label)``) sign
FITs that carry an ``icLabel`` claim (``mint_fit(ic_label=...)``).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from simulator import forge
from simulator.account_reports import AccountReports
from simulator.faults import Faults
from simulator.journal import Journal, RequestRecord
from simulator.manifest import impersonation_scopes
from simulator.mints import MintLimit
from simulator.quota import Meter, Quota
from simulator.site import Site, rng_uuid
from simulator.tokens import SYSTEM, TokenBook

TOKEN_TTL = (2 * 3600.0, 4 * 3600.0)  # Atlassian: valid for at least ~2, at most ~4 hours


@dataclass(eq=False)
class Installation:
    """One tenant: ``id`` is ``ari:cloud:ecosystem::installation/<uuid>``."""

    uuid: str
    site: Site
    platform_url: str = ""
    environment_id: str = field(default="")

    @property
    def id(self) -> str:
        return f"ari:cloud:ecosystem::installation/{self.uuid}"

    @property
    def cloud_id(self) -> str:
        return self.site.cloud_id

    @property
    def api_base_url(self) -> str:
        return f"{self.platform_url}/ex/confluence/{self.cloud_id}"


class PlatformState:
    def __init__(
        self,
        app_id: str,
        *,
        seed: bool = True,
        seed_users: int = 40,
        invite_delay: float = 0.5,
        latency: float = 0.0,
        remote_url: str | None = None,
        quota: Quota | None = None,
        quota_clock: Callable[[], float] = time.time,
        impersonation: Iterable[str] | None = None,
        samples: bool = False,
    ) -> None:
        self.app_id = app_id
        self.samples = samples  # the host page offers the seeded ids and emails (simulator.host)
        self.seed_users = seed_users if seed else 0
        self.invite_delay = invite_delay
        self.latency = latency
        self.near_limit = False
        self.omit_empty: bool | None = None  # check-access empty lists: None alternates
        self.offline_ttl = 3600
        self.context_ari = "any"  # which offline token context ARI form works: see gateway
        self.account_reports = AccountReports()
        self.remote_url = remote_url  # the backend, for the admin page host
        self.url = ""
        self.app_account_id = f"557058:{app_id.rsplit('/', 1)[-1]}"
        self.keys = forge.SigningKeys()
        self.ic_keys: dict[str, forge.SigningKeys] = {}  # Isolated Cloud label -> its keys
        # scopes the deployed manifest lets the app impersonate users with
        self.impersonation: frozenset[str] = (
            impersonation_scopes() if impersonation is None else frozenset(impersonation)
        )
        self._ttl_rng = random.Random()
        self.tokens = TokenBook()
        self.faults = Faults()
        self.journal = Journal()
        self.meter = Meter(quota, quota_clock)
        self.mints = MintLimit(1000, quota_clock)  # Forge's offline token mints a minute
        self.installations: list[Installation] = []
        self.uninstalled: set[str] = set()  # installations uninstalled since their installed event
        self._lock = threading.Lock()
        self._sequence = itertools.count()
        self.installation = self.add_installation()

    # -- tenants -------------------------------------------------------------------------------

    def add_installation(self) -> Installation:
        """A new tenant with its own deterministically seeded site (own cloudId and users)."""
        with self._lock:
            index = len(self.installations) + 1
            site = Site.seeded(index, self.seed_users, self.invite_delay)
            rng = random.Random(f"access-desk-simulated-installation-{index}")
            inst = Installation(rng_uuid(rng), site, self.url, rng_uuid(rng))
            self.installations.append(inst)
            return inst

    def installation_for_cloud(self, cloud_id: str) -> Installation | None:
        return next((i for i in self.installations if i.cloud_id == cloud_id), None)

    def installation_by_id(self, installation_id: str) -> Installation | None:
        """By ARI or bare uuid."""
        return next((i for i in self.installations if installation_id in (i.id, i.uuid)), None)

    def next_sequence(self) -> int:
        return next(self._sequence)

    # -- tokens --------------------------------------------------------------------------------

    def token_ttl(self) -> float:
        """A token lifetime as Atlassian documents them: between 2 and 4 hours."""
        return self._ttl_rng.uniform(*TOKEN_TTL)

    def user_token(self, inst: Installation, account_id: str, ttl: float | None = None) -> str:
        return self.tokens.issue(inst.id, account_id, self.token_ttl() if ttl is None else ttl)

    def system_token(self, inst: Installation, ttl: float | None = None) -> str:
        return self.tokens.issue(inst.id, SYSTEM, self.token_ttl() if ttl is None else ttl)

    def new_key(self) -> rsa.RSAPrivateKey:
        """An RSA private key that is not in the JWKS (for forged tokens)."""
        return forge.new_rsa_key()

    def rotate_key(self) -> str:
        return self.keys.rotate()

    def mint_fit(
        self,
        inst: Installation,
        account_id: str | None = None,
        *,
        lifetime: int = 25,
        module_key: str = "admin-page",
        module_type: str | None = None,
        claims: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        key: rsa.RSAPrivateKey | bytes | None = None,
        algorithm: str = "RS256",
        ic_label: str | None = None,
    ) -> str:
        """A FIT for ``inst`` (and ``account_id`` as principal); see ``simulator.forge``. With
        ``ic_label``, a FIT of that Isolated Cloud environment: an ``icLabel`` claim, signed
        with the label's own keys (made on first use)."""
        base = forge.fit_claims(
            app_id=self.app_id,
            installation_id=inst.id,
            api_base_url=inst.api_base_url,
            cloud_id=inst.cloud_id,
            site_url=inst.site.url,
            environment_id=inst.environment_id,
            account_id=account_id,
            module_key=module_key,
            lifetime=lifetime,
            module_type=module_type,
        )
        keys = self.keys
        if ic_label is not None:
            keys = self.ic_signing_keys(ic_label)
            base["icLabel"] = ic_label
        kid, current = keys.current
        header = forge.deep_merge({"alg": "RS256", "kid": kid, "typ": "JWT"}, headers or {})
        signer = current if key is None and algorithm == "RS256" else key
        return forge.sign(forge.deep_merge(base, claims or {}), header, signer, algorithm)

    def invocation_headers(
        self,
        inst: Installation,
        account_id: str | None = None,
        *,
        system: bool = True,
        lifetime: int = 25,
    ) -> dict[str, str]:
        """The headers Forge sends to the remote: FIT, user/system tokens, B3 trace ids."""
        headers = {"authorization": f"Bearer {self.mint_fit(inst, account_id, lifetime=lifetime)}"}
        if account_id:
            headers["x-forge-oauth-user"] = self.user_token(inst, account_id)
        if system:
            headers["x-forge-oauth-system"] = self.system_token(inst)
        return headers | forge.trace_headers()

    def trigger_headers(
        self,
        inst: Installation,
        module_key: str,
        module_type: str,
        *,
        lifetime: int = 25,
        system: bool = True,
    ) -> dict[str, str]:
        """The headers of a trigger call as Forge sends them: a FIT with no principal naming the
        trigger module (``module_key``, ``module_type``), the system token (unless the endpoint
        asks for none: ``system``), B3 trace ids."""
        fit = self.mint_fit(
            inst, None, lifetime=lifetime, module_key=module_key, module_type=module_type
        )
        headers = {"authorization": f"Bearer {fit}"}
        if system:
            headers["x-forge-oauth-system"] = self.system_token(inst)
        return headers | forge.trace_headers()

    # -- request log ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        return self.journal.snapshot()

    def clear_requests(self) -> None:
        self.journal.clear()

    # -- URLs (known once served) ----------------------------------------------------------

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    def ic_signing_keys(self, label: str) -> forge.SigningKeys:
        """The Isolated Cloud environment ``label``'s signing keys (made on first use)."""
        with self._lock:
            return self.ic_keys.setdefault(label, forge.SigningKeys())

    def ic_jwks_url(self, label: str) -> str:
        """Where the Isolated Cloud environment ``label`` publishes its signing keys."""
        return f"{self.url}/ic/{label}/.well-known/jwks.json"

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    @property
    def personal_data_url(self) -> str:
        return f"{self.url}/app/report-accounts/"

    @property
    def allowlist_prefix(self) -> str:
        return f"{self.url}/ex/"
