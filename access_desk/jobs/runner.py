"""Invite jobs: advancing one by a time-boxed step (the background ``worker`` claims them).

``JobRunner.advance`` leases the job (``store.claim_job``; a job leased by someone else is left
alone and returned as it is), then works in chunks of at most 100 items, each chunk's outcomes
committed in its own transaction (``store.record_outcomes``), so a crash loses at most the chunk in
flight and the next holder resumes there:

1. check: unchecked pending items -> ``alreadyHasAccess`` / ``invalid`` / still pending (checked);
2. invite (not for dry runs): checked pending items -> ``invited`` / ``failed``. The chunk's items
   are claimed first (``store.claim_items``: a conditional update committed on its own, while the
   lease holds) for longer than any of the step's requests may take; nobody else sends them while
   the claim lasts, and their outcomes are recorded even if the lease ran out meanwhile, so a lost
   lease never sends an invitation twice. Only a holder that dies mid-chunk leaves its claimed
   items to be sent again once the claim runs out. A step that finds only others' claimed items
   left waits for their outcomes instead of finishing.

A chunk failure that is transient (``rate_limited``, ``unavailable``, ``timeout``,
``connection_error``) keeps its items pending, sets the job's ``not_before`` to now + the failure's
``retry_after`` (else ``retry_seconds``) and its ``wait_reason`` to the failure's reason, and ends
the step; any other failure is final for the item (``failed`` with the client's reason). No new
chunk starts when the slowest chunk so far would not fit in what is left of ``budget_seconds``.
When nothing is left to do the job ends ``done`` (a dry run keeps would-be invites ``pending``)
with one audit entry (``store.finish_job``).

A chunk Confluence answers ``api_disabled`` (a 503 without ``Retry-After`` from the email
endpoints: the API is disabled on the site) ends the job at once, ``failed``, every item left with
``confluence.errors.API_DISABLED_HELP`` as its error: it is reported once and not retried (a follow-up
round is skipped instead).

A job ends ``failed`` (its pending items too) when it cannot get on for ``give_up_seconds``
(24 h) after it was created: transient failures all that time, no offline token for its admin (the
items' error then carries the token exchange's reason), or no admin at all (a webhook job before
anyone rotated the secret, or a job whose creator's account was erased: that fails at once).

Quota (docs/contract.md §6): chunks go through ``client.background()`` (the caller's client is
counted to the job's installation and acting admin: their fair shares), so a step spends only
what the shared ledger says is left above the reserve kept for panel calls and within the
installation's share; a chunk the ledger refuses is not sent, keeps its items pending and the job
waits its turn (``not_before``: the window's end). With
``fair=True`` (the background worker) a step also ends after any chunk when another installation's
job is waiting to be claimed, so turns on a shared pool go chunk by chunk (claims prefer the
installation served longest ago, ``store.claim_job``).

In the background worker (``count_refusals``), after each chunk the runner tells ``dormancy``
whether Confluence refused it (every entry answered 401/403/404) or answered, for the job's acting
account; an account that gets paused ends the step at once. A panel's ``getJob`` step counts
neither way.

Cancelling (``JobRunner.cancel``, for ``cancelJob``): ``store.request_cancel`` marks the job and,
when nobody holds its lease, ends it at once: items not started (every pending item of a real job,
the unchecked ones of a dry run) become ``cancelled`` (their own outcome) and the job ends
``failed`` (it did not do all it was asked; ``done`` only when nothing was left to cancel). When a
worker holds the lease, its chunk in flight is recorded as usual; at the next chunk boundary
``_work`` sees the mark and stops, and the release of the lease ends the job the same way (so does
any later release, e.g. after a rate-limit wait, or the next claim once a crashed holder's lease runs
out). ``cancel`` waits up to ``wait_seconds`` for that, then answers the job as it stands.

Follow-ups: a real invite job that invited anyone follows up once about an hour and once about a
day after it ended (``FOLLOW_UP_DELAYS_SECONDS``): the store makes it claimable again when one is
due, and ``advance`` then checks access for its ``invited`` items (those not yet seen to have
joined), chunk by chunk like a job step (``store.record_joined`` under the lease, 401s and refusals
handled the same way), and completes the round (``store.complete_follow_up``: the job's
``followUp`` and the next due time). Transient failures wait like job steps; a round that cannot
get on for ``give_up_seconds`` after it was due (no token for its admin, say) is skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from access_desk import metrics
from access_desk.confluence.client import Client
from access_desk.confluence.errors import API_DISABLED_HELP
from access_desk.confluence.results import Failure
from access_desk.duties import dormancy
from access_desk.jobs.chunks import Chunk, check, invite
from access_desk.store import Store
from access_desk.store.records import Job

log = logging.getLogger("jobs")  # one logger for the job engine: the runner and the worker

CHUNK = 100
CANCEL_POLL_SECONDS = 0.1  # how often ``cancel`` looks whether the holder has let go
IN_FLIGHT_RETRY_SECONDS = 1.0  # a job whose last invites are another holder's looks again


@dataclass(frozen=True, slots=True)
class _Step:
    """One ``advance``: who works, since when, for how long, and how."""

    worker_id: str
    start: float
    budget: float
    keep_401: bool
    fair: bool
    count_refusals: bool


def finish(store: Store, job: Job, worker_id: str, state: str, error: str | None = None) -> None:
    """End ``job`` (see ``Store.finish_job``) and record how long it took, creation to end."""
    if store.finish_job(job.installation_id, job.id, worker_id, state=state, error=error):
        metrics.JOB_SECONDS.labels(state).observe(max(0.0, store.now() - job.created_at))


@dataclass(frozen=True, slots=True)
class Wait:
    """A job that cannot get on now: until when (epoch) and why (the failure's reason, e.g.
    ``rate_limited``; ``in_flight`` while another worker's claimed invites are awaited); stored as
    its ``not_before`` and ``wait_reason``."""

    until: float
    reason: str


@dataclass(frozen=True, slots=True)
class _Batch:
    """One chunk of a round: how to send it and how to record its outcomes (False: the lease
    was lost)."""

    send: Callable[[], Chunk]
    record: Callable[[Chunk], bool]


@dataclass(frozen=True, slots=True)
class _Over:
    """The round is over for this step: with a ``Wait`` when it must wait."""

    wait: Wait | None = None


@dataclass(frozen=True, slots=True)
class _Round:
    """What a step does (job work or a follow-up round), for the one loop ``JobRunner._chunks``:
    ``take`` the next chunk (a ``_Batch``, ``_Over``, or None to look again), what to do when the
    email API is disabled, and how to wait after a transient failure."""

    take: Callable[[], _Batch | _Over | None]
    disabled: Callable[[], None]
    later: Callable[[Failure], Wait | None]


class JobNotFound(LookupError):
    """No such job in this installation."""


class TokenRefused(Exception):
    """Confluence answered the step's token with 401; the chunk's refused entries stay pending."""


class JobRunner:
    """Advances jobs with a given Confluence client; see the module docstring."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], float] = time.monotonic,
        *,
        lease_seconds: float = 60.0,
        chunk_size: int = CHUNK,
        retry_seconds: float = 30.0,
        give_up_seconds: float = 24 * 3600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 1 <= chunk_size <= CHUNK:
            raise ValueError(f"chunk_size must be 1..{CHUNK}")
        self._store = store
        self._clock = clock
        self._sleep = sleep
        self._lease = lease_seconds
        self._chunk = chunk_size
        self._retry = retry_seconds
        self._give_up = give_up_seconds

    @property
    def give_up_seconds(self) -> float:
        return self._give_up

    def advance(
        self,
        installation_id: str,
        job_id: str,
        client: Client,
        *,
        worker_id: str,
        budget_seconds: float,
        keep_401: bool = False,
        fair: bool = False,
        count_refusals: bool = False,
    ) -> Job:
        """One step of at most ``budget_seconds``; returns the job (without items) afterwards.

        Raises ``JobNotFound`` if the installation has no such job. With ``keep_401``, entries
        Confluence answers with 401 stay pending and the step ends with ``TokenRefused`` (the
        caller renews its token and tries again); otherwise they fail ``not_permitted``. With
        ``count_refusals`` (the background worker), refusals count towards pausing the job's
        acting account (``dormancy``).
        """
        start = self._clock()
        job = self._store.claim_job(
            worker_id, self._lease, installation_id=installation_id, job_id=job_id
        )
        if job is not None:
            wait: Wait | None = None
            try:
                step = _Step(worker_id, start, budget_seconds, keep_401, fair, count_refusals)
                round_ = self._work if job.active else self._follow_up
                wait = self._chunks(job, step, round_(job, client.background(), step))
            finally:
                self._store.release_job(
                    job.id,
                    worker_id,
                    not_before=None if wait is None else wait.until,
                    wait_reason=None if wait is None else wait.reason,
                )
        current = self._store.job(installation_id, job_id, items=False)
        if current is None:
            raise JobNotFound(job_id)
        return current

    def _chunks(self, job: Job, step: _Step, round_: _Round) -> Wait | None:
        """The one loop of a step, for job work and follow-up rounds alike: chunk after chunk
        until the round ends (``round_.take``), out of time, lease lost, paused, the email API is
        disabled, a transient failure (``round_.later``: its not_before and reason), or another
        installation's turn (``step.fair``)."""
        store, iid, worker_id = self._store, job.installation_id, step.worker_id
        slowest = 0.0
        answered = False  # the account's refusal count is reset once per step
        while self._clock() - step.start + slowest <= step.budget:
            if not store.renew_lease(job.id, worker_id, self._lease):
                log.warning("job lease lost", extra={"job": job.id, "worker": worker_id})
                return None
            batch = round_.take()
            if isinstance(batch, _Over):
                return batch.wait
            if batch is None:
                continue  # the lease was lost (the next renewal says so), or others took them
            began = self._clock()
            chunk = batch.send()
            slowest = max(slowest, self._clock() - began)
            if not batch.record(chunk):
                log.warning("job lease lost", extra={"job": job.id, "worker": worker_id})
                return None
            if chunk.disabled:  # no later chunk can work: reported once, not retried
                round_.disabled()
                return None
            noted = self._note_answer(job, chunk, answered, step.count_refusals)
            if noted is None:
                return None  # its account is paused
            answered = noted
            if chunk.transient is not None:
                return round_.later(chunk.transient)
            if step.fair and store.waiting_elsewhere(iid):
                return None  # another installation's turn
        return None

    def _work(self, job: Job, client: Client, step: _Step) -> _Round:
        """A job's work: check the unchecked items, then (unless a dry run) invite those without
        access. Invites go only for items this step claimed (``store.claim_items``, its own
        committed transaction) and are recorded for them even when the lease was lost meanwhile:
        nobody else may send them while the claim lasts."""
        store, iid, worker_id = self._store, job.installation_id, step.worker_id

        def take() -> _Batch | _Over | None:
            checking = True
            emails = store.next_items(iid, job.id, checked=False, limit=self._chunk)
            if not emails and not job.dry_run:
                checking = False
                emails = store.next_items(iid, job.id, checked=True, limit=self._chunk)
            if not emails:
                in_flight = store.items_in_flight(iid, job.id)
                if in_flight is not None:  # another holder's invites: wait for their outcomes
                    until = min(in_flight, store.now() + IN_FLIGHT_RETRY_SECONDS)
                    return _Over(Wait(until, "in_flight"))
                finish(store, job, worker_id, "done")
                log.info("job done", extra={"job": job.id, "installation": iid})
                return _Over()
            if store.cancel_requested(iid, job.id):  # the release ends it (see the module doc)
                log.info("job cancelled", extra={"job": job.id, "installation": iid})
                return _Over()
            if checking:
                return _Batch(
                    lambda: check(client, emails, step.keep_401),
                    lambda chunk: store.record_outcomes(
                        iid, job.id, worker_id, chunk.outcomes, checked=True, claimed=False
                    ),
                )
            claim = max(self._lease, 2 * step.budget)  # outlasts any request of this step
            claimed = store.claim_items(iid, job.id, worker_id, emails, claim)
            if not claimed:
                return None
            return _Batch(
                lambda: invite(client, claimed, step.keep_401),
                lambda chunk: store.record_outcomes(
                    iid, job.id, worker_id, chunk.outcomes, checked=None, claimed=True
                ),
            )

        def disabled() -> None:
            finish(store, job, worker_id, "failed", API_DISABLED_HELP)
            log.warning("job stopped: the email API is disabled", extra={"job": job.id})

        return _Round(take, disabled, lambda failure: self._later(job, worker_id, failure))

    def _follow_up(self, job: Job, client: Client, step: _Step) -> _Round:
        """A due follow-up round: check its invitees chunk by chunk; complete the round when all
        are checked."""
        store, iid, worker_id = self._store, job.installation_id, step.worker_id

        def take() -> _Batch | _Over:
            emails = store.follow_up_items(iid, job.id, limit=self._chunk)
            if not emails:
                store.complete_follow_up(iid, job.id, worker_id)
                log.info("job followed up", extra={"job": job.id, "installation": iid})
                return _Over()
            return _Batch(lambda: check(client, emails, step.keep_401), record)

        def record(chunk: Chunk) -> bool:
            if chunk.disabled:  # nothing to record: the round is skipped
                return True
            joined = {
                email: outcome == "alreadyHasAccess"  # failed, invalid: not seen to have joined
                for email, (outcome, _) in chunk.outcomes.items()
            }
            return store.record_joined(iid, job.id, worker_id, joined)

        def disabled() -> None:
            store.skip_follow_up(iid, job.id, worker_id)
            log.warning("job follow-up skipped: the email API is disabled", extra={"job": job.id})

        def later(failure: Failure) -> Wait | None:
            wait = self._retry if failure.retry_after is None else failure.retry_after
            until = self.follow_up_later(job, worker_id, failure.error, wait)
            return None if until is None else Wait(until, failure.error)

        return _Round(take, disabled, later)

    def follow_up_later(self, job: Job, worker_id: str, error: str, wait: float) -> float | None:
        """The ``not_before`` (now + ``wait``) of a follow-up that cannot get on now; None when the
        round is skipped instead (it has been due for ``give_up_seconds``)."""
        now = self._store.now()
        if now - (job.follow_up_due or now) >= self._give_up:
            self._store.skip_follow_up(job.installation_id, job.id, worker_id)
            log.warning("job follow-up skipped", extra={"job": job.id, "error": error})
            return None
        log.info("job follow-up waits", extra={"job": job.id, "error": error, "seconds": wait})
        return now + max(wait, 1.0)

    def cancel(self, installation_id: str, job_id: str, actor: str, *, wait_seconds: float) -> Job:
        """Cancel a queued or running job (see the module doc) and return it without items, ended
        unless a worker's chunk in flight outlasts ``wait_seconds``. A finished job is returned
        unchanged. Raises ``JobNotFound`` if the installation has no such job."""
        job = self._store.request_cancel(installation_id, job_id, actor)
        if job is None:
            raise JobNotFound(job_id)
        deadline = self._clock() + wait_seconds
        while job.active and self._clock() < deadline:
            self._sleep(CANCEL_POLL_SECONDS)
            found = self._store.job(installation_id, job_id, items=False)
            if found is None:
                raise JobNotFound(job_id)
            job = found
        return job

    def _note_answer(
        self, job: Job, chunk: Chunk, answered: bool, count_refusals: bool
    ) -> bool | None:
        """Tell ``dormancy`` about ``chunk`` (background steps only, ``count_refusals``), for the
        job's acting account: every refusal, and the first answer of the step (``answered`` says
        whether one has been told). Returns whether one has now been told, or None when the
        refusal paused the account (the step ends). Raises ``TokenRefused`` when entries
        answered 401 were kept pending."""
        store, iid, account = self._store, job.installation_id, job.created_by
        if count_refusals and account is not None:
            if chunk.refused:
                if dormancy.note_answer(store, iid, account, refused=True):
                    return None
            elif chunk.answered and not answered:
                answered = True
                dormancy.note_answer(store, iid, account, refused=False)
        if chunk.unauthorized:
            raise TokenRefused(job.id)
        return answered

    def _later(self, job: Job, worker_id: str, failure: Failure) -> Wait | None:
        now = self._store.now()
        if now - job.created_at >= self._give_up:
            error = f"gave up: {failure.error}"
            finish(self._store, job, worker_id, "failed", error)
            log.warning("job failed", extra={"job": job.id, "error": error})
            return None
        wait = failure.retry_after if failure.retry_after is not None else self._retry
        log.info("job waits", extra={"job": job.id, "error": failure.error, "seconds": wait})
        return Wait(now + max(wait, 1.0), failure.error)
