"""Leases: an extension of our Toxiproxy server that heals links whose holder stopped renewing.

The harness that injects faults on links holds a lease on them (``POST /drills/lease`` with a
holder name, a time to live and the proxies it covers, renewed every third of the TTL). If the
harness dies - SIGKILL, a frozen VM, a lost CI runner - nobody renews it, and when it lapses the
server heals every proxy it covered: toxics removed, proxy enabled (what ``/reset`` does, for
those proxies only). ``DELETE /drills/lease/{holder}`` releases a lease without healing (a
harness that reverted its own faults). The Toxiproxy API is unchanged: the routes live under
``/drills/``, which a real Toxiproxy answers with 404, so a harness on a real server just goes
without (its watchdog still reverts its faults).

`Leases` is the bookkeeping (pure, the caller supplies the clock); the server's expiry loop
calls `expired` and heals what it returns. `LeaseKeeper` is the holder's side: a daemon thread
renewing every third of the TTL until it is stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: Bounds on a lease's time to live, in milliseconds.
MIN_TTL_MS, MAX_TTL_MS = 100, 3_600_000


@dataclass(frozen=True, slots=True)
class Lease:
    """Who holds it, until when (server clock, seconds), and the proxies it covers."""

    holder: str
    expires_at: float
    proxies: tuple[str, ...]


class Leases:
    """The leases a server holds, by holder."""

    def __init__(self) -> None:
        self._by_holder: dict[str, Lease] = {}

    def grant(self, holder: str, *, ttl_ms: int, proxies: Iterable[str], now: float) -> Lease:
        """Take or renew ``holder``'s lease; raise ValueError for a bad holder or TTL."""
        if not holder or len(holder) > 200:
            raise ValueError("holder must be a non-empty name of at most 200 characters")
        if not MIN_TTL_MS <= ttl_ms <= MAX_TTL_MS:
            raise ValueError(f"ttl_ms must be within {MIN_TTL_MS}..{MAX_TTL_MS}, got {ttl_ms}")
        lease = Lease(holder, now + ttl_ms / 1000, tuple(sorted(set(proxies))))
        self._by_holder[holder] = lease
        return lease

    def release(self, holder: str) -> bool:
        """Drop ``holder``'s lease without healing; False if it held none."""
        return self._by_holder.pop(holder, None) is not None

    def expired(self, now: float) -> list[Lease]:
        """Remove and return the leases that lapsed by ``now``."""
        gone = [lease for lease in self._by_holder.values() if lease.expires_at <= now]
        for lease in gone:
            del self._by_holder[lease.holder]
        return gone

    def all(self) -> list[Lease]:
        return sorted(self._by_holder.values(), key=lambda lease: lease.holder)


class LeaseKeeper:
    """Renews a lease every ``ttl_s / 3`` on a daemon thread (``renew`` returns False when the
    server cannot hold leases: the keeper then stops quietly); `stop` ends it and ``release``s
    the lease. A harness that dies stops renewing: that is the point."""

    def __init__(self, renew: Callable[[], bool], release: Callable[[], None], *,
                 ttl_s: float) -> None:
        self._renew, self._release, self.ttl_s = renew, release, ttl_s
        self._stop = threading.Event()
        self.supported = renew()
        self._thread = threading.Thread(target=self._run, name="toxiproxy lease", daemon=True)
        if self.supported:
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            self._renew()

    def stop(self) -> None:
        """Stop renewing and give the lease back (no healing: the holder reverted its faults)."""
        self._stop.set()
        if self.supported:
            self._thread.join(timeout=self.ttl_s)
            self._release()
