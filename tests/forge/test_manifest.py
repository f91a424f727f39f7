"""manifest.yml under @forge/manifest's full offline validation (tests/manifest/validate.mjs), plus
the facts the backend relies on: trigger routes (the preUninstall one too), token settings, the
exact scopes and which of them allow offline user impersonation.

The validator runs in Node from ACCESS_DESK_NODE_MODULES (set by ./test), falling back to the repo's
.cache/node/node_modules. Broken copies of the manifest must be rejected, so a validator that
silently does nothing cannot pass. Compiling the schema takes seconds, so the copies are validated
in one Node run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from access_desk.confluence.client import Client
from access_desk.confluence.errors import OfflineOperation
from access_desk.confluence.transport import Policy
from access_desk.forge import scopes
from handlers import forge
from simulator.manifest import impersonation_scopes
from simulator.triggers import LIFECYCLE_TRIGGER, SCHEDULED_TRIGGER, UNINSTALL_TRIGGER

pytestmark = pytest.mark.node  # Node.js tools from .cache/node and scripts/bridge (./test)
ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "manifest.yml"
VALIDATOR = ROOT / "tests" / "manifest" / "validate.mjs"

SCOPES = {
    "read:app-user-token",
    "read:app-system-token",
    "read:user:confluence",
    "read:configuration:confluence",
    "read:content-details:confluence",
}


def node_modules() -> Path:
    configured = os.environ.get("ACCESS_DESK_NODE_MODULES")
    path = Path(configured) if configured else ROOT / ".cache" / "node" / "node_modules"
    if not (path / "@forge" / "manifest" / "package.json").is_file():
        pytest.fail(
            f"@forge/manifest is not installed in {path}; run ./test (it installs it into "
            ".cache/node) or point ACCESS_DESK_NODE_MODULES at a node_modules that has it"
        )
    return path


def validate(*manifests: Path) -> tuple[int, list[dict[str, Any]]]:
    """Run the validator once on `manifests`: (exit status, one JSON report per manifest)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; Node.js 20+ is needed to validate manifest.yml")
    proc = subprocess.run(
        [node, str(VALIDATOR), *map(str, manifests)],
        env={**os.environ, "ACCESS_DESK_NODE_MODULES": str(node_modules())},
        capture_output=True,
        text=True,
        timeout=180,
    )
    if proc.returncode not in (0, 1):
        pytest.fail(f"validator could not run (exit {proc.returncode}):\n{proc.stderr}")
    try:
        reports = [json.loads(line) for line in proc.stdout.splitlines()]
    except json.JSONDecodeError:
        pytest.fail(f"validator printed something other than JSON lines:\n{proc.stdout}")
    assert [r["manifest"] for r in reports] == [str(m) for m in manifests], proc.stderr
    return proc.returncode, reports


def messages(report: dict[str, Any], level: str = "error") -> list[str]:
    return [e["message"] for e in report["errors"] if e["level"] == level]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    status, [result] = validate(MANIFEST)
    assert messages(result) == []
    assert status == 0 and result["ok"] is True
    return result


@pytest.fixture(scope="module")
def parsed(report: dict[str, Any]) -> dict[str, Any]:
    manifest: dict[str, Any] = report["parsed"]
    return manifest


def endpoints(parsed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["key"]: e for e in parsed["modules"]["endpoint"]}


def test_manifest_passes_full_validation(report: dict[str, Any]) -> None:
    assert report["manifest"] == str(MANIFEST)
    assert report["success"] is True
    assert messages(report, "warning") == []


def test_admin_page_is_custom_ui_with_remote_resolver(parsed: dict[str, Any]) -> None:
    [page] = parsed["modules"]["confluence:globalSettings"]
    assert page["key"] == "access-desk-admin"
    assert page["title"] == "Access Desk"
    [resource] = [r for r in parsed["resources"] if r["key"] == page["resource"]]
    assert resource["path"] == "static"
    assert (ROOT / "static" / "index.html").is_file()
    ui = endpoints(parsed)[page["resolver"]["endpoint"]]
    assert ui["remote"] == "access-desk-remote"
    assert "route" not in ui  # UI calls give the path in invokeRemote
    assert ui["auth"]["appUserToken"]["enabled"] is True
    assert ui["auth"]["appSystemToken"]["enabled"] is True


