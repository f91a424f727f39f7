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
(24 h) after it was created: transient failures all that time, no offline token for its admin (the
items' error then carries the token exchange's reason), or no admin at all (a webhook job before
anyone rotated the secret, or a job whose creator's account was erased: that fails at once).

Quota (docs/contract.md §6): chunks go through ``client.background()``, so a step spends only what
the shared ledger says is left above the reserve kept for panel calls; a chunk the ledger refuses
is not sent, keeps its items pending and the job waits (``not_before``) for the window's reset. With
``fair=True`` (the background worker) a step also ends after any chunk when another installation's
job is waiting to be claimed, so turns on a shared pool go chunk by chunk (claims prefer the
installation served longest ago, ``store.claim_job``).

After each chunk the runner tells ``dormancy`` whether the site refused it (every entry answered
401/403/404) or answered; an installation that turns dormant ends the step at once.

Cancelling (``JobRunner.cancel``, for ``cancelJob``): ``store.request_cancel`` marks the job and,
when nobody holds its lease, ends it at once: items not started (every pending item of a real job,
the unchecked ones of a dry run) become ``failed`` with error ``cancelled`` and the job ends
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

``Worker`` runs a daemon thread: claim a runnable job or a due follow-up (oldest first; an expired
lease of a crashed worker is taken over; a dormant installation's jobs are not claimed), get the
acting admin's
offline user token (``job.created_by``), build a client with it, advance the job by one step,
release it; then run its ``chores`` (housekeeping such as the dormancy sweep and the personal data
duty); sleep ``poll_seconds`` when idle. When Confluence answers the offline token with 401 (a
stale cached token, e.g. after the platform restarted), the chunk's entries stay pending, the token
is dropped and minted again, and the step goes on once with the new token (a 401 then is final).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dormancy
import metrics
from atlassian import OfflineTokenError, OfflineTokens
from confluence import Client, Failure
from records import Installation, Job
from store import Store

log = logging.getLogger(__name__)

TRANSIENT = frozenset({"rate_limited", "unavailable", "timeout", "connection_error"})
REFUSED = frozenset({401, 403, 404})
CHUNK = 100
CANCEL_POLL_SECONDS = 0.1  # how often ``cancel`` looks whether the holder has let go
Outcomes = dict[str, tuple[str, str | None]]


def finish(store: Store, job: Job, worker_id: str, state: str, error: str | None = None) -> None:
    """End ``job`` (see ``Store.finish_job``) and record how long it took, creation to end."""
    if store.finish_job(job.installation_id, job.id, worker_id, state=state, error=error):
        metrics.JOB_SECONDS.labels(state).observe(max(0.0, store.now() - job.created_at))


class JobNotFound(LookupError):
    """No such job in this installation."""


class TokenRefused(Exception):
    """Confluence answered the step's token with 401; the chunk's refused entries stay pending."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """What one chunk's answer means for its items and for the site's standing."""

    outcomes: Outcomes
    transient: Failure | None  # the longest transient failure (its items stay pending)
    unauthorized: bool  # entries answered 401 were kept pending (``keep_401``)
    refused: bool  # every entry was answered 401/403/404
    answered: bool  # at least one entry got a real answer


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
    ) -> Job:
        """One step of at most ``budget_seconds``; returns the job (without items) afterwards.

        Raises ``JobNotFound`` if the installation has no such job. With ``keep_401``, entries
        Confluence answers with 401 stay pending and the step ends with ``TokenRefused`` (the
        caller renews its token and tries again); otherwise they fail ``not_permitted``.
        """
        start = self._clock()
        job = self._store.claim_job(
            worker_id, self._lease, installation_id=installation_id, job_id=job_id
        )
        if job is not None:
            not_before: float | None = None
            try:
                if job.active:
                    not_before = self._work(
                        job, client.background(), worker_id, start, budget_seconds, keep_401, fair
                    )
                else:
                    not_before = self._follow_up(
                        job, client.background(), worker_id, start, budget_seconds, keep_401
                    )
            finally:
                self._store.release_job(job.id, worker_id, not_before=not_before)
        current = self._store.job(installation_id, job_id, items=False)
        if current is None:
            raise JobNotFound(job_id)
        return current

    def _work(
        self,
        job: Job,
        client: Client,
        worker_id: str,
        start: float,
        budget: float,
        keep_401: bool,
        fair: bool = False,
    ) -> float | None:
        """Chunks until done, out of time, lease lost, dormant, or a transient failure (its
        not_before)."""
        store, iid = self._store, job.installation_id
        slowest = 0.0
        answered = False  # the site's refusal count is reset once per step
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
            chunk = (
                _check(client, emails, keep_401) if checking else _invite(client, emails, keep_401)
            )
            slowest = max(slowest, self._clock() - began)
            if not store.record_outcomes(
                iid, job.id, worker_id, chunk.outcomes, checked=True if checking else None
            ):
                log.warning("job lease lost", extra={"job": job.id, "worker": worker_id})
                return None
            if chunk.refused:
                if dormancy.note_answer(store, iid, refused=True):
                    return None
            elif chunk.answered and not answered:
                answered = True
                dormancy.note_answer(store, iid, refused=False)
            if chunk.unauthorized:
                raise TokenRefused(job.id)
            if chunk.transient is not None:
                return self._later(job, worker_id, chunk.transient)
            if fair and store.waiting_elsewhere(iid):
                return None  # another installation's turn
        return None

    def _follow_up(
        self,
        job: Job,
        client: Client,
        worker_id: str,
        start: float,
        budget: float,
        keep_401: bool,
    ) -> float | None:
        """Check the invitees of a due follow-up chunk by chunk; complete the round when all are
        checked. Ends like ``_work``: out of time, lease lost, dormant, 401 or a transient wait."""
        store, iid = self._store, job.installation_id
        slowest = 0.0
        answered = False
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
            chunk = _check(client, emails, keep_401)
            slowest = max(slowest, self._clock() - began)
            joined = {
                email: outcome == "alreadyHasAccess"  # failed, invalid: not seen to have joined
                for email, (outcome, _) in chunk.outcomes.items()
            }
            if not store.record_joined(iid, job.id, worker_id, joined):
                log.warning("job lease lost", extra={"job": job.id, "worker": worker_id})
                return None
            if chunk.refused:
                if dormancy.note_answer(store, iid, refused=True):
                    return None
            elif chunk.answered and not answered:
                answered = True
                dormancy.note_answer(store, iid, refused=False)
            if chunk.unauthorized:
                raise TokenRefused(job.id)
            if chunk.transient is not None:
                wait = chunk.transient.retry_after
                return self.follow_up_later(
                    job, worker_id, chunk.transient.error, self._retry if wait is None else wait
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


def _check(client: Client, emails: Sequence[str], keep_401: bool) -> Chunk:
    result = client.check_access(emails)
    outcomes: Outcomes = {e: ("alreadyHasAccess", None) for e in result.with_access}
    outcomes.update((e, ("invalid", None)) for e in result.invalid)
    outcomes.update((e, ("pending", None)) for e in result.without_access)
    return _failures(emails, outcomes, result.failed, keep_401)


def _invite(client: Client, emails: Sequence[str], keep_401: bool) -> Chunk:
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
    refusals = 0
    for failure in failed:
        refusals += failure.status in REFUSED
        if failure.error in TRANSIENT:
            if transient is None or (failure.retry_after or 0.0) > (transient.retry_after or 0.0):
                transient = failure
        elif keep_401 and failure.status == 401:
            unauthorized = True
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
    )


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
        chores: Sequence[Callable[[], bool]] = (),
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
        self._chores = tuple(chores)
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
            busy = self.run_chores() or busy
            if not busy:
                self._stop.wait(self._poll)

    def run_chores(self) -> bool:
        """Run each chore once (an error is logged, not raised); True if any had work."""
        busy = False
        for chore in self._chores:
            try:
                busy = chore() or busy
            except Exception:
                log.exception("worker chore error", extra={"worker": self.worker_id})
        return busy

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
            if job.source == "webhook":
                self._fail(job, "no acting admin: rotate the webhook secret to choose one")
            else:
                self._fail(job, "no acting admin: the account that created the job is gone")
            return
        installation = self._store.installation(iid)
        try:
            if installation is None:
                raise OfflineTokenError("the installation is not stored yet")
            token = self._tokens.token_for(installation, job.created_by)
        except OfflineTokenError as exc:
            self._wait_for_token(job, exc)
            return
        try:
            after = self._runner.advance(
                iid,
                job.id,
                self._make_client(installation, token),
                worker_id=self.worker_id,
                budget_seconds=self._step,
                keep_401=True,
                fair=True,
            )
        except TokenRefused:
            log.info("offline token refused; minting a new one", extra={"job": job.id})
            try:
                token = self._tokens.renew(installation, job.created_by)
            except OfflineTokenError as exc:
                self._wait_for_token(job, exc)
                return
            after = self._runner.advance(
                iid,
                job.id,
                self._make_client(installation, token),
                worker_id=self.worker_id,
                budget_seconds=self._step,
                fair=True,
            )
        log.info(
            "job advanced",
            extra={"job": job.id, "state": after.state, "counts": after.counts.to_json()},
        )

    def _wait_for_token(self, job: Job, exc: OfflineTokenError) -> None:
        """Try again in ``token_retry_seconds``, or give up 24 h after the job was created (a
        follow-up: 24 h after it was due)."""
        if not job.active:
            error = f"no_token: {exc}"
            retry = self._runner.follow_up_later(job, self.worker_id, error, self._token_retry)
            self._store.release_job(job.id, self.worker_id, not_before=retry)
            return
        if self._store.now() - job.created_at >= self._runner.give_up_seconds:
            self._fail(job, f"no_token: {exc}")
            return
        log.info("job waits for a token", extra={"job": job.id, "error": str(exc)})
        self._store.release_job(
            job.id, self.worker_id, not_before=self._store.now() + self._token_retry
        )

    def _fail(self, job: Job, error: str) -> None:
        if job.active:
            finish(self._store, job, self.worker_id, "failed", error)
        else:  # a follow-up nobody can act for
            self._store.skip_follow_up(job.installation_id, job.id, self.worker_id)
        self._store.release_job(job.id, self.worker_id)
        log.warning("job failed", extra={"job": job.id, "error": error})
