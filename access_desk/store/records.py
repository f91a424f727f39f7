"""What the store hands out: frozen records of installations, jobs and audit entries, with their
JSON shapes (docs/contract.md §4). Times are epoch seconds; ``to_json`` renders ISO 8601 UTC."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from access_desk.quota.costs import invite_job_points

PAUSED_REASON = (
    "Confluence refused the background calls made as this job's administrator, at least 10 in a "
    "row over an hour (the account may have lost its access or its administrator rights). The "
    "job waits and spends nothing; it is tried again after the next use of Access Desk on this "
    "site."
)


def iso(ts: float) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds, e.g. ``2025-11-29T03:40:00.000Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Installation:
    installation_id: str
    uuid: str
    cloud_id: str
    api_base_url: str
    system_token: str | None = field(repr=False)
    system_token_expires_at: float | None
    webhook_admin: str | None
    webhook_secret_rotated_at: float | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Counts:
    pending: int = 0
    invited: int = 0
    already_has_access: int = 0
    invalid: int = 0
    failed: int = 0
    cancelled: int = 0  # not started: the job was cancelled first

    def to_json(self) -> dict[str, int]:
        return {
            "pending": self.pending,
            "invited": self.invited,
            "alreadyHasAccess": self.already_has_access,
            "invalid": self.invalid,
            "failed": self.failed,
            "cancelled": self.cancelled,
        }


@dataclass(frozen=True, slots=True)
class JobItem:
    position: int
    email: str
    outcome: str
    error: str | None
    checked: bool
    joined: bool | None = None  # an invitee seen with access by a follow-up; None: not followed up

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"email": self.email, "outcome": self.outcome}
        if self.error is not None:
            out["error"] = self.error
        if self.outcome == "invited" and self.joined is not None:
            out["joined"] = self.joined
        return out


@dataclass(frozen=True, slots=True)
class FollowUp:
    """The latest follow-up of an invite job: when it checked, and how many invitees had joined."""

    checked_at: float
    joined: int

    def to_json(self) -> dict[str, Any]:
        return {"checkedAt": iso(self.checked_at), "joined": self.joined}


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    installation_id: str
    kind: str
    source: str
    dry_run: bool
    state: str
    created_at: float
    created_by: str | None
    updated_at: float
    total: int
    counts: Counts
    lease_owner: str | None
    lease_until: float | None
    not_before: float | None
    error: str | None
    items: tuple[JobItem, ...] | None = None  # None: not loaded
    follow_up: FollowUp | None = None  # None before the first follow-up
    follow_up_due: float | None = None  # when the next follow-up is due; None: no more
    cancel_requested: bool = False  # cancelJob asked; the job ends when its holder lets go
    acting_paused_since: float | None = None  # its acting account is paused (dormancy)
    checked: int = 0  # items whose access check is done (final, or pending and checked)
    retried_as: str | None = None  # the one job that retried this one's failed and cancelled items
    wait_reason: str | None = None  # why it waits until ``not_before`` (a failure's reason)

    @property
    def active(self) -> bool:
        """Still has invite work (``queued`` or ``running``); a finished job may still follow up."""
        return self.state in ("queued", "running")

    @property
    def estimated_points(self) -> int:
        """What the job is expected to cost in Confluence's points (``costs``, the cost model):
        checking every email, then inviting those not already settled (unless a dry run)."""
        settled = self.counts.already_has_access + self.counts.invalid + self.counts.cancelled
        return invite_job_points(self.total, dry_run=self.dry_run, settled=settled)

    def paused_json(self) -> dict[str, str] | None:
        """``{"since", "reason"}`` while the job has work and its acting account is paused."""
        if self.acting_paused_since is None or not self.active:
            return None
        return {"since": iso(self.acting_paused_since), "reason": PAUSED_REASON}

    def to_json(self, items: bool = True) -> dict[str, Any]:
        """The ``Job`` of docs/contract.md §4; ``items=True`` needs a job loaded with its items.
        ``notBefore``: until when the job waits (a claim clears it), null while it may run, and
        ``waitReason`` why (``rate_limited``: Confluence's rate limit or points quota;
        ``unavailable``, ``timeout``, ``connection_error``: Confluence did not answer; ``no_token``:
        no token to act as the job's admin yet; ``in_flight``: another worker's invitations are
        awaited). ``checked``: items whose access check is done;
        ``retriedAs``: the job that retried this one's failed and cancelled items, if any.
        ``paused``: why the background worker does not advance it (its acting account is paused:
        Confluence refused its calls), null otherwise."""
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "source": self.source,
            "dryRun": self.dry_run,
            "state": self.state,
            "createdAt": iso(self.created_at),
            "createdBy": self.created_by,
            "updatedAt": iso(self.updated_at),
            "total": self.total,
            "estimatedPoints": self.estimated_points,
            "notBefore": None if self.not_before is None else iso(self.not_before),
            "paused": self.paused_json(),
            "waitReason": None if self.not_before is None else self.wait_reason,
            "counts": self.counts.to_json(),
            "checked": self.checked,
            "retriedAs": self.retried_as,
        }
        if self.follow_up is not None:
            out["followUp"] = self.follow_up.to_json()
        if items:
            if self.items is None:
                raise ValueError("this Job was loaded without its items")
            out["items"] = [item.to_json() for item in self.items]
        return out


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    installation_id: str
    at: float
    actor: str
    action: str
    source: str
    subjects: tuple[str, ...]
    outcome: dict[str, Any] | str

    def to_json(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "actor": self.actor,
            "action": self.action,
            "source": self.source,
            "subjects": list(self.subjects),
            "outcome": self.outcome,
        }


@dataclass(frozen=True, slots=True)
class WebhookState:
    """What ``webhookStatus`` shows of an installation's webhook secret (never the secret)."""

    configured: bool
    rotated_at: float | None
    acting_as: str | None
    previous_valid_until: float | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A webhook delivery accepted (its first arrival) or replayed (its latest repeat)."""

    at: float
    webhook_id: str
    status: str  # "accepted" | "replayed"
    job_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "webhookId": self.webhook_id,
            "status": self.status,
            "jobId": self.job_id,
        }


@dataclass(frozen=True, slots=True)
class AccountRefusals:
    """Background calls acting as one account that Confluence refused in a row (``dormancy``):
    how many, since when, and since when the jobs acting as it are paused (None: not paused)."""

    account_id: str
    refusals: int
    first_refusal_at: float | None
    paused_since: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "accountId": self.account_id,
            "refusals": self.refusals,
            "firstRefusalAt": None if self.first_refusal_at is None else iso(self.first_refusal_at),
            "pausedSince": None if self.paused_since is None else iso(self.paused_since),
        }


@dataclass(frozen=True, slots=True)
class Refusal:
    """A webhook delivery refused with 401 ``invalid_signature``: when, why (``missing_headers``,
    ``stale_timestamp``, ``bad_signature``, ``no_secret``) and the ``webhook-id`` it carried (when
    it had a usable one). Never the body or the signature."""

    at: float
    reason: str
    webhook_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {"at": iso(self.at), "reason": self.reason, "webhookId": self.webhook_id}


@dataclass(frozen=True, slots=True)
class InstallationHealth:
    """What the platform duties know about an installation (for ``diagnose`` and operators).

    ``context_form``: the offline token context ARI that worked last (``"site"``/``"workspace"``);
    ``dormant_reason``: ``"quiet"`` (no scheduled trigger for 72 h) or ``"refused"`` (the site
    refused every background call); ``accounts_refused``: the acting accounts whose background
    calls were answered 401/403/404 since their last success (paused or counting towards it).
    """

    installation_id: str
    last_scheduled_at: float | None
    dormant_since: float | None
    dormant_reason: str | None
    resumed_at: float | None
    accounts_refused: tuple[AccountRefusals, ...]
    context_form: str | None
    offline_token_error: str | None
    offline_token_error_at: float | None
    last_report_at: float | None
    report_error: str | None
    report_error_at: float | None
    duty_due_at: float | None
    housekept_at: float | None
    report_cycle_seconds: float | None = None  # the Cycle-Period the reporting API asked for

    @property
    def dormant(self) -> bool:
        return self.dormant_since is not None

    def to_json(self) -> dict[str, Any]:
        def at(ts: float | None) -> str | None:
            return None if ts is None else iso(ts)

        return {
            "lastScheduledAt": at(self.last_scheduled_at),
            "dormant": self.dormant,
            "dormantSince": at(self.dormant_since),
            "dormantReason": self.dormant_reason,
            "resumedAt": at(self.resumed_at),
            "accountsRefused": [a.to_json() for a in self.accounts_refused],
            "contextForm": self.context_form,
            "offlineTokenError": self.offline_token_error,
            "offlineTokenErrorAt": at(self.offline_token_error_at),
            "lastReportAt": at(self.last_report_at),
            "reportError": self.report_error,
            "reportErrorAt": at(self.report_error_at),
            "reportQueuedAt": at(self.duty_due_at),
            "housekeptAt": at(self.housekept_at),
        }
