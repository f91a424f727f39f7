"""One chunk of a job step: sending it (check access, or invite) and what its answer means.

``check`` and ``invite`` send one chunk of emails through a ``confluence.client.Client`` and sort the
answer into ``Outcomes`` (email -> (outcome, error)) and a ``Chunk``: a failure that is transient
(``TRANSIENT``: ``rate_limited``, ``unavailable``, ``timeout``, ``connection_error``) keeps its
items pending and the longest such wait wins; with ``keep_401`` entries answered 401 stay pending
too (the caller renews its token); any other failure is final for the item (``failed`` with the
client's reason; for ``api_disabled``, ``confluence.errors.API_DISABLED_HELP``, which says what the site
admin can do, and the chunk is ``disabled``: the job then ends, since no later chunk can work).
The chunk also tells how the site stood: ``refused`` when every entry was answered 401/403/404
(``REFUSED``), ``answered`` when any got a real answer (``dormancy``).
``check`` answers ``invalid`` itself for an entry the pasted-list rules refuse
(``entries``: a space inside, no address): it is never sent to Confluence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from access_desk.confluence.client import Client
from access_desk.confluence.errors import API_DISABLED, API_DISABLED_HELP
from access_desk.confluence.results import Failure
from access_desk.entries import accepted

TRANSIENT = frozenset({"rate_limited", "unavailable", "timeout", "connection_error"})
REFUSED = frozenset({401, 403, 404})
Outcomes = dict[str, tuple[str, str | None]]


@dataclass(frozen=True, slots=True)
class Chunk:
    """What one chunk's answer means for its items and for the site's standing."""

    outcomes: Outcomes
    transient: Failure | None  # the longest transient failure (its items stay pending)
    unauthorized: bool  # entries answered 401 were kept pending (``keep_401``)
    refused: bool  # every entry was answered 401/403/404
    answered: bool  # at least one entry got a real answer
    disabled: bool = False  # the email API is disabled on the site (``api_disabled``)


def check(client: Client, emails: Sequence[str], keep_401: bool) -> Chunk:
    refused: Outcomes = {e: ("invalid", None) for e in emails if not accepted(e, "email")}
    sendable = [e for e in emails if e not in refused]
    if not sendable:  # nothing asked: says nothing of the site
        return Chunk(refused, None, False, refused=False, answered=False)
    result = client.check_access(sendable)
    outcomes: Outcomes = {e: ("alreadyHasAccess", None) for e in result.with_access}
    outcomes.update((e, ("invalid", None)) for e in result.invalid)
    outcomes.update((e, ("pending", None)) for e in result.without_access)
    outcomes.update(refused)
    return _failures(sendable, outcomes, result.failed, keep_401)


def invite(client: Client, emails: Sequence[str], keep_401: bool) -> Chunk:
    result = client.invite(emails)
    outcomes: Outcomes = {e: ("invited", None) for e in result.invited}
    return _failures(emails, outcomes, result.failed, keep_401)


def _failures(
    emails: Sequence[str], outcomes: Outcomes, failed: Sequence[Failure], keep_401: bool
) -> Chunk:
    """Final failures join ``outcomes``; transient ones stay pending (the longest wait wins), and
    so do 401s with ``keep_401``."""
    transient: Failure | None = None
    unauthorized = False
    disabled = False
    refusals = 0
    for failure in failed:
        refusals += failure.status in REFUSED
        if failure.error in TRANSIENT:
            if transient is None or (failure.retry_after or 0.0) > (transient.retry_after or 0.0):
                transient = failure
        elif keep_401 and failure.status == 401:
            unauthorized = True
        elif failure.error == API_DISABLED:
            disabled = True
            outcomes[failure.subject] = ("failed", API_DISABLED_HELP)
        else:
            outcomes[failure.subject] = ("failed", failure.error)
    answered = set(outcomes) | {f.subject for f in failed}
    for email in emails:
        if email not in answered:  # the client accounts exactly; this is only a safety net
            outcomes[email] = ("failed", "bad_response")
    return Chunk(
        outcomes,
        transient,
        unauthorized,
        refused=bool(emails) and refusals >= len(emails),
        answered=len(failed) < len(emails),
        disabled=disabled,
    )
