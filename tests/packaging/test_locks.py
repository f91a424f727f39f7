"""Pinned versions: the Python lock files (requirements/run.lock, requirements/test.lock, written by
scripts/lock.sh from pyproject.toml) agree with pyproject.toml, and the npm test tools
(scripts/node-tools/package.json) are exact versions, locked by their package-lock.json.

The check does not resolve anything again (that needs the network): every dependency pyproject.toml
names is pinned at a version its specifier allows, nothing else claims to come from pyproject.toml,
and the virtualenv ./test made holds exactly the versions test.lock names (scripts/venv.sh installs
from it). After editing pyproject.toml's dependencies, `scripts/lock.sh` brings the locks along."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCKS = {"run": ROOT / "requirements" / "run.lock", "test": ROOT / "requirements" / "test.lock"}
FROM_PYPROJECT = "access-desk (pyproject.toml)"  # how the lock's "# via" names pyproject.toml
NODE_TOOLS = ROOT / "scripts" / "node-tools"
EXACT = re.compile(r"^\d+\.\d+\.\d+$")


@dataclass
class Pin:
    version: Version
    marker: Marker | None
    via: list[str] = field(default_factory=list)  # who needs it, from the "# via" lines


def read_lock(path: Path) -> dict[str, Pin]:
    """The pins of a lock file by canonical name; fails on anything but an exact pin."""
    pins: dict[str, Pin] = {}
    last: Pin | None = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("    #"):  # uv's annotations: "# via x", or "# via" then "#   x" lines
            if last is not None:
                words = line.strip().removeprefix("#").strip().removeprefix("via").strip()
                if words:
                    last.via.append(words)
            continue
        if not line.strip() or line.startswith("#"):
            continue
        requirement = Requirement(line)
        where = f"{path.name}:{number}: {line!r}"
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"not an exact pin: {where}"
        assert "*" not in specifiers[0].version and not requirement.url, f"not exact: {where}"
        assert not requirement.extras, f"extras are resolved into pins of their own: {where}"
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"pinned twice: {where}"
        last = pins[name] = Pin(Version(specifiers[0].version), requirement.marker)
    return pins


def project() -> dict[str, Any]:
    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"])


def wanted(project: dict[str, Any], mode: str) -> list[Requirement]:
    """What pyproject.toml asks for in ``mode``: [project].dependencies, plus [dev] for tests."""
    names = list(project["dependencies"])
    if mode == "test":
        names += project["optional-dependencies"]["dev"]
    return [Requirement(name) for name in names]


def disagreements(project: dict[str, Any], mode: str, pins: dict[str, Pin]) -> list[str]:
    """Where a lock and pyproject.toml's [project] disagree (nothing is resolved again): each
    dependency pinned at a version its specifier allows, and nothing else said to come from it."""
    found = []
    direct = {canonicalize_name(r.name) for r in wanted(project, mode)}
    for requirement in wanted(project, mode):
        name = canonicalize_name(requirement.name)
        if name not in pins:
            found.append(f"{requirement} is not in {mode}.lock")
        elif not requirement.specifier.contains(pins[name].version, prereleases=True):
            found.append(f"{mode}.lock pins {name}=={pins[name].version}, outside {requirement}")
    for locked, pin in sorted(pins.items()):
        if FROM_PYPROJECT in pin.via and locked not in direct:
            found.append(f"{mode}.lock has {locked} from pyproject.toml, which no longer names it")
        if not pin.via:
            found.append(f"{mode}.lock has {locked}, which nothing needs")
    return found


@pytest.fixture(scope="module", params=sorted(LOCKS))
def lock(request: pytest.FixtureRequest) -> tuple[str, dict[str, Pin]]:
    return request.param, read_lock(LOCKS[request.param])


def test_each_lock_agrees_with_pyproject(lock: tuple[str, dict[str, Pin]]) -> None:
    mode, pins = lock
    assert disagreements(project(), mode, pins) == [], "run scripts/lock.sh (README)"
    assert "access-desk" not in pins  # the project itself is installed from the tree, --no-deps


def test_a_changed_pyproject_disagrees_with_the_lock(lock: tuple[str, dict[str, Pin]]) -> None:
    mode, pins = lock
    changed = project()
    changed["dependencies"] = [
        "flask>=99" if d.startswith("flask") else d
        for d in changed["dependencies"]
        if not d.startswith("gunicorn")
    ] + ["httpx>=0.27"]
    assert disagreements(changed, mode, pins) == [
        f"{mode}.lock pins flask=={pins['flask'].version}, outside flask>=99",
        f"httpx>=0.27 is not in {mode}.lock",
        f"{mode}.lock has gunicorn from pyproject.toml, which no longer names it",
    ]


def test_running_gets_the_versions_tests_ran_with() -> None:
    # ./dev and ./test share one .venv: what running needs has the same version in both locks.
    run, test = read_lock(LOCKS["run"]), read_lock(LOCKS["test"])
    for name, pin in run.items():
        assert name in test, f"{name} is in run.lock but not in test.lock"
        assert (test[name].version, test[name].marker) == (pin.version, pin.marker), name


def test_the_virtualenv_holds_the_locked_versions() -> None:
    # scripts/venv.sh installs test.lock into the .venv this test runs in.
    for name, pin in read_lock(LOCKS["test"]).items():
        if pin.marker is not None and not pin.marker.evaluate():
            continue  # not for this platform (colorama on Windows, say)
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            pytest.fail(f"{name} is locked but not installed: run ./test (scripts/venv.sh)")
        assert installed == pin.version, f"{name} {installed} is installed, test.lock says {pin}"


def test_a_lock_line_that_is_no_exact_pin_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose.lock"
    loose.write_text(LOCKS["run"].read_text().replace("flask==", "flask>="))
    with pytest.raises(AssertionError, match="not an exact pin"):
        read_lock(loose)


def test_node_tools_are_pinned_exactly_and_locked() -> None:
    package = json.loads((NODE_TOOLS / "package.json").read_text())
    pinned = package["devDependencies"]
    assert set(pinned) == {"@forge/manifest", "axe-core", "tslib", "typescript"}
    assert all(EXACT.match(version) for version in pinned.values()), pinned
    lock = json.loads((NODE_TOOLS / "package-lock.json").read_text())
    assert lock["packages"][""]["devDependencies"] == pinned
    for name, version in pinned.items():
        locked = lock["packages"][f"node_modules/{name}"]
        assert locked["version"] == version
        assert locked["integrity"].startswith("sha512-")
    # Every package of the tree is locked to one version and its checksum: npm ci installs exactly it.
    for path, entry in lock["packages"].items():
        if path:
            assert EXACT.match(entry["version"].split("-")[0]), path
            assert entry["integrity"].startswith("sha512-"), path
