"""Fair shares of the app's points pool between installations and their users (contract §6).

In any window an installation may spend ``Shares.installation`` of the pool (``INSTALLATION_SHARE``,
0.5) and one of its users ``Shares.user`` of that (``USER_SHARE``, 0.5: a quarter of the pool).
Beyond its share an installation (or user) may borrow capacity nobody is using, but never into the
last quarter of the pool (``LAST_QUARTER``), which stays for the other customers: a request may
borrow when what is left after it is still above that quarter. A request whose estimate could
never fit (more than three quarters of the pool: estimates are only estimates, the ledger learns
the real costs) is judged by what is left before it, so it is sent once rather than never.
"""

from __future__ import annotations

from dataclasses import dataclass

LAST_QUARTER = 0.25


@dataclass(frozen=True, slots=True)
class Shares:
    """``INSTALLATION_SHARE`` and ``USER_SHARE`` (each 0 < share <= 1)."""

    installation: float = 0.5
    user: float = 0.5

    def __post_init__(self) -> None:
        for name in ("installation", "user"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"{name} share must be more than 0 and at most 1, not {value}")

    def of_installation(self, limit: float) -> float:
        """The points an installation may spend in a window of a pool of ``limit``."""
        return self.installation * limit

    def of_user(self, limit: float) -> float:
        """The points one user may spend in a window of a pool of ``limit``."""
        return self.user * self.installation * limit


def over_share(
    shares: Shares,
    limit: float,
    left: float,
    cost: float,
    installation_spent: float,
    user_spent: float,
) -> bool:
    """Whether a request of ``cost`` must wait: its installation or user has spent its share
    this window and borrowing it would dig into the last quarter of the pool."""
    within = installation_spent < shares.of_installation(limit)
    within = within and user_spent < shares.of_user(limit)
    after = left - cost if cost <= (1 - LAST_QUARTER) * limit else left
    return not within and after < LAST_QUARTER * limit
