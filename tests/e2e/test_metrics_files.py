"""gunicorn recycling its workers (``max_requests``) leaves no metrics files behind and no total
goes backwards (issue 16, item 8: about 30 recycles had left 61 files)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests

from bench.common import backend_env, stop_server
from tests.conftest import start_gunicorn

pytestmark = pytest.mark.e2e

HEALTHZ = re.compile(r'^access_desk_requests_total\{[^}]*endpoint="/healthz"[^}]*\} (\S+)$', re.M)


def healthz_total(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return sum(float(v) for v in HEALTHZ.findall(text))


def test_recycled_workers_leave_no_metrics_files_behind(settings, tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"\0" * 16)  # an earlier run's: wiped at start
    env = backend_env(
        settings,
        BACKGROUND_WORKER="false",
        PROMETHEUS_MULTIPROC_DIR=str(folder),
        GUNICORN_CMD_ARGS="--max-requests 4 --max-requests-jitter 0",
    )
    log = tmp_path / "gunicorn.log"
    server = start_gunicorn(env, log, workers=2)
    try:
        before = healthz_total(server.url)
        for _ in range(40):  # about ten recycles of two workers
            assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
        deadline = time.monotonic() + 30
        while len(list(folder.glob("*.db"))) > 2 * 2 + 2:  # two workers' files, two archives
            files = sorted(p.name for p in folder.glob("*.db"))
            assert time.monotonic() < deadline, f"metrics files pile up: {files}"
            time.sleep(0.1)
        after = healthz_total(server.url)
    finally:
        stop_server(server)
    assert log.read_text().count("Booting worker") >= 8, "the workers were not recycled"
    assert after - before == 40  # what the recycled workers counted is still there
    assert not (folder / "counter_999999.db").exists()
