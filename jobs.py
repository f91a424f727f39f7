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

``Worker`` runs a daemon thread: claim a runnable job (oldest first; an expired lease of a crashed
worker is taken over), get the acting admin's offline user token (``job.created_by``), build a
client with it, advance the job by one step, release it; sleep ``poll_seconds`` when idle.
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
    ) -> None:
        if not 1 <= chunk_size <= CHUNK:
            raise ValueError(f"chunk_size must be 1..{CHUNK}")
        self._store = store
        self._clock = clock
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
                not_before = self._work(job, client, worker_id, start, budget_seconds)
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
            if self._store.now() - job.created_at >= self._runner.give_up_seconds:
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
        finish(self._store, job, self.worker_id, "failed", error)
        self._store.release_job(job.id, self.worker_id)
        log.warning("job failed", extra={"job": job.id, "error": error})
