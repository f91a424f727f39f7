"""The simulated Confluence admin page that hosts the panel, and the Forge bridge behind it.

``make_host_blueprint(platform)`` serves, on the simulated platform's own origin:

- ``GET /``: a Confluence-like admin page frame with a "Signed in as" picker (the site admin, two
  ordinary users, an external collaborator) and an ``<iframe>`` of the panel;
- ``GET /panel/<path>``: the repository's ``static/`` directory, with ``index.html`` rewritten to
  load ``/_host/forge-bridge.js`` before the panel's own scripts (as Forge injects its bridge),
  under a strict Custom UI content security policy; with ``platform.samples`` (``./dev``) it also
  loads ``/_host/samples.js``, which adds "Try with sample data" to each of the panel's list forms
  (``form[data-entry-kind]``) and fills it from ``GET /_host/samples``: the seeded site's ids and
  emails, chosen to show every outcome. Nothing of it is in ``static/``: a real site never has it;
- ``GET /_host/<asset>``: the host page's own script, style and bridge (``host_assets/``): the
  bridge answers ``invoke``, ``enableTheming``, ``showFlag`` and ``closeFlag``; the page shows the
  panel's flags in its own flag group, bottom left of the window, as Confluence does;
- ``POST /_host/invoke``: what Forge does for ``invokeRemote``: mints a FIT, user token and system
  token for the chosen account, sends the call to ``platform.remote_url + path`` with the body
  exactly ``json.dumps(body)``, and answers ``{"status", "headers", "body"}`` (body as text). One
  attempt, 25 s timeout, redirects are not followed; a transport failure answers 502
  ``{"error", "message"}``.

It never imports the app's production modules: it reaches the backend only over HTTP.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Protocol

import requests
from flask import Blueprint, Response, abort, jsonify, redirect, request, send_from_directory

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
ASSETS_DIR = Path(__file__).resolve().parent / "host_assets"
BRIDGE_TAG = '<script src="/_host/forge-bridge.js"></script>'
SAMPLES_TAG = '<script src="/_host/samples.js" defer></script>'
INVOKE_TIMEOUT_SECONDS = 25.0
MAX_REQUEST_BYTES = 500 * 1024

PANEL_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:; "
    "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)
HOST_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'"
)


class HostedPlatform(Protocol):
    """What the host needs from ``simulator.Platform``."""

    installation: Any
    samples: bool

    def invocation_headers(self, installation: Any, account_id: str) -> dict[str, str]: ...


def make_host_blueprint(platform: HostedPlatform) -> Blueprint:
    bp = Blueprint("forge_host", __name__)
    session = requests.Session()

    @bp.get("/")
    def host_page() -> Response:
        return _no_store(Response(_host_html(platform), mimetype="text/html"), HOST_CSP)

    @bp.get("/panel")
    def panel_root() -> Response:
        return redirect("/panel/", code=308)  # type: ignore[return-value]

    @bp.get("/panel/")
    @bp.get("/panel/<path:name>")
    def panel(name: str = "index.html") -> Response:
        if name.endswith("/"):
            name += "index.html"
        if name.endswith("index.html"):
            path = (STATIC_DIR / name).resolve()
            if not path.is_file() or STATIC_DIR.resolve() not in path.parents:
                abort(404)
            text = _inject_bridge(path.read_text(encoding="utf-8"), samples=platform.samples)
            return _no_store(Response(text, mimetype="text/html"), PANEL_CSP)
        return _no_store(send_from_directory(STATIC_DIR, name, max_age=0), PANEL_CSP)

    @bp.get("/_host/samples")
    def samples() -> Response:
        if not platform.samples:
            abort(404)
        return _no_store(jsonify(sample_lists(platform.installation.site)), PANEL_CSP)

    @bp.get("/_host/<name>")
    def asset(name: str) -> Response:
        return _no_store(send_from_directory(ASSETS_DIR, name, max_age=0), HOST_CSP)

    @bp.post("/_host/invoke")
    def invoke() -> Response:
        call = request.get_json(silent=True)
        if not isinstance(call, dict):
            return _bridge_error(400, "The bridge call must be a JSON object.")
        path, method, account = call.get("path"), call.get("method", "POST"), call.get("accountId")
        if not isinstance(path, str) or not path.startswith("/") or "://" in path:
            return _bridge_error(400, "invokeRemote needs a path starting with '/'.")
        if not isinstance(method, str) or method.upper() not in {"GET", "POST", "PUT", "DELETE"}:
            return _bridge_error(400, "invokeRemote needs a method (GET, POST, PUT or DELETE).")
        if not isinstance(account, str) or not account:
            return _bridge_error(400, "Nobody is signed in.")
        remote = getattr(platform, "remote_url", None)
        if not isinstance(remote, str) or not remote:
            return _bridge_error(503, "The simulated Forge has no remote_url set.")
        headers = dict(platform.invocation_headers(platform.installation, account))
        data: str | None = None
        if "body" in call and call["body"] is not None:
            data = json.dumps(call["body"])
            if len(data.encode()) > MAX_REQUEST_BYTES:
                return _bridge_error(413, "invokeRemote requests are limited to 500 KB.")
            headers["content-type"] = "application/json"
        try:
            answer = session.request(
                method.upper(),
                remote.rstrip("/") + path,
                data=data,
                headers=headers,
                timeout=INVOKE_TIMEOUT_SECONDS,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return _bridge_error(502, f"The remote could not be reached: {type(exc).__name__}.")
        return jsonify(
            {
                "status": answer.status_code,
                "headers": {k.lower(): v for k, v in answer.headers.items()},
                "body": answer.text,
            }
        )

    return bp


def _inject_bridge(page: str, *, samples: bool = False) -> str:
    tags = BRIDGE_TAG + ("\n" + SAMPLES_TAG if samples else "")
    at = page.find("<script")
    if at < 0:
        at = page.find("</head>")
    if at < 0:
        return tags + page
    return page[:at] + tags + "\n" + page[at:]


def sample_lists(site: Any) -> dict[str, str]:
    """What "Try with sample data" pastes, as an admin would from a spreadsheet, so that every
    outcome shows: for ids, a header row, the admin, people who show or hide their email, a
    deactivated and a closed account, an external collaborator and an id nobody has; for emails, a
    header row, people with access, new people written as ``Name <addr>`` and ``mailto:``, and one
    entry with a space inside (shown as not valid)."""
    users: dict[str, dict[str, Any]] = site.users
    ordinary = [u for u in site.user_ids if u not in site.inactive_ids]
    shown = [u for u in ordinary if u not in site.hidden_email_ids]
    ids = [
        site.admin_id,
        *shown[:3],
        *site.hidden_email_ids[:1],
        *site.inactive_ids[:1],
        *site.closed_ids[:1],
        *site.external_ids[:1],
        "5b10ac8d82e05b22cc7d4e00",  # nobody has it
    ]
    members = [site.emails[u] for u in shown[:2]]
    new = list(site.sample_new_emails)
    name = str(users[site.admin_id]["displayName"]).split()[0]
    emails = [
        *members,
        f"New Hire <{new[0]}>",
        f"mailto:{new[1]}",
        *new[2:4],
        f"{name} {new[4]}",  # a space inside: not valid, never a fragment
    ]
    return {
        "accountId": "\n".join(["Account ID", *ids]),
        "email": "\n".join(["Email address", *emails]),
    }


def _bridge_error(status: int, message: str) -> Response:
    response = jsonify({"error": "bridge_error", "message": message})
    response.status_code = status
    return response


def _no_store(response: Response, csp: str) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def signed_in_choices(platform: HostedPlatform) -> list[tuple[str, str]]:
    """(account id, label): the site admin, two ordinary users, one external collaborator."""
    site = platform.installation.site
    users: dict[str, dict[str, Any]] = dict(site.users)

    def name(account: str) -> str:
        return str(users.get(account, {}).get("displayName") or account)

    def active(account: str) -> bool:
        return bool(users.get(account, {}).get("accountStatus", "active") == "active")

    admin = str(site.admin_id)
    externals = [str(a) for a in site.external_ids if active(str(a))]
    ordinary = [
        str(a)
        for a in site.user_ids
        if str(a) != admin
        and str(a) not in externals
        and active(str(a))
        and not users.get(str(a), {}).get("isExternalCollaborator", False)
    ]
    choices = [(admin, f"{name(admin)} (site admin)")]
    choices += [(a, f"{name(a)} (user)") for a in ordinary[:2]]
    choices += [(a, f"{name(a)} (external collaborator)") for a in externals[:1]]
    return choices


def _host_html(platform: HostedPlatform) -> str:
    options = "\n".join(
        f'          <option value="{html.escape(account)}">{html.escape(label)}</option>'
        for account, label in signed_in_choices(platform)
    )
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Access Desk - Confluence administration (simulated)</title>
  <link rel="stylesheet" href="/_host/host.css">
  <script src="/_host/host.js" defer></script>
</head>
<body>
  <header class="host-top">
    <span class="host-logo" aria-hidden="true"></span>
    <span class="host-product">Confluence</span>
    <span class="host-sim">simulated Forge</span>
    <span class="host-spacer"></span>
    <label class="host-field">Theme
      <select id="host-theme">
        <option value="">Follow system</option>
        <option value="light">Light</option>
        <option value="dark">Dark</option>
      </select>
    </label>
    <label class="host-field">Signed in as
      <select id="host-account">
{options}
      </select>
    </label>
  </header>
  <div class="host-body">
    <nav class="host-nav" aria-label="Administration">
      <p class="host-nav-title">Confluence administration</p>
      <ul>
        <li><span>General configuration</span></li>
        <li><span>Users and groups</span></li>
        <li><span>Security</span></li>
        <li><span class="host-current" aria-current="page">Access Desk</span></li>
      </ul>
    </nav>
    <main class="host-main">
      <iframe id="host-panel" title="Access Desk" src="/panel/"></iframe>
    </main>
  </div>
</body>
</html>
"""
