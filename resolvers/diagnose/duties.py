"""The checks of the installation's platform duties, from what the store knows: the ``Scheduled
trigger`` (late after two hours, gone after 72), the ``Personal data report`` (its last error, or
none sent yet, or overdue), the ``Quota`` (a Retry-After hold or the near-limit flag, with the
points and policy Confluence reported to this diagnosis) and ``Dormancy`` (dormant and why,
accounts whose jobs are paused, or refusals counting towards it). Advice: deploy the scheduled
trigger and check the remote's baseUrl, check ``PERSONAL_DATA_URL`` and the background worker,
send smaller batches, check the app is installed and its scopes granted.
"""

from __future__ import annotations

from typing import Any

from access_desk.confluence.results import Probe
from access_desk.store.records import iso
from resolvers.context import Context, Diagnostics
from resolvers.diagnose.check import REDEPLOY, Check, points, span

TRIGGER_LATE = 2 * 3600.0  # the trigger is hourly: two hours without one is worth a look
TRIGGER_GONE = 72 * 3600.0  # dormancy.QUIET_SECONDS


def trigger(health: Any, now: float) -> Check:
    name = "Scheduled trigger"
    last = health.last_scheduled_at if health is not None else None
    if last is None:
        return Check(
            name,
            "warn",
            "No scheduled trigger has arrived yet. Forge calls "
            "/forge/scheduled every hour: if none arrives within an hour of installing, "
            "check the app is installed and the scheduledTrigger in manifest.yml is "
            f"deployed ({REDEPLOY}), and that Atlassian can reach the remote's baseUrl.",
            "Forge has not made its hourly call yet. If none comes within an hour of installing, "
            "check the app is installed; the details say what to check after that.",
        )
    age = now - last
    when = f"{iso(last)} ({span(age)} ago)"
    if age >= TRIGGER_GONE:
        return Check(
            name,
            "fail",
            f"No scheduled trigger for {span(age)} (last {iso(last)}): "
            "check the app is installed and the scheduled trigger in manifest.yml is "
            f"deployed ({REDEPLOY}). Meanwhile personal data reports and background "
            "jobs wait.",
            f"Forge has not called for {span(age)}: personal data reports and background jobs "
            "wait. Check the app is still installed on this site.",
        )
    if age >= TRIGGER_LATE:
        return Check(
            name,
            "warn",
            f"The last scheduled trigger was at {when}; one is expected "
            "every hour. If this stays so, check the scheduledTrigger in manifest.yml "
            "is deployed and the remote's baseUrl answers.",
            f"Forge's hourly call is late: the last one came {span(age)} ago.",
        )
    return Check(
        name,
        "ok",
        f"The last scheduled trigger arrived at {when}.",
        f"Forge's hourly call last came {span(age)} ago.",
    )


def report(health: Any, kit: Diagnostics, now: float) -> Check:
    name = "Personal data report"
    if health is None:
        return Check(
            name,
            "warn",
            "The installation is not stored yet: run the diagnosis again.",
            "Not checked yet: run the diagnosis again.",
        )
    if health.report_error:
        at = f" at {iso(health.report_error_at)}" if health.report_error_at else ""
        return Check(
            name,
            "fail",
            f"The last report to Atlassian's personal data reporting API "
            f"failed{at}: {health.report_error}. It is retried; if it keeps failing the "
            "operator should check PERSONAL_DATA_URL and the server logs "
            "(docs/platform.md, 'Personal data').",
            "The last report of the account ids Access Desk keeps to Atlassian failed. It is "
            "tried again; if it keeps failing, tell whoever runs Access Desk.",
        )
    queued = f" A report is queued since {iso(health.duty_due_at)}." if health.duty_due_at else ""
    if health.last_report_at is None:
        return Check(
            name,
            "warn",
            "No personal data report yet: a scheduled trigger queues one "
            "and the background worker sends it (BACKGROUND_WORKER must be on in at "
            f"least one server process).{queued}",
            "Access Desk has not yet reported the account ids it keeps to Atlassian; it does so "
            "after Forge's hourly call.",
        )
    age = now - health.last_report_at
    asked = health.report_cycle_seconds
    due = asked if asked is not None else max(kit.report_days, 1.0) * 86400
    cycle = (
        f" Atlassian asked for a report every {span(asked)} (its Cycle-Period), which is followed."
        if asked is not None
        else f" Reported every {span(due)} (PERSONAL_DATA_REPORT_DAYS; Atlassian sent no "
        "Cycle-Period)."
    )
    if age > 2 * due:
        return Check(
            name,
            "warn",
            f"The last report was {span(age)} ago ({iso(health.last_report_at)}), "
            f"more than twice the reporting cycle: check the scheduled trigger "
            f"arrives and the background worker runs.{cycle}{queued}",
            f"The last report of the account ids Access Desk keeps to Atlassian was {span(age)} "
            "ago, later than it should be.",
        )
    return Check(
        name,
        "ok",
        f"Account ids last reported at {iso(health.last_report_at)} ({span(age)} ago)."
        f"{cycle}{queued}",
        f"Access Desk reported the account ids it keeps to Atlassian {span(age)} ago, as "
        "Atlassian asks of apps.",
    )


