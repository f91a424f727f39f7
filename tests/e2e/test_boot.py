"""The server refuses to start on a bad environment: gunicorn stops instead of looping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


def refused_boot(env: dict[str, str]) -> str:
    """Start gunicorn on 127.0.0.1 with ``env``; assert it stopped with a failure and return what it
    printed (stdout, then stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "access_desk.app:create_app()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


@pytest.mark.e2e
def test_gunicorn_stops_with_one_message_naming_every_problem(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"FORGE_APP_ID", "SECRET_KEY"}}
    env["SECRET_KEY"] = "short"
    output = refused_boot(env)  # a server that kept restarting workers would hit the 60 s timeout
    assert "FORGE_APP_ID is required" in output
    assert "SECRET_KEY is not a Fernet key" in output
    assert output.count("Booting worker") <= 2


@pytest.mark.e2e
def test_gunicorn_stops_on_a_malformed_app_id_and_an_http_allowlist(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ALLOW_HTTP"}
    env.update(
        FORGE_APP_ID="nope",
        SECRET_KEY=Fernet.generate_key().decode(),
        API_BASE_URL_ALLOWLIST="http://127.0.0.1:9/ex/",
    )
    output = refused_boot(env)
    assert "FORGE_APP_ID='nope' is invalid" in output
    assert "API_BASE_URL_ALLOWLIST has an http:// URL" in output
    assert "Booting worker" not in output