def test_trigger_routes_match_the_backend(parsed: dict[str, Any]) -> None:
    by_key = endpoints(parsed)
    [trigger] = parsed["modules"]["trigger"]
    assert sorted(trigger["events"]) == ["avi:forge:installed:app", "avi:forge:upgraded:app"]
    [scheduled] = parsed["modules"]["scheduledTrigger"]
    assert scheduled["interval"] == "hour"
    lifecycle, hourly = by_key[trigger["endpoint"]], by_key[scheduled["endpoint"]]
    assert lifecycle["route"] == {"path": "/forge/lifecycle"}
    assert hourly["route"] == {"path": "/forge/scheduled"}
    for endpoint in (lifecycle, hourly):
        assert endpoint["remote"] == "access-desk-remote"
        assert endpoint["auth"] == {"appSystemToken": {"enabled": True}}


def test_pre_uninstall_routes_to_the_uninstall_route(parsed: dict[str, Any]) -> None:
    [module] = parsed["modules"]["preUninstall"]
    endpoint = endpoints(parsed)[module["endpoint"]]
    assert endpoint["remote"] == "access-desk-remote"
    assert endpoint["route"] == {"path": "/forge/uninstall"}
    assert "auth" not in endpoint  # it needs no token: it only stops and erases


def test_trigger_module_keys_match_the_backend_and_the_simulator(parsed: dict[str, Any]) -> None:
    [trigger] = parsed["modules"]["trigger"]
    [scheduled] = parsed["modules"]["scheduledTrigger"]
    [uninstall] = parsed["modules"]["preUninstall"]
    assert forge.LIFECYCLE_TRIGGER_KEY == LIFECYCLE_TRIGGER[0] == trigger["key"]
    assert forge.SCHEDULED_TRIGGER_KEY == SCHEDULED_TRIGGER[0] == scheduled["key"]
    assert forge.UNINSTALL_TRIGGER_KEY == UNINSTALL_TRIGGER[0] == uninstall["key"]
    assert forge.LIFECYCLE_ENDPOINT_KEY == trigger["endpoint"]
    assert forge.SCHEDULED_ENDPOINT_KEY == scheduled["endpoint"]
    assert forge.UNINSTALL_ENDPOINT_KEY == uninstall["endpoint"]


def test_remote_and_scopes(parsed: dict[str, Any]) -> None:
    [remote] = parsed["remotes"]
    assert remote["key"] == "access-desk-remote"
    assert remote["baseUrl"].startswith("https://")
    # compute: required for invokeRemote; storage: the remote stores emails and account ids
    assert remote["operations"] == ["compute", "storage"]
    assert remote["storage"] == {"inScopeEUD": True}
    declared = parsed["permissions"]["scopes"]
    assert isinstance(declared, dict)  # the map form: scopes can allow impersonation
    assert set(declared) == SCOPES
    assert set(scopes.SCOPES.values()) <= SCOPES  # every call's scope is asked for
    assert parsed["app"]["id"].startswith("ari:cloud:ecosystem::app/")


def test_impersonation_is_allowed_on_exactly_the_scopes_offline_calls_use(
    parsed: dict[str, Any],
) -> None:
    declared = parsed["permissions"]["scopes"]
    flagged = {name for name, options in declared.items() if options.get("allowImpersonation")}
    # derived from the code's table (scopes.SCOPES / scopes.OFFLINE), not a copy of the list
    offline = {scopes.SCOPES[operation] for operation in scopes.OFFLINE}
    assert flagged == offline == scopes.impersonated()
    assert "read:user:confluence" not in flagged  # lookups run as the signed-in user only
    # the simulator reads the same flags from the deployed manifest, on its own
    assert impersonation_scopes(MANIFEST) == flagged


def replace(old: str, new: str) -> Callable[[str], str]:
    def mutate(text: str) -> str:
        assert old in text, f"manifest.yml changed shape; update this test's mutation: {old!r}"
        return text.replace(old, new, 1)

    return mutate


LIFECYCLE_ENDPOINT = """\
      route:
        path: /forge/lifecycle
      auth:
        appSystemToken:
          enabled: true
"""

