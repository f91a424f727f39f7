"""``./dev`` as the README tells people to run it: it serves, its printed commands work, Ctrl-C stops all."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


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
    """stdout up to and including the first blank line after ``marker``."""
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


def test_dev_serves_the_panel_and_its_printed_commands_work(tmp_path: Path) -> None:
    port = two_free_ports()
    env = {**os.environ, "DATABASE_URL": "postgresql+psycopg://nobody@192.0.2.1/never-touched"}
    proc = subprocess.Popen(
        ["./dev", "--port", str(port), "--data-dir", str(tmp_path / "var")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        welcome = read_until(proc, "Access Desk is running", timeout=120)
        assert f"http://127.0.0.1:{port}/" in welcome
        host = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert host.status_code == 200 and "host-panel" in host.text
        health = requests.get(f"http://127.0.0.1:{port + 1}/healthz", timeout=10).json()
        assert health == {"status": "ok"}
        assert (tmp_path / "var" / "dev.sqlite3").is_file()  # not the DATABASE_URL above

        commands = re.findall(r"^curl -sS -H @.*$", welcome, flags=re.M)
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
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
    with pytest.raises(requests.ConnectionError):  # the backend stopped with it
        requests.get(f"http://127.0.0.1:{port + 1}/healthz", timeout=5)
