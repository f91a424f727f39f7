"""Filling a PostgreSQL store for ``bench/scale.py`` with bulk SQL (``INSERT ... SELECT
generate_series``), never through the product's API: a minute for a year of a busy Marketplace app.

Installation ``n`` (1..``installations``): number 1 is the simulated site the bench calls as (its
ids given), the others are synthetic (``SYNTHETIC``: ids from ``md5``, the same in SQL and Python).
Times are epoch seconds around ``now``. What a year leaves (``fill_year``), per the retention rules
a real store follows: audit entries and finished jobs older than 90 days are redacted (no subjects,
actor ``redacted``, emails ``redacted-<n>``), the lookup cache holds what the last minutes looked
up, and the quota spend only the current window's (left out: the calls make it).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

DAY = 86400.0
PREFIX = "ari:cloud:ecosystem::installation/"


@dataclass(frozen=True)
class Busy:
    """The installation the bench calls as: the simulated site's."""

    installation_id: str
    uuid: str
    cloud_id: str
    api_base_url: str
    admin: str  # its site admin's account id


@dataclass(frozen=True)
class Sizes:
    """How much of everything; the defaults are the year store's (``EMPTY``: the empty one's)."""

    installations: int = 10_000
    audit: int = 1_000_000
    jobs: int = 100_000
    queued: int = 5_000
    queued_installations: int = 500
    busy_jobs: int = 2_000  # finished jobs of the busy installation
    items_per_job: int = 10
    busy_cached_users: int = 10_000  # the busy admin's fresh lookup cache (half its bound)
    busy_cached_misses: int = 500
    other_callers: int = 400  # other (installation, caller) pairs with cached lookups
    other_cached_users: int = 1_000
    other_cached_misses: int = 100
    deliveries: int = 50_000
    refusals: int = 20_000
    acting_accounts: int = 9_999  # refusal counts of the accounts background jobs act as


def synthetic(n: int, api_prefix: str) -> tuple[str, str, str]:
    """Installation ``n``'s (id, cloud id, api base URL), as the SQL below makes them."""
    iid = str(uuid.UUID(hashlib.md5(f"inst-{n}".encode()).hexdigest()))
    cloud = str(uuid.UUID(hashlib.md5(f"cloud-{n}".encode()).hexdigest()))
    return PREFIX + iid, cloud, api_prefix + cloud


def _iid(n: str) -> str:
    return f"(CASE WHEN ({n}) = 1 THEN :busy ELSE '{PREFIX}' || md5('inst-' || ({n}))::uuid END)"


def _acct(n: str, salt: str = "acct") -> str:
    """An account id per installation ``n`` (its admin: the busy one's is the simulated admin)."""
    return f"(CASE WHEN ({n}) = 1 THEN :admin ELSE '557058:' || md5('{salt}-' || ({n}))::uuid END)"


def _run(conn: Connection, sql: str, **params: object) -> None:
    conn.execute(sa.text(sql), params)


def fill_installations(
    conn: Connection, now: float, count: int, api_prefix: str, busy: Busy
) -> None:
    """``count`` installations, each triggered hourly, reported within the last week and
    housekept within the last day (so an hour of triggers finds 1/24 due for housekeeping and
    1/168 for a report, as a real hour would)."""
    _run(
        conn,
        """
        INSERT INTO installations (installation_id, uuid, cloud_id, api_base_url, created_at,
            updated_at, context_form, last_scheduled_at, last_report_at, housekept_at,
            retention_until)
        SELECT CASE WHEN n = 1 THEN :busy ELSE :prefix || md5('inst-' || n)::uuid END,
               CASE WHEN n = 1 THEN :busy_uuid ELSE md5('inst-' || n)::uuid::text END,
               CASE WHEN n = 1 THEN :busy_cloud ELSE md5('cloud-' || n)::uuid::text END,
               CASE WHEN n = 1 THEN :busy_url ELSE :api || md5('cloud-' || n)::uuid END,
               :t - 365 * :day * random(), :t - :day * random(), 'site',
               :t - 3600 * random(), :t - 3600 - 7 * :day * random(), h, h - 90 * :day
        FROM generate_series(1, :count) AS n,
             LATERAL (SELECT :t - 3600 - :day * random() + n * 0 AS h) AS x
        """,
        busy=busy.installation_id,
        prefix=PREFIX,
        busy_uuid=busy.uuid,
        busy_cloud=busy.cloud_id,
        busy_url=busy.api_base_url,
        api=api_prefix,
        t=now,
        day=DAY,
        count=count,
    )


