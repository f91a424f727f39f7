"""``./dev`` as the README tells people to run it: it installs only what running needs, serves,
keeps its welcome on screen (request logs go to ``dev.log``), restarts on an old data folder, says
which port is taken, and its printed commands work; Ctrl-C stops all."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import signal
import socket
import sqlite3
import stat
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.common import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SCREEN = 24  # lines of a small terminal
TEST_TOOLS = ("pytest", "ruff", "mypy", "playwright", "hypothesis", "jsonschema")


def two_free_ports() -> int:
    """A port P with P + 1 free too (./dev puts the backend on the next port)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two free ports in a row")


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """Output up to and including the first blank line after ``marker`` (the whole welcome)."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("./dev stopped:\n" + "".join(seen))
        seen.append(line)
        text = "".join(seen)
        if marker in text and text.rstrip(" ").endswith("\n\n") and "_sim/webhooks" in text:
            return text
    raise AssertionError("./dev did not get ready:\n" + "".join(seen))


class Dev:
    """A running ``./dev``: its port, data folder and everything it printed so far."""

    def __init__(self, proc: subprocess.Popen[str], port: int, var: Path, welcome: str) -> None:
        self.proc, self.port, self.var, self.welcome = proc, port, var, welcome
        self.rest = ""  # printed after the welcome, filled in when it stopped

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def backend(self) -> str:
        return f"http://127.0.0.1:{self.port + 1}"

    def resolver(self, key: str, payload: dict[str, Any]) -> Any:
        """A resolver call as the site admin with the header file ./dev wrote."""
        lines = (self.var / "dev-admin-headers.txt").read_text().splitlines()
        headers = dict(line.split(": ", 1) for line in lines if line)
        answer = requests.post(
            f"{self.backend}/resolvers/{key}", json=payload, headers=headers, timeout=30
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def click(self, key: str, payload: dict[str, Any], account: str) -> Any:
        """What a click in the panel does: the host's invokeRemote bridge calls a resolver."""
        call = {
            "path": f"/resolvers/{key}",
            "method": "POST",
            "accountId": account,
            "body": payload,
        }
        answer = requests.post(f"{self.url}/_host/invoke", json=call, timeout=30).json()
        assert answer["status"] == 200, answer
        return json.loads(answer["body"])

    def webhook_job(self, secret: str, email: str) -> dict[str, Any]:
        """Send a signed webhook through the simulator and wait for its job to end."""
        sent = requests.post(
            f"{self.url}/_sim/webhooks", json={"secret": secret, "emails": [email]}, timeout=30
        ).json()
        assert sent["status"] == 202, sent
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.resolver("getJob", {"jobId": sent["body"]["jobId"]})["job"]
            if job["state"] in ("done", "failed"):
                return job
            time.sleep(0.3)
        raise AssertionError(f"the webhook job did not end: {job}")