BROKEN = {
    # A trigger endpoint with no route that also asks for the user token: two rule violations
    # that the bare JSON schema does not catch.
    "trigger-endpoint-user-token-no-route": (
        replace(
            LIFECYCLE_ENDPOINT,
            "      auth:\n        appUserToken:\n          enabled: true\n"
            "        appSystemToken:\n          enabled: true\n",
        ),
        ["only supports appSystemToken", "requires 'route' parameter"],
    ),
    "unknown-scheduled-interval": (
        replace("interval: hour", "interval: minute"),
        ["allowed values are 'fiveMinute', 'hour', 'day', 'week'"],
    ),
    "unknown-scope": (
        replace("    read:content-details:confluence:", "    read:content-detail:confluence:"),
        ["Invalid 'scopes' permission"],
    ),
    "impersonation-flag-not-a-boolean": (
        replace(
            "allowImpersonation: true\n    read:content",
            "allowImpersonation: yes-please\n    read:content",
        ),
        ["allowImpersonation"],
    ),
    "storage-without-in-scope-eud": (
        replace("    storage:\n      inScopeEUD: true\n", ""),
        ["storage.inScopeEUD is required if storage is present in operations"],
    ),
    "endpoint-to-missing-remote": (
        replace("remote: access-desk-remote\n      route:", "remote: nowhere\n      route:"),
        ["remote property 'nowhere' was not found"],
    ),
}


def copy_manifest(directory: Path, mutate: Callable[[str], str]) -> Path:
    """The manifest, mutated, beside a copy of the panel entry page (resources resolve from it)."""
    (directory / "static").mkdir(parents=True)
    shutil.copy(ROOT / "static" / "index.html", directory / "static" / "index.html")
    target = directory / "manifest.yml"
    target.write_text(mutate(MANIFEST.read_text(encoding="utf-8")), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Reports for the broken copies, an unchanged copy ("unchanged") and a copy with no static/
    panel beside it ("no-panel"), keyed by case."""
    root = tmp_path_factory.mktemp("manifests")
    paths = {case: copy_manifest(root / case, mutate) for case, (mutate, _) in BROKEN.items()}
    paths["unchanged"] = copy_manifest(root / "unchanged", lambda text: text)
    (root / "no-panel").mkdir()
    paths["no-panel"] = root / "no-panel" / "manifest.yml"
    shutil.copy(MANIFEST, paths["no-panel"])
    status, reports = validate(*paths.values())
    assert status == 1  # some copy is invalid, so the run must fail
    return dict(zip(paths, reports, strict=True))


def test_unchanged_copy_is_valid(copies: dict[str, dict[str, Any]]) -> None:
    # The control for the broken copies: relocating the manifest alone breaks nothing.
    result = copies["unchanged"]
    assert messages(result) == []
    assert result["ok"] is True


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_copy_is_rejected(copies: dict[str, dict[str, Any]], case: str) -> None:
    _, expected = BROKEN[case]
    result = copies[case]
    assert result["ok"] is False
    errors = messages(result)
    for fragment in expected:
        assert any(fragment in message for message in errors), (fragment, errors)


def test_missing_panel_is_rejected(copies: dict[str, dict[str, Any]]) -> None:
    result = copies["no-panel"]
    assert result["ok"] is False
    assert any("static" in message for message in messages(result)), messages(result)


def test_an_offline_client_makes_only_the_offline_operations() -> None:
    """The worker's and diagnose's offline clients refuse any call outside scopes.OFFLINE before
    sending it, so scopes.OFFLINE (and the flags pinned above) is what offline code does."""
    sent: list[str] = []

    class Recording(requests.Session):
        def request(self, method: str | bytes, url: str | bytes, *a: Any, **kw: Any) -> Any:
            sent.append(str(url))
            raise requests.ConnectionError("offline")

    base = "https://api.atlassian.com/ex/confluence/c"
    offline = Client(
        Recording(),
        base,
        "t",
        policy=Policy(max_retries=0),
        allowlist=("https://api.atlassian.com/",),
        sleep=lambda seconds: None,
    ).offline()
    assert "users_bulk" not in scopes.OFFLINE
    with pytest.raises(OfflineOperation):
        offline.lookup_users(["557058:a"])
    with pytest.raises(OfflineOperation):
        offline.probe_users(["557058:a"])  # a probe of an operation no offline scope covers
    assert sent == []
    offline.check_access(["a@b.co"])  # allowed: it is sent
    offline.probe_admin()
    assert len(sent) == 2
