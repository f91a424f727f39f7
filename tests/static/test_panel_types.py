"""The panel's JavaScript is checked by TypeScript's compiler (./test's "==> tsc" step, jsconfig.json):
every module of static/ opts in with ``// @ts-check``, and the check is live: a copy of the panel with
the mistakes it is there for (an undefined name, an import of nothing, a property typo, a missing
argument, a value that may be null) is refused, each where it is.

tsc comes from the pinned npm tools (scripts/node-tools/, installed into .cache/node by ./test)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "static"
CONFIG = ROOT / "jsconfig.json"


def panel_modules() -> list[Path]:
    return sorted(
        STATIC.glob("*.js")
    )  # static/vendor/ is the @forge/bridge build: read, not checked


def test_every_panel_module_is_checked() -> None:
    assert len(panel_modules()) > 20
    for path in panel_modules():
        assert path.read_text().startswith("// @ts-check\n"), f"{path.name} lacks // @ts-check"
    config = json.loads(CONFIG.read_text())
    assert config["include"] == ["static/*.js"]
    options = config["compilerOptions"]
    assert options["noEmit"] is True and options["allowJs"] is True
    assert options["strict"] is True and options["lib"] == ["dom", "dom.iterable", "es2022"]
    assert "noImplicitAny" not in options and "strictNullChecks" not in options  # strict's own


def tsc() -> str:
    configured = os.environ.get("ACCESS_DESK_NODE_MODULES")
    modules = Path(configured) if configured else ROOT / ".cache" / "node" / "node_modules"
    path = modules / ".bin" / "tsc"
    if not path.exists():
        pytest.fail(f"tsc is not installed in {modules}; run ./test (it installs the npm tools)")
    return str(path)


# A mistake per module: (module, the line to put it after, the mistake, tsc's error code).
MISTAKES = [
    ("app.js", "async function start() {", "  announc('typo');", "TS2552"),  # cannot find name
    (
        "lookup.js",
        'import { avatar } from "./avatars.js";',
        'export { nope } from "./dom.js";',
        "TS2305",
    ),
    (
        "job-view.js",
        "export function finished(job) {",
        "  if (job.totl) { return true; }",
        "TS2551",
    ),
    ("csv.js", "export function toLines(values) {", "  formulaSafe();", "TS2554"),  # arguments
    (
        "flags.js",
        "function pageFlag(tone, title, text, actions) {",
        "  document.getElementById('x').focus();",
        "TS2531",
    ),
]


@pytest.mark.node  # tsc, from the npm tools ./test installs
def test_tsc_refuses_a_panel_with_mistakes(tmp_path: Path) -> None:
    shutil.copytree(STATIC, tmp_path / "static")
    shutil.copy(CONFIG, tmp_path / "jsconfig.json")
    for module, after, mistake, _ in MISTAKES:
        path = tmp_path / "static" / module
        text = path.read_text()
        assert text.count(after + "\n") == 1, (module, after)
        path.write_text(text.replace(after + "\n", f"{after}\n{mistake}\n"))
    proc = subprocess.run(
        [tsc(), "-p", "jsconfig.json", "--pretty", "false"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    errors = re.findall(r"^static/([\w.-]+)\(\d+,\d+\): error (TS\d+)", proc.stdout, flags=re.M)
    assert sorted(errors) == sorted((module, code) for module, _, _, code in MISTAKES), proc.stdout
