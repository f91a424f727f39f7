"""The background job worker: one per server process, a daemon thread advancing invite jobs.

``Worker`` runs a daemon thread: claim a runnable job or a due follow-up (oldest first; an expired
lease of a crashed worker is taken over; a dormant installation's jobs, and those acting as a
paused account, are not claimed), get the
acting admin's offline user token (``job.created_by``), build a client with it, advance the job by
one step (``jobs.runner.JobRunner.advance``), release it; then run its ``chores`` (housekeeping such as the
dormancy sweep and the personal data duty); sleep ``poll_seconds`` when idle.

When Confluence answers the offline token with 401 (a stale cached token, e.g. after the platform
restarted), the chunk's entries stay pending, the token is dropped and minted again, and the step
goes on once with the new token (a 401 then is final). A job without an acting admin, or whose
admin has no offline token for ``give_up_seconds`` after it was created, ends ``failed``; a
follow-up nobody can act for is skipped (see ``jobs``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence

from access_desk.confluence.client import Client
from access_desk.forge.offline_tokens import OfflineTokenError, OfflineTokens
from access_desk.jobs.runner import JobRunner, TokenRefused, finish
from access_desk.quota.ledger import Payer
from access_desk.store import Store
from access_desk.store.records import Installation, Job

log = logging.getLogger("jobs")  # one logger for the job engine: the runner and the worker


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
            after = self._step_with(installation, job, token, keep_401=True)
        except TokenRefused:
            log.info("offline token refused; minting a new one", extra={"job": job.id})
            try:
                token = self._tokens.renew(installation, job.created_by)
            except OfflineTokenError as exc:
                self._wait_for_token(job, exc)
                return
            after = self._step_with(installation, job, token, keep_401=False)
        log.info(
            "job advanced",
            extra={"job": job.id, "state": after.state, "counts": after.counts.to_json()},
        )

    def _step_with(
        self, installation: Installation, job: Job, token: str, *, keep_401: bool
    ) -> Job:
        """One fair step of ``job`` with a client acting with ``token`` (its requests count to
        the job's installation and acting admin: their fair shares of the quota)."""
        token_owner = job.created_by or ""
        return self._runner.advance(
            job.installation_id,
            job.id,
            self._make_client(installation, token).paying(Payer(job.installation_id, token_owner)),
            worker_id=self.worker_id,
            budget_seconds=self._step,
            keep_401=keep_401,
            fair=True,
            count_refusals=True,
        )

    def _wait_for_token(self, job: Job, exc: OfflineTokenError) -> None:
        """Try again in ``token_retry_seconds``, or give up 24 h after the job was created (a
        follow-up: 24 h after it was due)."""
        if not job.active:
            error = f"no_token: {exc}"
            retry = self._runner.follow_up_later(job, self.worker_id, error, self._token_retry)
            self._store.release_job(
                job.id,
                self.worker_id,
                not_before=retry,
                wait_reason=None if retry is None else "no_token",
            )
            return
        if self._store.now() - job.created_at >= self._runner.give_up_seconds:
            self._fail(job, f"no_token: {exc}")
            return
        log.info("job waits for a token", extra={"job": job.id, "error": str(exc)})
        self._store.release_job(
            job.id,
            self.worker_id,
            not_before=self._store.now() + self._token_retry,
            wait_reason="no_token",
        )

    def _fail(self, job: Job, error: str) -> None:
        if job.active:
            finish(self._store, job, self.worker_id, "failed", error)
        else:  # a follow-up nobody can act for
            self._store.skip_follow_up(job.installation_id, job.id, self.worker_id)
        self._store.release_job(job.id, self.worker_id)
        log.warning("job failed", extra={"job": job.id, "error": error})
