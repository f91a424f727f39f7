"""How many resolver calls one server process runs at once, derived from its threads.

A gunicorn process has ``threads`` threads (``GUNICORN_THREADS``; gunicorn.conf.py passes the
real count on, ``--threads`` included) and a call holds one until it ends, slow Confluence
lookups included. ``Limits.derive(threads)`` splits them so that no tenant, and no few tenants,
can take them all:

- ``per_installation``: half the threads (at least 1), of which ``reserve`` (1, when there are at
  least 2) is kept for short calls of people not known to be non-administrators: the admins of an
  installation whose ordinary slots are full still open the panel, poll their jobs and cancel;
- ``per_user``: one less than the installation's ordinary slots, but at least 2 (a panel may have
  a short call going beside another) and at most ``per_installation``, so one person never takes
  them all where there are more than two;
- ``slow``: calls that wait on many Confluence requests (lookups, access checks, diagnose) in the
  whole process: all threads but ``max(2, threads // 4)`` (at least 1), so short calls of every
  other installation always find a thread.

``MAX_CALLS_PER_INSTALLATION`` and ``MAX_CALLS_PER_USER`` override the first two;
``limits_problems`` says when they do not fit the threads (settings refuse to start).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Calls in flight per process: per installation (its ``reserve`` included), per user, and
    slow calls in all; see the module docstring."""

    threads: int
    per_installation: int
    per_user: int
    reserve: int
    slow: int

    def __post_init__(self) -> None:
        if min(self.threads, self.per_installation, self.per_user, self.slow) < 1:
            raise ValueError("every limit must be at least 1")
        if not 0 <= self.reserve < self.per_installation:
            raise ValueError("the reserve must leave at least one ordinary slot")

    @classmethod
    def derive(
        cls,
        threads: int,
        per_installation: int | None = None,
        per_user: int | None = None,
    ) -> Limits:
        """The limits for ``threads`` threads per process; the two overrides replace the derived
        per-installation and per-user bounds (``limits_problems`` checks them first)."""
        threads = max(1, threads)
        installation = per_installation or max(1, threads // 2)
        reserve = 1 if installation >= 2 else 0
        ordinary = installation - reserve
        user = per_user or max(2, ordinary - 1)
        slow = max(1, threads - max(2, threads // 4))
        return cls(threads, installation, min(user, installation), reserve, slow)


def limits_problems(threads: int, per_installation: int | None, per_user: int | None) -> list[str]:
    """What is wrong with ``MAX_CALLS_PER_INSTALLATION`` / ``MAX_CALLS_PER_USER`` for ``threads``
    threads per process (``GUNICORN_THREADS``): one installation may not take every thread (with
    one thread, it has that one), nor one user more than their installation."""
    problems: list[str] = []
    most = max(1, threads - 1)
    if per_installation is not None and per_installation > most:
        problems.append(
            f"MAX_CALLS_PER_INSTALLATION={per_installation} does not fit GUNICORN_THREADS="
            f"{threads}: at most {most}, so other installations always find a thread "
            "(leave it unset to derive it from the threads)"
        )
    bound = per_installation or Limits.derive(threads).per_installation
    if per_user is not None and per_user > bound:
        problems.append(
            f"MAX_CALLS_PER_USER={per_user} is more than the calls one installation may run "
            f"({bound}); leave it unset to derive it from the threads"
        )
    return problems