@contextmanager
def running_dev(
    var: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> Iterator[Dev]:
    """``./dev --port P --data-dir var *args`` until the block ends, then Ctrl-C (exit 0)."""
    port = two_free_ports()
    proc = subprocess.Popen(
        ["./dev", "--port", str(port), "--data-dir", str(var), *args],
        cwd=ROOT,
        env=env or dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        dev = Dev(proc, port, var, read_until(proc, "Access Desk is running", timeout))
        yield dev
    finally:  # also when the block failed: Ctrl-C, so that ./dev stops its backend itself
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rest, _ = proc.communicate()
    dev.rest = rest
    assert proc.returncode == 0, rest


def test_dev_serves_the_panel_and_its_printed_commands_work(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql+psycopg://nobody@192.0.2.1/never-touched"}
    with running_dev(tmp_path / "var", env=env) as dev:
        assert f"{dev.url}/" in dev.welcome
        host = requests.get(f"{dev.url}/", timeout=10)
        assert host.status_code == 200 and "host-panel" in host.text
        health = requests.get(f"{dev.backend}/healthz", timeout=10).json()
        assert health == {"status": "ok"}
        assert (tmp_path / "var" / "dev.sqlite3").is_file()  # not the DATABASE_URL above

        commands = re.findall(r"^curl -sS -H @.*$", dev.welcome, flags=re.M)
        assert [c.rsplit("/", 1)[1] for c in commands] == [
            "whoami",
            "lookupUsers",
            "checkAccess",
            "inviteEmails",
        ]
        answers = {}
        for command in commands:
            run = subprocess.run(
                ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=30
            )
            assert run.returncode == 0, run.stderr
            answers[command.rsplit("/", 1)[1]] = json.loads(run.stdout)
        assert answers["whoami"]["isAdmin"] is True
        assert answers["lookupUsers"]["notFound"] == ["unknown-account-id"]
        assert answers["checkAccess"]["invalid"] == ["not-an-email"]
        assert answers["inviteEmails"]["job"]["dryRun"] is True

        # a click-through: the panel loads, then a few calls through the host's bridge
        assert requests.get(f"{dev.url}/panel/", timeout=10).status_code == 200
        admin = answers["whoami"]["accountId"]
        users = answers["lookupUsers"]["users"]
        assert dev.click("whoami", {}, admin)["accountId"] == admin
        found = dev.click("lookupUsers", {"accountIds": [u["accountId"] for u in users]}, admin)
        assert len(found["users"]) == len(users) == 3
        checked = dev.click("checkAccess", {"emails": ["new.hire5@example.com"]}, admin)
        assert checked["withoutAccess"] == ["new.hire5@example.com"]
    with pytest.raises(requests.ConnectionError):  # the backend stopped with it
        requests.get(f"{dev.backend}/healthz", timeout=5)

    # nothing but the welcome on the terminal: its first screen still has the URL and commands
    assert dev.rest.strip() == "Access Desk dev stopped."
    screen = "".join(dev.welcome.splitlines(keepends=True)[:SCREEN])
    assert f"admin panel          {dev.url}/" in screen
    assert all(command in screen for command in commands)
    assert "request logs" in screen and "dev.log" in screen
    assert '"msg": "request"' not in dev.welcome and "Booting worker" not in dev.welcome

    # ... and the request lines went to dev.log: the backend's and the simulator's
    log = (tmp_path / "var" / "dev.log").read_text()
    backend_paths = [
        json.loads(line)["path"] for line in log.splitlines() if '"msg": "request"' in line
    ]
    assert backend_paths.count("/resolvers/whoami") == 2
    assert backend_paths.count("/resolvers/lookupUsers") == 2
    assert "Booting worker" in log
    assert re.search(r'^simulator .*"POST /_host/invoke HTTP/1\.1" 200', log, flags=re.M)
    assert re.search(r'^simulator .*"GET /panel/ HTTP/1\.1" 200', log, flags=re.M)


def test_verbose_prints_the_request_logs_and_keeps_dev_log(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir()
    (var / "dev.log").write_text("the previous run\n")
    with running_dev(var, "--verbose") as dev:
        dev.resolver("whoami", {})
        assert requests.get(f"{dev.url}/panel/", timeout=10).status_code == 200
    printed = dev.welcome + dev.rest
    assert "Booting worker" in printed  # the backend starts before the welcome
    assert re.search(r'"path": "/resolvers/whoami", "status": 200', dev.rest)
    assert re.search(r'^simulator .*"GET /panel/ HTTP/1\.1" 200', dev.rest, flags=re.M)
    log = (var / "dev.log").read_text()
    assert '"path": "/resolvers/whoami"' in log and '"GET /panel/ HTTP/1.1" 200' in log
    assert (var / "dev.log.1").read_text() == "the previous run\n"


@pytest.mark.parametrize("taken", [(1,), (0,), (0, 1)], ids=["backend", "panel", "both"])
def test_a_taken_port_is_named_with_the_port_option(tmp_path: Path, taken: tuple[int, ...]) -> None:
    port = two_free_ports()
    blockers = []
    try:
        for offset in taken:
            blocker = socket.socket()
            blockers.append(blocker)
            blocker.bind(("127.0.0.1", port + offset))
            blocker.listen()
        run = subprocess.run(
            ["./dev", "--port", str(port), "--data-dir", str(tmp_path / "var")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        for blocker in blockers:
            blocker.close()
    assert run.returncode == 1
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    for offset in taken:
        assert f"{port + offset} (" in run.stderr
    assert "already in use" in run.stderr and "--port" in run.stderr
    spare = re.search(r"\./dev --port (\d+) +\(uses (\d+) and (\d+)\)", run.stderr)
    assert spare is not None, run.stderr
    assert int(spare[2]) == int(spare[1]) and int(spare[3]) == int(spare[1]) + 1 > port + 1
    assert not (tmp_path / "var").exists()  # it stopped before doing anything


def test_a_restart_on_an_old_data_folder_runs_webhook_jobs(tmp_path: Path) -> None:
    var = tmp_path / "var"
    with running_dev(var) as dev:
        secret = dev.resolver("rotateWebhookSecret", {})["secret"]
        job = dev.webhook_job(secret, "new.hire3@example.com")
        assert (job["state"], job["counts"]["invited"]) == ("done", 1)
    with sqlite3.connect(var / "dev.sqlite3") as db:  # the job's offline token is kept ...
        assert db.execute("select count(*) from offline_tokens").fetchone() == (1,)
    site = re.compile(r"Confluence site ([0-9a-f-]{36})\)")

    with running_dev(var) as again:
        with sqlite3.connect(var / "dev.sqlite3") as db:  # ... but this simulator never issued it
            assert db.execute("select count(*) from offline_tokens").fetchone() == (0,)
        assert site.findall(again.welcome) == site.findall(dev.welcome) != []  # the same seed
        job = again.webhook_job(secret, "new.hire4@example.com")
        assert (job["state"], job["counts"]["invited"], job["counts"]["failed"]) == ("done", 1, 0)
        found = again.resolver("lookupUsers", {"accountIds": ["unknown-account-id"]})
        assert found["notFound"] == ["unknown-account-id"]
        assert (
            len(again.resolver("listJobs", {})["jobs"]) == 2
        )  # the first run's job is still there


def fake_python(venv: Path) -> Path:
    """A virtualenv whose python records how it was called and answers an install as pip would
    (exit status ``$FAKE_PIP_STATUS``, default 0), and ``pip check`` with ``$FAKE_PIP_CHECK``'s
    complaint when set; for the install logic."""
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {venv / "calls"}\n'
        'if [ "$*" = "-m pip check" ] && [ -n "${FAKE_PIP_CHECK:-}" ]; then\n'
        '  echo "$FAKE_PIP_CHECK"; exit 1\n'
        "fi\n"
        'case "$*" in *" -e "*) ;; *) exit 0 ;; esac\n'
        "echo 'Collecting flask>=3.0'\n"
        "echo '  Downloading flask-3.1.3-py3-none-any.whl (103 kB)'\n"
        'if [ "${FAKE_PIP_STATUS:-0}" != 0 ]; then echo "ERROR: no space left" >&2; exit 1; fi\n'
        "echo 'Successfully installed flask-3.1.3'\n"
    )
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    return venv / "calls"


def source_venv_sh(
    venv: Path, mode: str, root: Path = ROOT, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"source scripts/venv.sh {mode}"],
        cwd=root,
        env={**os.environ, "ACCESS_DESK_VENV": str(venv), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def installs_of(venv: Path, calls: Path, root: Path = ROOT) -> Callable[[str], list[str]]:
    """``installs(mode)``: what sourcing scripts/venv.sh in ``mode`` installed (the lock, then the
    project), as the fake python was called."""

    def installs(mode: str) -> list[str]:
        before = calls.read_text().splitlines() if calls.exists() else []
        run = source_venv_sh(venv, mode, root)
        assert run.returncode == 0, run.stderr
        new = calls.read_text().splitlines()[len(before) :] if calls.exists() else []
        return [c for c in new if c.startswith("-m pip install") and "--upgrade pip" not in c]

    return installs


def test_run_and_test_installs_share_one_virtualenv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    calls = fake_python(venv)
    (venv / ".installed-0123456789abcdef").touch()  # an older script's stamp
    installs = installs_of(venv, calls)
    run_lock = ["-m pip install -r requirements/run.lock", "-m pip install --no-deps -e ."]
    test_lock = ["-m pip install -r requirements/test.lock", "-m pip install --no-deps -e ."]

    assert installs("run") == run_lock
    assert installs("run") == []  # installed: nothing to do
    assert installs("test") == test_lock
    assert installs("test") == [] and installs("run") == []  # ./dev after ./test keeps the tools
    stamps = sorted(p.name for p in venv.glob(".installed-*"))
    assert [s.rsplit("-", 1)[0] for s in stamps] == [".installed-run", ".installed-test"]
    assert "-m pip check" in calls.read_text().splitlines()  # nothing the project needs is missing

    for stamp in venv.glob(".installed-*"):  # pyproject.toml or a lock changed since
        stamp.rename(stamp.with_name(stamp.name.rsplit("-", 1)[0] + "-fedcba9876543210"))
    assert installs("run") == run_lock
    assert [p.name.startswith(".installed-run-") for p in venv.glob(".installed-*")] == [True]


def test_a_changed_lock_or_pyproject_installs_again(tmp_path: Path) -> None:
    # A copy of what scripts/venv.sh reads, so that its files can change.
    root = tmp_path / "clone"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "venv.sh", root / "scripts")
    shutil.copy(ROOT / "pyproject.toml", root)
    shutil.copytree(ROOT / "requirements", root / "requirements")
    venv = tmp_path / "venv"
    installs = installs_of(venv, fake_python(venv), root)
    assert installs("test") == [
        "-m pip install -r requirements/test.lock",
        "-m pip install --no-deps -e .",
    ]
    for changed in ("requirements/run.lock", "requirements/test.lock", "pyproject.toml"):
        assert installs("test") == [] and installs("run") == []
        with (root / changed).open("a") as f:
            f.write("\n# changed\n")
        assert len(installs("run")) == 2, changed  # either lock changes what both modes share
        assert len(installs("test")) == 2, changed


def test_a_failed_pip_check_stops_the_install(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    fake_python(venv)
    run = source_venv_sh(
        venv, "run", FAKE_PIP_CHECK="access-desk 0.1.0 requires httpx, which is not installed."
    )
    assert run.returncode != 0
    assert "requires httpx, which is not installed" in run.stderr
    assert (
        "Is requirements/run.lock older than pyproject.toml? Then run scripts/lock.sh" in run.stderr
    )
    assert not list(venv.glob(".installed-run-*"))  # tried again next time


def on_a_terminal(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``command`` with a 60-column pseudo-terminal as stdout and stderr: (status, output)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 60, 0, 0))
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=follower, stderr=follower)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    return proc.wait(timeout=60), out.decode()


def test_on_a_terminal_the_install_shows_one_live_line_and_pip_log_on_failure(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"
    fake_python(venv)
    env = {**os.environ, "ACCESS_DESK_VENV": str(venv)}
    command = ["bash", "-c", "source scripts/venv.sh run"]

    status, out = on_a_terminal(command, {**env, "FAKE_PIP_STATUS": "1"})
    assert status != 0
    assert "pip failed; its output" in out and "ERROR: no space left" in out
    assert not list(venv.glob(".installed-run-*"))

    status, out = on_a_terminal(command, env)
    assert status == 0, out
    assert "==> [2/2] installing Access Desk and what it needs to run" in out
    assert "\r\x1b[K    Collecting flask>=3.0\r\x1b[K    Downloading flask-3.1.3-py3" in out
    assert "\r\x1b[K    Successfully installed flask-3.1.3\r\x1b[K==> installed in" in out
    assert "\nCollecting" not in out.replace("\r\n", "\n")  # pip's lines are not scrolled by
    assert "Successfully installed flask-3.1.3" in (venv / "pip.log").read_text()
    assert list(venv.glob(".installed-run-*"))


@pytest.mark.timeout(900)
def test_a_fresh_virtualenv_holds_no_test_tools_and_reaches_the_panel(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = {**os.environ, "ACCESS_DESK_VENV": str(venv)}
    with running_dev(tmp_path / "var", env=env, timeout=840) as dev:
        assert requests.get(f"{dev.url}/panel/", timeout=10).status_code == 200
        assert dev.resolver("whoami", {})["isAdmin"] is True
    shown = dev.welcome
    assert f"==> creating the virtualenv {venv}" in shown
    assert "==> [2/2] installing Access Desk and what it needs to run" in shown
    assert "Successfully installed" in shown  # pip's own output, as stderr is not a terminal here
    assert "BuildBackendWarning" not in shown and "!!" not in shown  # no setuptools warning
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    run = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            probe,
            "flask",
            "gunicorn",
            "access_desk",
            *TEST_TOOLS,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.stdout.strip() == "['flask', 'gunicorn', 'access_desk']", run.stderr
    assert not (venv / "bin" / "pytest").exists() and not (venv / "bin" / "ruff").exists()


def test_help_says_what_every_option_does_in_words() -> None:
    run = subprocess.run(["./dev", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    text = run.stdout
    assert "`" not in text  # words, not reStructuredText
    assert "Try with sample data" in text and "Ctrl-C" in text
    usage = text.split("\n\n", 1)[0]
    options = sorted(set(re.findall(r"--[a-z-]+", usage)))
    assert options == [
        "--data-dir",
        "--host",
        "--latency-ms",
        "--port",
        "--quota",
        "--quota-costs",
        "--quota-mode",
        "--quota-spelling",
        "--verbose",
    ]
    listed = text.split("options:", 1)[1]
    for option in ["--help", *options]:
        # Each option's line, and the help text after it (on the same line or the next).
        at = re.search(rf"^  (?:-h, )?{option}\b[^\n]*(?:\n {{20,}}[^\n]+)*", listed, flags=re.M)
        assert at is not None, option
        said = re.sub(rf"^  (?:-h, )?{option}( [A-Z/{{}},\[\]]+)?", "", at[0]).split()
        assert len(said) >= 4, (option, at[0])  # a sentence, not a bare name
