"""The Prometheus multiprocess directory (``PROMETHEUS_MULTIPROC_DIR``): kept as prometheus_client
documents for multiprocess mode, without files piling up as gunicorn recycles its workers.

prometheus_client's rules (https://prometheus.github.io/client_python/multiprocess/): the
directory "must be wiped between process/Gunicorn runs (before startup is recommended)"
(``wipe``, gunicorn.conf.py's ``on_starting``), and the master calls
``multiprocess.mark_process_dead(worker.pid)`` when a worker exits (``child_exit``). That call
removes only a dead worker's live-gauge files: its counter, histogram and summary files stay, since
deleting them would make counters go backwards, so every recycled worker (``max_requests``) left
two more files behind, each read at every scrape.

``fold_dead_worker`` (the ``child_exit`` hook) therefore also folds the dead worker's counter,
histogram and summary files into one ``<type>_archive.db`` per type, adding its values to the
archive's sample by sample (what the collector adds up at scrape time anyway), then deletes them:
the directory holds the live workers' files and at most one archive per type, and no total goes
backwards. A scrape (``reading``) holds a shared lock on the directory and the fold an exclusive
one, so no scrape sees a worker's values twice, or not at all, while they move.

This module defines no metric: the gunicorn master imports it without creating metric files.
"""

from __future__ import annotations

import fcntl
import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import multiprocess
from prometheus_client.mmap_dict import MmapedDict

FOLDED = ("counter", "histogram", "summary")  # values a dead worker's successors add to
LOCK = ".lock"  # not *.db: the collector never reads it


@contextmanager
def locked(path: str, *, exclusive: bool) -> Iterator[None]:
    """Hold the directory's lock: shared for a scrape, exclusive while files move."""
    with open(os.path.join(path, LOCK), "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def reading(path: str | None) -> Iterator[None]:
    """A scrape of ``path`` (no lock when multiprocess mode is off: ``path`` None)."""
    if not path:
        yield
        return
    with locked(path, exclusive=False):
        yield


def wipe(path: str) -> int:
    """Delete every metrics file of an earlier run in ``path`` (before any worker starts);
    returns how many went."""
    found = glob.glob(os.path.join(path, "*.db"))
    for name in found:
        os.remove(name)
    return len(found)


def fold_dead_worker(pid: int, path: str) -> int:
    """After worker ``pid`` exited: ``mark_process_dead`` (its live gauges), then its counter,
    histogram and summary files folded into the archives (see the module docstring); returns
    how many files were folded."""
    folded = 0
    with locked(path, exclusive=True):
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
        for kind in FOLDED:
            dead = os.path.join(path, f"{kind}_{pid}.db")
            if not os.path.exists(dead):
                continue
            archive = os.path.join(path, f"{kind}_archive.db")
            totals: dict[str, tuple[float, float]] = {}
            for name in (archive, dead):
                if not os.path.exists(name):
                    continue
                for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(name):  # type: ignore[no-untyped-call]
                    before, at = totals.get(key, (0.0, 0.0))
                    totals[key] = (before + value, max(at, timestamp))
            fresh = (
                archive + ".new"
            )  # not *.db: invisible to a scrape until it replaces the archive
            if os.path.exists(fresh):
                os.remove(fresh)
            written = MmapedDict(fresh)  # type: ignore[no-untyped-call]
            try:
                for key, (value, at) in totals.items():
                    written.write_value(key, value, at)  # type: ignore[no-untyped-call]
            finally:
                written.close()  # type: ignore[no-untyped-call]
            os.replace(fresh, archive)
            os.remove(dead)
            folded += 1
    return folded
