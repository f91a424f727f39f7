"""Invite jobs: advancing one by a time-boxed step, and the background worker that claims them.

``JobRunner.advance`` leases the job (``store.claim_job``; a job leased by someone else is left
alone and returned as it is), then works in chunks of at most 100 items, each chunk's outcomes
committed in its own transaction (``store.record_outcomes``), so a crash loses at most the chunk in
flight and the next holder resumes there (invite is safe to repeat):

1. check: unchecked pending items -> ``alreadyHasAccess`` / ``invalid`` / still pending (checked);
2. invite (not for dry runs): checked pending items -> ``invited`` / ``failed``.

A chunk failure that is transient (``rate_limited``, ``unavailable``, ``timeout``,
``connection_error``) keeps its items pending, sets the job's ``not_before`` to now + the failure's
``retry_after`` (else ``retry_seconds``) and ends the step; any other failure is final for the
item (``failed`` with the client's reason). No new chunk starts when the slowest chunk so far would
not fit in what is left of ``budget_seconds``. When nothing is left to do the job ends ``done`` (a
dry run keeps would-be invites ``pending``) with one audit entry (``store.finish_job``).

A job ends ``failed`` (its pending items too) when it cannot get on for ``give_up_seconds``
(24 h) after it was created: transient failures all that time, no offline token for its admin, or
no admin at all (a webhook job before anyone rotated the secret: that fails at once).

Cancelling (``JobRunner.cancel``, for ``cancelJob``): ``store.request_cancel`` marks the job and,
when nobody holds its lease, ends it at once: items not started (every pending item of a real job,
the unchecked ones of a dry run) become ``failed`` with error ``cancelled`` and the job ends
``failed`` (it did not do all it was asked; ``done`` only when nothing was left to cancel). When a
worker holds the lease, its chunk in flight is recorded as usual; at the next chunk boundary
``_work`` sees the mark and stops, and the release of the lease ends the job the same way (so does
any later release, e.g. after a rate-limit wait, or the next claim once a crashed holder's lease runs
out). ``cancel`` waits up to ``wait_seconds`` for that, then answers the job as it stands.

Follow-ups: a real invite job that invited anyone follows up once about an hour and once about a
day after it ended (``store.FOLLOW_UP_AFTER``): the store makes it claimable again when one is due,
and ``advance`` then checks access for its ``invited`` items (those not yet seen to have joined),
chunk by chunk like a job step (``store.record_joined`` under the lease), and completes the round
(``store.complete_follow_up``: the job's ``followUp`` and the next due time). Transient failures wait
like job steps; a round that cannot get on for ``give_up_seconds`` after it was due is skipped.

``Worker`` runs a daemon thread: claim a runnable job or a due follow-up (oldest first; an expired
lease of a crashed worker is taken over), get the acting admin's offline user token
(``job.created_by``), build a client with it, advance the job by one step, release it; sleep
``poll_seconds`` when idle.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence

import metrics
from atlassian import OfflineTokenError, OfflineTokens
from confluence import Client, Failure
from records import Installation, Job
from store import Store

log = logging.getLogger(__name__)

TRANSIENT = frozenset({"rate_limited", "unavailable", "timeout", "connection_error"})
CHUNK = 100
CANCEL_POLL_SECONDS = 0.1  # how often ``cancel`` looks whether the holder has let go
Outcomes = dict[str, tuple[str, str | None]]


def finish(store: Store, job: Job, worker_id: str, state: str, error: str | None = None) -> None:
    """End ``job`` (see ``Store.finish_job``) and record how long it took, creation to end."""
    if store.finish_job(job.installation_id, job.id, worker_id, state=state, error=error):
        metrics.JOB_SECONDS.labels(state).observe(max(0.0, store.now() - job.created_at))


class JobNotFound(LookupError):
    """No such job in this installation."""


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
    ) -> Job:
        """One step of at most ``budget_seconds``; returns the job (without items) afterwards.

        Raises ``JobNotFound`` if the installation has no such job.
        """
        start = self._clock()
        job = self._store.claim_job(
            worker_id, self._lease, installation_id=installation_id, job_id=job_id
        )
        if job is not None:
            not_before: float | None = None
            try:
                if job.active:
                    not_before = self._work(job, client, worker_id, start, budget_seconds)
                else:
                    not_before = self._follow_up(job, client, worker_id, start, budget_seconds)
            finally:
                self._store.release_job(job.id, worker_id, not_before=not_before)
        current = self._store.job(installation_id, job_id, items=False)
        if current is None:
            raise JobNotFound(job_id)
        return current

    def _work(
        self, job: Job, client: Client, worker_id: str, start: float, budget: float
    ) -> float | None:
        """Chunks until done, out of time, lease lost or a transient failure (its not_before)."""
        store, iid = self._store, job.installation_id
        slowest = 0.0
        while self._clock() - start + slowest <= budget:
            if not store.renew_lease(job.id, worker_id, self._lease):
                log.warning("job lease lost", extra={"job": job.id, "worker": worker_id})
                return None
            checking = True
            emails = store.next_items(iid, job.id, checked=False, limit=self._chunk)
            if not emails and not job.dry_run:
                checking = False
                emails = store.next_items(iid, job.id, checked=True, limit=self._chunk)
            if not emails:
                finish(store, job, worker_id, "done")
                log.info("job done", extra={"job": job.id, "installation": iid})
                return None
            if store.cancel_requested(iid, job.id):  # the release ends it (see the module doc)
                log.info("job cancelled", extra={"job": job.id, "installation": iid})
                return None
            began = self._clock()
            if checking:
                outcomes, transient = _check(client, emails)
            else:
                outcomes, transient = _invite(client, emails)
            slowest = max(slowest, self._clock() - began)
            if not store.record_outcomes(
                iid, job.id, worker_id, outcomes, checked=True if checking else None
            ):
                log.warning("job lease lost", extra={"job": job.id, "worker": worker_id})
                return None
            if transient is not None:
                return self._later(job, worker_id, transient)
        return None

    def _follow_up(
        self, job: Job, client: Client, worker_id: str, start: float, budget: float
    ) -> float | None:
        """Check the invitees of a due follow-up chunk by chunk; complete the round when all are."""
        store, iid = self._store, job.installation_id
        slowest = 0.0
        while self._clock() - start + slowest <= budget:
            if not store.renew_lease(job.id, worker_id, self._lease):
                log.warning("job lease lost", extra={"job": job.id, "worker": worker_id})
                return None
            emails = store.follow_up_items(iid, job.id, limit=self._chunk)
            if not emails:
                store.complete_follow_up(iid, job.id, worker_id)
                log.info("job followed up", extra={"job": job.id, "installation": iid})
                return None
            began = self._clock()
            result = client.check_access(emails)
            slowest = max(slowest, self._clock() - began)
            joined = {e: True for e in result.with_access}
            joined.update((e, False) for e in [*result.without_access, *result.invalid])
            transient: Failure | None = None
            later: set[str] = set()
            for failure in result.failed:
                if failure.error not in TRANSIENT:
                    joined[failure.subject] = False  # not seen to have joined
                    continue
                later.add(failure.subject)
                if transient is None or (failure.retry_after or 0.0) > (
                    transient.retry_after or 0.0
                ):
                    transient = failure
            for email in emails:  # the client accounts exactly; this is only a safety net
                if email not in joined and email not in later:
                    joined[email] = False
            if not store.record_joined(iid, job.id, worker_id, joined):
                log.warning("job lease lost", extra={"job": job.id, "worker": worker_id})
                return None
            if transient is not None:
                wait = transient.retry_after
                return self.follow_up_later(
                    job, worker_id, transient.error, self._retry if wait is None else wait
                )
        return None

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

    def _later(self, job: Job, worker_id: str, failure: Failure) -> float | None:
        now = self._store.now()
        if now - job.created_at >= self._give_up:
            error = f"gave up: {failure.error}"
            finish(self._store, job, worker_id, "failed", error)
            log.warning("job failed", extra={"job": job.id, "error": error})
            return None
        wait = failure.retry_after if failure.retry_after is not None else self._retry
        log.info("job waits", extra={"job": job.id, "error": failure.error, "seconds": wait})
        return now + max(wait, 1.0)


def _check(client: Client, emails: Sequence[str]) -> tuple[Outcomes, Failure | None]:
    result = client.check_access(emails)
    outcomes: Outcomes = {e: ("alreadyHasAccess", None) for e in result.with_access}
    outcomes.update((e, ("invalid", None)) for e in result.invalid)
    outcomes.update((e, ("pending", None)) for e in result.without_access)
    return _failures(emails, outcomes, result.failed)


def _invite(client: Client, emails: Sequence[str]) -> tuple[Outcomes, Failure | None]:
    result = client.invite(emails)
    outcomes: Outcomes = {e: ("invited", None) for e in result.invited}
    return _failures(emails, outcomes, result.failed)


def _failures(
    emails: Sequence[str], outcomes: Outcomes, failed: Sequence[Failure]
) -> tuple[Outcomes, Failure | None]:
    """Final failures join ``outcomes``; transient ones stay pending (the longest wait wins)."""
    transient: Failure | None = None
    for failure in failed:
        if failure.error in TRANSIENT:
            if transient is None or (failure.retry_after or 0.0) > (transient.retry_after or 0.0):
                transient = failure
        else:
            outcomes[failure.subject] = ("failed", failure.error)
    answered = set(outcomes) | {f.subject for f in failed}
    for email in emails:
        if email not in answered:  # the client accounts exactly; this is only a safety net
            outcomes[email] = ("failed", "bad_response")
    return outcomes, transient


class Worker:
    """The background job worker (see the module docstring); one per server process."""

    def __init__(
        self,
        store: Store,
        runner: JobRunner,
        make_client: Callable[[Installation, str], Client],
        tokens: OfflineTokens,
        *,
        worker_id: str | None = None,
        poll_seconds: float = 2.0,
        lease_seconds: float = 60.0,
        step_seconds: float = 15.0,
        token_retry_seconds: float = 60.0,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self._store = store
        self._runner = runner
        self._make_client = make_client
        self._tokens = tokens
        self._poll = poll_seconds
        self._lease = lease_seconds
        self._step = step_seconds
        self._token_retry = token_retry_seconds
        self._stop = stop_event or threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run the loop in a daemon thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.worker_id, daemon=True)
        self._thread.start()
        log.info("job worker started", extra={"worker": self.worker_id})

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the loop to end and wait for the step in progress (if any) to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:
                log.exception("job worker error", extra={"worker": self.worker_id})
                busy = False
            if not busy:
                self._stop.wait(self._poll)

    def run_once(self) -> bool:
        """Claim one runnable job and advance it by one step; False when there was none."""
        job = self._store.claim_job(self.worker_id, self._lease)
        if job is None:
            return False
        try:
            self._advance(job)
        except Exception:
            self._store.release_job(
                job.id, self.worker_id, not_before=self._store.now() + self._token_retry
            )
            raise
        return True

    def _advance(self, job: Job) -> None:
        iid = job.installation_id
        if job.created_by is None:
            self._fail(job, "no acting admin: rotate the webhook secret to choose one")
            return
        installation = self._store.installation(iid)
        try:
            if installation is None:
                raise OfflineTokenError("the installation is not stored yet")
            token = self._tokens.token_for(installation, job.created_by)
        except OfflineTokenError as exc:
            if not job.active:  # a follow-up: skipped once it has waited too long
                error = f"no_token: {exc}"
                retry = self._runner.follow_up_later(job, self.worker_id, error, self._token_retry)
                self._store.release_job(job.id, self.worker_id, not_before=retry)
            elif self._store.now() - job.created_at >= self._runner.give_up_seconds:
                self._fail(job, f"no_token: {exc}")
            else:
                log.info("job waits for a token", extra={"job": job.id, "error": str(exc)})
                self._store.release_job(
                    job.id, self.worker_id, not_before=self._store.now() + self._token_retry
                )
            return
        client = self._make_client(installation, token)
        after = self._runner.advance(
            iid, job.id, client, worker_id=self.worker_id, budget_seconds=self._step
        )
        log.info(
            "job advanced",
            extra={"job": job.id, "state": after.state, "counts": after.counts.to_json()},
        )

    def _fail(self, job: Job, error: str) -> None:
        if job.active:
            finish(self._store, job, self.worker_id, "failed", error)
        else:  # a follow-up nobody can act for
            self._store.skip_follow_up(job.installation_id, job.id, self.worker_id)
        self._store.release_job(job.id, self.worker_id)
        log.warning("job failed", extra={"job": job.id, "error": error})
