"""The README's webhook signing examples (Python and curl + openssl), run as printed against gunicorn."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_backend import call, wait_job

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
PLACEHOLDER_URL = "https://desk.example.com/webhooks/<installation-uuid>"
PLACEHOLDER_SECRET = "whsec_..."


def example(language: str, marker: str) -> str:
    """The README's fenced ``language`` block that contains ``marker`` (exactly one)."""
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"expected one {language} block with {marker!r}, found {len(found)}"
    assert PLACEHOLDER_URL in found[0] and PLACEHOLDER_SECRET in found[0]
    return str(found[0])


@pytest.mark.parametrize(
    ("language", "marker", "command"),
    [
        ("python", "standardwebhooks", [sys.executable, "-c"]),
        ("bash", "openssl dgst", ["bash", "-euo", "pipefail", "-c"]),
    ],
)
def test_readme_signing_example_queues_a_job(live_backend, platform, language, marker, command):
    rotated = call(live_backend.url, platform, "rotateWebhookSecret", {}).json()
    hook_url = live_backend.url + "/webhooks/" + rotated["url"].rsplit("/", 1)[1]
    script = (
        example(language, marker)
        .replace(PLACEHOLDER_URL, hook_url)
        .replace(PLACEHOLDER_SECRET, rotated["secret"])
    )

    run = subprocess.run([*command, script], capture_output=True, text=True, timeout=60)

    assert run.returncode == 0, run.stderr
    printed = run.stdout.strip()
    answer = ast.literal_eval(printed) if language == "python" else json.loads(printed)
    job = wait_job(live_backend.url, platform, answer["jobId"])
    assert job["source"] == "webhook" and job["state"] == "done"
    assert job["counts"]["invited"] + job["counts"]["alreadyHasAccess"] == 1
