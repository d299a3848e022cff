"""The ClipStream load mix: which share of the users does which operation class.

Pure and free of Locust, so the harness and tests can use it without gevent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: Percent of the users doing each operation class (each user does one class only).
MIX: Mapping[str, int] = {"feed": 50, "view": 20, "like": 10, "upload": 8, "search": 6, "stats": 6}


def split_users(users: int, shares: Sequence[int]) -> list[int]:
    """``users`` split in proportion to ``shares`` (largest remainder), at least one each while
    there are enough users, so every class is exercised even by a small load."""
    floor = min(1, users // len(shares))
    rest = users - floor * len(shares)
    exact = [rest * s / sum(shares) for s in shares]
    counts = [int(e) for e in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: rest - sum(counts)]:
        counts[i] += 1
    return [floor + c for c in counts]


def users_per_class(users: int) -> dict[str, int]:
    """How many of ``users`` do each class of `MIX`."""
    return dict(zip(MIX, split_users(users, list(MIX.values())), strict=True))
