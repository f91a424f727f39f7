"""Production defaults for ``gunicorn`` (read from the current directory: the repository root, or
``/app`` in the image, which copies this file).

``wsgi_app`` names the app, so plain ``gunicorn`` serves it (``gunicorn 'access_desk.app:create_app()'``
does the same).

Every value can be overridden on the command line or with GUNICORN_CMD_ARGS. The environment is
checked before any worker forks, so a bad configuration stops the server with one message; the
threads each worker runs are passed on to the app in ``GUNICORN_THREADS`` (its calls-in-flight
bounds derive from them), the metrics directory is kept tidy (metrics_files.py), and each worker's
start-up objects are frozen out of the garbage collector's scans (``post_worker_init``).
"""

import multiprocessing
import os
import sys
import tempfile

wsgi_app = "access_desk.app:create_app()"
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
# The directory is wiped before the workers start and each dead worker's files are folded into
# one archive per metric type (metrics_files.py), so recycled workers leave nothing behind.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="access-desk-metrics-")


def on_starting(server: object) -> None:
    from access_desk.settings import Settings, SettingsError

    # The threads each worker really runs (``--threads`` on the command line included): the app
    # derives its calls-in-flight bounds from them (call_limits.py).
    os.environ["GUNICORN_THREADS"] = str(server.cfg.threads)  # type: ignore[attr-defined]

    try:
        Settings.from_env(os.environ)
    except SettingsError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        sys.exit(1)
    from access_desk.metrics_files import wipe

    # prometheus_client: the directory "must be wiped between process/Gunicorn runs"
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    wipe(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def child_exit(server: object, worker: object) -> None:
    from access_desk.metrics_files import fold_dead_worker

    pid: int = worker.pid  # type: ignore[attr-defined]
    try:
        fold_dead_worker(pid, os.environ["PROMETHEUS_MULTIPROC_DIR"])
    except OSError as exc:  # the master must go on whatever the metrics directory does
        print(f"metrics files of worker {pid} not folded: {exc}", file=sys.stderr, flush=True)


def post_worker_init(worker: object) -> None:
    # Everything the worker built to serve (the app, SQLAlchemy's and the libraries' modules)
    # lives as long as the worker: the garbage collector stops scanning it, so a full collection
    # looks only at what calls made. Measured under bench/floor.py: a worker's first full
    # collection took 50-60 ms of CPU, about 0.2 ms per call over its first 250 calls.
    import gc

    gc.freeze()