def fill_jobs(
    conn: Connection,
    now: float,
    sizes: Sizes,
    busy: Busy,
    *,
    jobs: int,
    queued: int,
    queued_installations: int,
    busy_jobs: int,
) -> None:
    """``jobs`` jobs with ``items_per_job`` items each: the first ``queued`` queued, spread over
    installations 2..``queued_installations`` + 1; then ``busy_jobs`` finished ones of the busy
    installation; the rest finished (1 in 20 failed) across every installation, over the year."""
    others = max(1, sizes.installations - 1)
    inst = (
        f"(CASE WHEN n <= :queued THEN 2 + (n - 1) % :qinst "
        f"WHEN n <= :queued + :busy_jobs THEN 1 ELSE 2 + n % {others} END)"
    )
    _run(
        conn,
        f"""
        INSERT INTO jobs (id, installation_id, kind, source, dry_run, state, created_at,
            created_by, updated_at, total, pending, invited, already_has_access, invalid, failed,
            follow_up_round, cancelled, checked)
        SELECT 'job-' || md5('job-' || n), {_iid("i")}, 'invite',
               CASE WHEN n % 3 = 0 THEN 'webhook' ELSE 'panel' END, false,
               CASE WHEN n <= :queued THEN 'queued' WHEN n % 20 = 0 THEN 'failed' ELSE 'done' END,
               c, {_acct("i")}, c + 60, :items,
               CASE WHEN n <= :queued THEN :items ELSE 0 END,
               CASE WHEN n <= :queued OR n % 20 = 0 THEN 0 ELSE :items - 2 END,
               CASE WHEN n <= :queued OR n % 20 = 0 THEN 0 ELSE 1 END,
               CASE WHEN n <= :queued OR n % 20 = 0 THEN 0 ELSE 1 END,
               CASE WHEN n % 20 = 0 AND n > :queued THEN :items ELSE 0 END,
               0, 0, CASE WHEN n <= :queued THEN 0 ELSE :items END
        FROM generate_series(1, :jobs) AS n,
             LATERAL (SELECT {inst} AS i,
                             CASE WHEN n <= :queued THEN :t - 600 * random()
                                  ELSE :t - 365 * :day * random() END AS c) AS x
        """,
        busy=busy.installation_id,
        admin=busy.admin,
        queued=queued,
        qinst=max(1, queued_installations),
        busy_jobs=busy_jobs,
        items=sizes.items_per_job,
        jobs=jobs,
        t=now,
        day=DAY,
    )
    _run(
        conn,
        """
        INSERT INTO job_items (job_id, position, email, outcome, checked, follow_up_round)
        SELECT j.id, p,
               CASE WHEN j.state <> 'queued' AND j.updated_at < :t - 90 * :day
                    THEN 'redacted-' || (p + 1)
                    ELSE 'user' || p || '.' || substr(j.id, 5, 12) || '@example.com' END,
               CASE WHEN j.state = 'queued' THEN 'pending'
                    WHEN j.state = 'failed' THEN 'failed'
                    WHEN p = :items - 2 THEN 'alreadyHasAccess'
                    WHEN p = :items - 1 THEN 'invalid'
                    ELSE 'invited' END,
               j.state <> 'queued', 0
        FROM jobs AS j, generate_series(0, :items - 1) AS p
        """,
        items=sizes.items_per_job,
        t=now,
        day=DAY,
    )


