"""The vendored @forge/bridge build (static/vendor/forge-bridge.js) is exactly what
scripts/build-bridge.sh makes from the pinned packages, and the panel talks to Forge only through it.

The script installs its tools (scripts/bridge/package-lock.json, `npm ci`) into
scripts/bridge/node_modules when they are missing; ./test does that before pytest starts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.node  # Node.js tools from .cache/node and scripts/bridge (./test)
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build-bridge.sh"
TOOLS = ROOT / "scripts" / "bridge"
VENDORED = ROOT / "static" / "vendor" / "forge-bridge.js"
EXACT = re.compile(r"^\d+\.\d+\.\d+$")


def build(out: Path) -> bytes:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.fail("node and npm are needed to build the Forge bridge; install Node.js 20+")
    proc = subprocess.run(
        [str(SCRIPT), str(out)], capture_output=True, text=True, timeout=280, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build(tmp_path_factory.mktemp("bridge") / "forge-bridge.js")


def pins() -> dict[str, str]:
    package = json.loads((TOOLS / "package.json").read_text())
    return dict(package["devDependencies"])


def test_committed_build_is_what_the_script_makes(built: bytes) -> None:
    assert VENDORED.read_bytes() == built, (
        "static/vendor/forge-bridge.js differs from a fresh build: run scripts/build-bridge.sh "
        "and commit the result"
    )


def test_build_is_deterministic(built: bytes, tmp_path: Path) -> None:
    # Another folder, another name: the bytes do not depend on where the bundle is written.
    again = build(tmp_path / "elsewhere" / "bridge.mjs")
    assert again == built


def test_tools_are_pinned_exactly_and_locked() -> None:
    wanted = pins()
    assert set(wanted) == {"@forge/bridge", "esbuild"}
    assert all(EXACT.match(version) for version in wanted.values()), wanted
    lock = json.loads((TOOLS / "package-lock.json").read_text())
    assert lock["packages"][""]["devDependencies"] == wanted
    for name, version in wanted.items():
        locked = lock["packages"][f"node_modules/{name}"]
        assert locked["version"] == version
        assert locked["integrity"].startswith("sha512-")


def test_header_names_the_versions_and_the_command(built: bytes) -> None:
    head = built.decode().splitlines()[:3]
    wanted = pins()
    assert head[0].startswith(f"// @forge/bridge {wanted['@forge/bridge']} from npm")
    assert f"with esbuild {wanted['esbuild']}" in head[2]
    assert "scripts/build-bridge.sh" in head[2]


def test_bundle_is_forge_bridge_itself(built: bytes) -> None:
    text = built.decode()
    # @forge/bridge's own modules, and the module interface the panel imports (static/bridge.js).
    modules = [
        "out/bridge.js",
        "out/invoke-endpoint/invoke-endpoint.js",
        "out/view/theme.js",
        "out/flag/flag.js",
    ]
    for module in modules:
        assert f"// node_modules/@forge/bridge/{module}\n" in text
    assert "invokeType: `ui-${invokeType.toLowerCase()}-fetch`" in text
    assert 'callBridge("showFlag"' in text and 'callBridge("closeFlag", { id: options.id })' in text
    exports = re.search(r"export \{([^}]*)\};\s*$", text)
    assert exports is not None
    names = {part.split(" as ")[-1].strip() for part in exports.group(1).split(",")}
    assert names == {"BridgeAPIError", "invokeRemote", "showFlag", "view"}


def test_panel_code_does_not_speak_the_bridge_protocol() -> None:
    # Only the vendored build knows @forge/bridge's messages and envelope.
    for path in sorted((ROOT / "static").glob("*.js")):
        text = path.read_text()
        words = [
            "callBridge",
            "ui-remote-fetch",
            "enableTheming'",
            '"enableTheming"',
            '"closeFlag"',
        ]
        for word in words:
            assert word not in text, f"{path.name} uses {word}"
    assert 'import("./vendor/forge-bridge.js")' in (ROOT / "static" / "bridge.js").read_text()
