"""Production defaults for ``gunicorn 'app:create_app()'`` (read from the repository root).

Every value can be overridden on the command line or with GUNICORN_CMD_ARGS. The environment is
checked before any worker forks, so a bad configuration stops the server with one message.
"""

import multiprocessing
import os
import sys
import tempfile

bind = os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() * 2)))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "gthread"
timeout = 60  # Forge gives up on UI calls at 25 s; this only catches stuck workers
graceful_timeout = 20
keepalive = 5
max_requests = 5000
max_requests_jitter = 500
limit_request_line = 8190
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = None  # the app writes one JSON line per request instead
errorlog = "-"
preload_app = False  # each worker starts its own background job thread
# gunicorn >= 24 opens an admin socket in $HOME/.gunicorn; nothing here uses it, container users
# often have no writable home, and instances on one host would share the one path.
control_socket_disable = True

# Prometheus multiprocess mode: every worker writes its samples here and /metrics adds them up.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="access-desk-metrics-")


def on_starting(server: object) -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from settings import Settings, SettingsError

    # The threads each worker really runs (``--threads`` on the command line included): the app
    # derives its calls-in-flight bounds from them (call_limits.py).
    os.environ["GUNICORN_THREADS"] = str(server.cfg.threads)  # type: ignore[attr-defined]

    try:
        Settings.from_env(os.environ)
    except SettingsError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        sys.exit(1)


def child_exit(server: object, worker: object) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined,no-untyped-call]