def quota(ctx: Context, probes: list[Probe], now: float) -> Check:
    name = "Quota"
    try:
        view = ctx.ledger.view(ctx.invocation.api_base_url, ctx.invocation.installation_id)
    except Exception as exc:  # never let the ledger break the diagnosis
        return Check(
            name,
            "warn",
            f"The quota state could not be read ({type(exc).__name__}).",
            "Confluence's points could not be read just now. Run the diagnosis again.",
        )
    said = [points(p).strip() for p in probes if p.rate_limit]
    said = [s for s in said if s]
    pool = said[-1] if said else "Confluence sent no rate-limit headers."
    if view.limit is not None and view.remaining is not None:
        how = "estimated" if view.estimated else "as Confluence reported"
        pool += (
            f" The ledger: {view.remaining:,} of {view.limit:,} points left ({how}); this "
            f"installation spent {view.spent or 0:,} of its {view.share or 0:,}-point share."
        )
    if view.held_until is not None and view.held_until > now:
        return Check(
            name,
            "warn",
            f"Confluence asked Access Desk to wait until "
            f"{iso(view.held_until)} (429 Retry-After or a spent pool): panel calls report entries as failed "
            f"and jobs wait until then. {pool} If this recurs, send smaller batches.",
            f"Confluence asked Access Desk to wait {span(view.held_until - now)}: until then "
            "lookups and checks report entries as failed and jobs wait.",
        )
    if view.near_limit:
        return Check(
            name,
            "warn",
            "Confluence reports under 20% of its points left "
            "(NearLimit, or RateLimit's r): background jobs wait for the next window, panel "
            f"calls go one at a time. {pool}",
            "Under a fifth of Confluence's points are left for now: background jobs wait for "
            "the next period.",
        )
    return Check(
        name,
        "ok",
        f"No hold, not near the limit. {pool}",
        "Confluence's points are not running low.",
    )


def dormancy(health: Any) -> Check:
    name = "Dormancy"
    if health is None:
        return Check(name, "ok", "Not dormant.", "Access Desk is active on this site.")
    if health.dormant:
        since = iso(health.dormant_since)
        if health.dormant_reason == "refused":
            why = (
                "the site refused every background call (401/403/404): check the app is "
                "still installed and its scopes are granted"
            )
            plain = "this site refused its background work"
        else:
            why = (
                "Forge sent no scheduled trigger for 72 hours: check the app is installed and "
                "the scheduled trigger in manifest.yml is deployed"
            )
            plain = "Forge stopped calling it"
        return Check(
            name,
            "fail",
            f"Dormant since {since}: {why}. Its jobs are paused; the "
            "next valid call from Forge resumes them.",
            f"Access Desk is paused here because {plain}; its jobs wait. Check the app is still "
            "installed: the next call from Forge resumes it.",
        )
    paused = [a for a in health.accounts_refused if a.paused_since is not None]
    if paused:
        who = ", ".join(f"{a.account_id} (since {iso(a.paused_since)})" for a in paused)
        return Check(
            name,
            "warn",
            f"The jobs acting as {who} are paused: Confluence refused every background call made "
            "as that account, 10 or more in a row over an hour. Other admins' jobs go on. Check "
            "that the account is still a site administrator (for webhook jobs, rotate the "
            "webhook secret to act as another admin); the next use of Access Desk on this site "
            "tries its jobs again.",
            "Confluence refused the background work of "
            + ", ".join(a.account_id for a in paused)
            + ", so the jobs acting as "
            + ("them" if len(paused) > 1 else "this person")
            + " wait. Other admins' jobs go on. Check they are still a site administrator.",
            tuple(a.account_id for a in paused),
        )
    counting = [a for a in health.accounts_refused if a.refusals]
    if counting:
        who = ", ".join(
            f"{a.account_id}: {a.refusals} since {iso(a.first_refusal_at)}"
            if a.first_refusal_at
            else f"{a.account_id}: {a.refusals}"
            for a in counting
        )
        return Check(
            name,
            "warn",
            f"Background calls refused in a row by the site ({who}); after 10 over an hour the "
            "jobs acting as that account pause. Check the app's scopes and the webhook admin "
            "(Offline token).",
            "This site refused some background calls in a row; after 10 within an hour the jobs "
            "acting as that person pause. Check the app's permissions and the webhook's admin.",
            tuple(a.account_id for a in counting),
        )
    resumed = f" It woke from dormancy at {iso(health.resumed_at)}." if health.resumed_at else ""
    return Check(
        name, "ok", f"Active: jobs run.{resumed}", "Access Desk is active on this site: jobs run."
    )
