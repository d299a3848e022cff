"""The ClipStream load mix: which share of the users does which operation class.

Pure and free of Locust, so the harness and tests can use it without gevent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: Percent of the users doing each operation class (each user does one class only).
MIX: Mapping[str, int] = {"feed": 50, "view": 20, "like": 10, "upload": 8, "search": 6, "stats": 6}


def split_users(users: int, shares: Sequence[int]) -> list[int]:
    """``users`` split in proportion to ``shares`` (largest remainder); then every class left
    with none takes one from the largest while that has more than one, so every class is
    exercised even by a small load."""
    exact = [users * s / sum(shares) for s in shares]
    counts = [int(e) for e in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: users - sum(counts)]:
        counts[i] += 1
    for i in range(len(counts)):
        largest = max(range(len(counts)), key=counts.__getitem__)
        if counts[i] == 0 and counts[largest] > 1:
            counts[largest] -= 1
            counts[i] = 1
    return counts


def users_per_class(users: int) -> dict[str, int]:
    """How many of ``users`` do each class of `MIX`."""
    return dict(zip(MIX, split_users(users, list(MIX.values())), strict=True))