def fill_year(conn: Connection, now: float, sizes: Sizes, busy: Busy, token_enc: str) -> None:
    """Everything but the installations (``fill_installations``) a year of a busy app leaves."""
    n_inst = sizes.installations
    others = max(1, n_inst - 1)
    fill_jobs(
        conn,
        now,
        sizes,
        busy,
        jobs=sizes.jobs,
        queued=sizes.queued,
        queued_installations=sizes.queued_installations,
        busy_jobs=sizes.busy_jobs,
    )
    common = {"busy": busy.installation_id, "admin": busy.admin, "t": now, "day": DAY}
    _run(
        conn,
        f"""
        INSERT INTO offline_tokens (installation_id, account_id, token_enc, expires_at)
        SELECT {_iid("n")}, {_acct("n")}, :token, :t + 3600 FROM generate_series(1, :count) AS n
        """,
        token=token_enc,
        count=n_inst,
        **common,
    )
    _run(
        conn,
        f"""
        INSERT INTO admin_checks (installation_id, account_id, is_admin, checked_at, operations)
        SELECT {_iid("n")}, {_acct("n * 2 + k", "admin")}, true, :t - 30 * random(),
               'administer/application'
        FROM generate_series(2, :count) AS n, generate_series(0, 1) AS k
        """,
        count=n_inst,
        **common,
    )
    # The audit log: ids rise with time; 1 entry in 10 is the busy installation's.
    _run(
        conn,
        f"""
        INSERT INTO audit (id, installation_id, at, actor, action, source, subjects, outcome)
        SELECT n, {_iid("i")}, a,
               CASE WHEN a < :t - 90 * :day THEN 'redacted' ELSE {_acct("i")} END,
               (ARRAY['checkAccess', 'checkAccess', 'checkAccess', 'inviteEmails',
                      'inviteEmails', 'job.finished', 'job.finished', 'rotateWebhookSecret',
                      'cancelJob', 'retryJob'])[1 + (n / 10) % 10],
               CASE WHEN (n / 10) % 10 IN (5, 6) AND n % 2 = 0 THEN 'webhook' ELSE 'panel' END,
               CASE WHEN a < :t - 90 * :day THEN '[]'
                    ELSE '["p' || n || '@example.com", "q' || n || '@example.org"]' END::json,
               '{{"emails": 2, "withAccess": 1, "withoutAccess": 1, "invalid": 0}}'::json
        FROM generate_series(1, :count) AS n,
             LATERAL (SELECT CASE WHEN n % 10 = 0 THEN 1 ELSE 2 + (n / 10) % {others} END AS i,
                             :t - 365 * :day * (1 - n::float8 / :count) AS a) AS x
        """,
        count=sizes.audit,
        **common,
    )
    _run(conn, "SELECT setval(pg_get_serial_sequence('audit', 'id'), (SELECT max(id) FROM audit))")
    _run(
        conn,
        """
        INSERT INTO audit_subjects (audit_id, subject, installation_id)
        SELECT id, s, installation_id
        FROM audit, LATERAL (VALUES ('p' || id || '@example.com'), ('q' || id || '@example.org'))
             AS v(s)
        WHERE at >= :t - 90 * :day
        """,
        t=now,
        day=DAY,
    )
    _run(
        conn,
        f"""
        INSERT INTO webhook_deliveries (installation_id, webhook_id, job_id, received_at, replays)
        SELECT {_iid("i")}, 'msg_' || md5('delivery-' || n), 'job-' || md5('job-' || n),
               :t - 365 * :day * random(), 0
        FROM generate_series(1, :count) AS n,
             LATERAL (SELECT CASE WHEN n <= 100 THEN 1 ELSE 2 + n % {others} END AS i) AS x
        """,
        count=sizes.deliveries,
        **common,
    )
    _run(
        conn,
        f"""
        INSERT INTO webhook_refusals (installation_id, at, reason, webhook_id)
        SELECT {_iid("i")}, :t - 30 * :day * random(), 'invalid_signature',
               'msg_' || md5('refused-' || n)
        FROM generate_series(1, :count) AS n,
             LATERAL (SELECT CASE WHEN n <= 50 THEN 1 ELSE 2 + n % {others} END AS i) AS x
        """,
        count=sizes.refusals,
        **common,
    )
    _run(
        conn,
        f"""
        INSERT INTO quota_turns (installation_id, served_at)
        SELECT {_iid("n")}, :t - 3600 * random() FROM generate_series(1, :count) AS n
        """,
        count=n_inst,
        **common,
    )
    _run(
        conn,
        """
        INSERT INTO quota_pools (key, scope, window_id, spent, pending, without_r, near_limit,
            held_until, since_requests, since_objects, updated_at, version)
        SELECT api_base_url, 'app', 0, 0, 0, false, false, 0, 0, 0, :t - 3600 * random(), 0
        FROM installations WHERE installation_id <> :busy
        """,
        **common,
    )
    user = """json_build_object('accountId', a, 'accountType', 'atlassian',
               'displayName', 'User ' || substr(a, 8, 8), 'publicName', 'user' || substr(a, 8, 8),
               'email', 'user' || substr(a, 8, 8) || '@example.com', 'timeZone', 'Europe/Berlin',
               'profilePicture', json_build_object('path', '/wiki/aa-avatar/' || a,
                   'width', 48, 'height', 48, 'isDefault', false),
               'isExternalCollaborator', false, 'accountStatus', 'active')"""
    for table, value, busy_count, other_count in (
        ("lookup_cache", user, sizes.busy_cached_users, sizes.other_cached_users),
        ("lookup_misses", None, sizes.busy_cached_misses, sizes.other_cached_misses),
    ):
        columns = "installation_id, caller, account_id, cached_at" + (', "user"' if value else "")
        _run(
            conn,
            f"""
            INSERT INTO {table} ({columns})
            SELECT {_iid("i")}, {_acct("i")}, a, :t{", " + value if value else ""}
            FROM generate_series(1, :callers + 1) AS i,
                 generate_series(1, CASE WHEN i = 1 THEN :busy_rows ELSE :rows END) AS k,
                 LATERAL (SELECT '557058:' || md5('{table}-' || i || '-' || k)::uuid AS a) AS x
            """,
            callers=sizes.other_callers,
            busy_rows=busy_count,
            rows=other_count,
            **common,
        )
    _run(
        conn,
        f"""
        INSERT INTO account_refusals (installation_id, account_id, refusals, last_call_at)
        SELECT {_iid("n")}, {_acct("n")}, 0, :t - :day * random()
        FROM generate_series(2, :count + 1) AS n
        """,
        count=sizes.acting_accounts,
        **common,
    )
    _run(  # the queued jobs' installations have work, as store.turns.note_work keeps it
        conn,
        """
        INSERT INTO quota_turns (installation_id, served_at, work_at)
        SELECT installation_id, 0, min(created_at) FROM jobs
        WHERE state IN ('queued', 'running') GROUP BY installation_id
        ON CONFLICT (installation_id) DO UPDATE SET work_at = excluded.work_at
        """,
    )


def empty_sizes(installations: int) -> Sizes:
    """The empty store: the same installations with their one row per table (token, turn, pool,
    admin records), and of the busiest installation only what fills every page the bench's calls
    ask for (1,000 audit entries over the year, 100 finished jobs, its webhook's last deliveries
    and refusals); 50 queued jobs across 5 installations for the claims; no lookup cache."""
    return Sizes(
        installations=installations,
        audit=10_000,
        jobs=150,
        queued=50,
        queued_installations=5,
        busy_jobs=100,
        busy_cached_users=0,
        busy_cached_misses=0,
        other_callers=0,
        other_cached_users=0,
        other_cached_misses=0,
        deliveries=100,
        refusals=50,
        acting_accounts=0,
    )
