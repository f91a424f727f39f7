"""The wheel works on its own: built from the product's folders only (as the Dockerfile's build
stage does; access_desk/static is a link to static/, followed when the wheel is built), installed
into a clean virtualenv (the exact versions of requirements/run.lock, the wheel with --no-deps),
then plain ``gunicorn`` with the repository's gunicorn.conf.py (as the image runs it) in a temporary
directory with no source tree, against a fresh SQLite database and the simulated platform:
``/healthz``, a signed resolver call, the panel's HTML and a static script are served, and the
store was migrated to Alembic's head.

pip's downloads come from ``.cache/pip`` (scripts/venv.sh fills it), so this takes seconds once
``./test`` has run.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests

from access_desk.settings import Settings
from bench.common import LiveServer, backend_env, free_port, stop_server
from simulator import Platform
from tests.conftest import ROOT
from tests.e2e.test_backend import call

pytestmark = pytest.mark.e2e

PRODUCT = ("pyproject.toml", "access_desk", "handlers", "resolvers", "static")
HEAD = "0012"  # the newest migration, 0012_work_turns.py


def pip(*args: str, python: Path | None = None) -> None:
    """``pip`` of the test's own virtualenv, acting on ``python``'s environment when given."""
    env = {**os.environ, "PIP_CACHE_DIR": str(ROOT / ".cache" / "pip")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    target = ("--python", str(python)) if python is not None else ()
    run = subprocess.run(
        [sys.executable, "-m", "pip", *target, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the product's folders (no stale build/, no other file)."""
    source = tmp_path_factory.mktemp("source")
    for name in PRODUCT:
        if (ROOT / name).is_dir():
            skip = shutil.ignore_patterns("__pycache__")  # access_desk/static stays a link to
            shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=skip)  # static/
        else:
            shutil.copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    pip("wheel", "--no-deps", "--wheel-dir", str(out), str(source))
    [built] = out.glob("access_desk-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean virtualenv with run.lock and the wheel: its bin/ folder."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip("install", "--no-deps", "-r", str(ROOT / "requirements" / "run.lock"), python=python)
    pip("install", "--no-deps", str(wheel), python=python)
    return venv / "bin"


def test_the_wheel_holds_the_product_and_nothing_else(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"access_desk", "handlers", "resolvers"}
    assert "access_desk/static/index.html" in names
    assert "access_desk/static/vendor/forge-bridge.js" in names
    assert "access_desk/store/migrations/env.py" in names
    assert "access_desk/store/migrations/script.py.mako" in names
    assert f"access_desk/store/migrations/versions/{HEAD}_work_turns.py" in names
    assert not [n for n in names if n.startswith(("simulator/", "tests/", "bench/", "scripts/"))]
    sources = {  # every module of the product: a package left out of pyproject.toml shows here
        p.relative_to(ROOT).as_posix()
        for top in ("access_desk", "handlers", "resolvers")
        for p in (ROOT / top).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert sources - set(names) == set()


def test_the_installed_wheel_serves_the_panel_and_resolvers(
    installed: Path, settings: Settings, platform: Platform, tmp_path: Path
) -> None:
    here = tmp_path / "run"  # no source tree: only the configuration file the image copies too
    here.mkdir()
    shutil.copy(ROOT / "gunicorn.conf.py", here / "gunicorn.conf.py")
    database = here / "access-desk.sqlite3"
    env = backend_env(settings, DATABASE_URL=f"sqlite:///{database}")
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{installed}{os.pathsep}{env.get('PATH', '')}"
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(installed / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1"],
            cwd=here,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log)
    try:
        health = wait_healthy(server)
        assert health.json() == {"status": "ok"}
        who = call(server.url, platform, "whoami", {})
        assert who.status_code == 200, who.text
        assert who.json()["isAdmin"] is True
        panel = requests.get(server.url + "/", timeout=10)
        assert panel.status_code == 200 and "<html" in panel.text.lower()
        script = requests.get(server.url + "/app.js", timeout=10)
        assert script.status_code == 200
        assert script.content == (ROOT / "static" / "app.js").read_bytes()
    finally:
        stop_server(server)
    assert "ModuleNotFoundError" not in server.output()
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
    imported = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            "import access_desk, handlers; print(access_desk.__file__)",
        ],
        cwd=here,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "site-packages" in imported.stdout  # the installed copy, not a source tree


def wait_healthy(server: LiveServer) -> requests.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"gunicorn exited early:\n{server.output()}")
        try:
            answer = requests.get(server.url + "/healthz", timeout=1)
            if answer.status_code == 200:
                return answer
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"gunicorn did not answer in time:\n{server.output()}")
