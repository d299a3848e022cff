"""The primary's side of synchronous replication: the in-sync set and when to grow or shrink it.

A primary under ``--replication sync`` acknowledges a write only when the replica has it, *while
the replica is in the in-sync set* (ISR). The coordinator owns that set (it never promotes a
replica outside it); the primary proposes additions and requests removals, counted in
*generations*:

- **Grow** (``on_pull``): once the replica is *keeping up* — `keepup_pulls` pulls in a row
  arrived with at most `near_records` records missing, each less than half the replication
  timeout after the previous answer left (the replica's turnaround: fetching blobs, fsync,
  network), or one such quick pull found nothing missing at all — the primary starts
  generation ``coord_gen + 1`` and from then on waits for the replica on every write. The
  replica is *ready* once it also holds everything acknowledged before (``peer_acked >=
  sync_from``); the coordinator then marks it in sync. A replica that is merely *close* (a big
  last catch-up batch still to digest) is not keeping up: making writes wait for it would stall
  them for as long as it digests.
- **Shrink** (``request_shrink``): a write that waited the replication timeout for the replica
  asks the coordinator to drop the generation it waits for. The write is still not
  acknowledged; it is acknowledged alone only once the coordinator's assignment says the
  generation is dropped (``in_sync`` false and ``sync_gen`` at least that generation), which
  the coordinator persists before it tells anyone. If that confirmation does not come, the
  write fails (503) instead: it is never acknowledged while the coordinator may still consider
  the replica promotable. So a slow or frozen replica costs a write about the replication
  timeout plus one round trip to the coordinator, and never an acknowledged write.

Assignments are applied monotonically within an epoch (``(sync_gen, dropped)`` never goes back),
so a late-delivered older assignment cannot make the primary stop waiting. Pure bookkeeping: the
caller supplies the clock, so the rules are tested without sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SyncSet:
    """ISR bookkeeping of one primary (reset on every role or epoch change).

    ``timeout_s`` is the replication timeout; ``near_records`` and ``keepup_pulls`` define a
    replica that keeps up (module docstring).
    """

    timeout_s: float
    near_records: int = 32
    keepup_pulls: int = 3
    coord_in_sync: bool = False
    coord_gen: int = 0
    coord_dropped: bool = True
    self_gen: int | None = None
    sync_from: int = 0
    peer_acked: int = 0
    shrink_gen: int | None = None
    streak: int = 0
    answered_at: float | None = None
    last_contact: float = 0.0

    def reset(self, now: float) -> None:
        """Forget everything: a new role or epoch starts with an empty in-sync set."""
        self.coord_in_sync, self.coord_gen, self.coord_dropped = False, 0, True
        self.self_gen, self.sync_from, self.peer_acked = None, 0, 0
        self.shrink_gen, self.streak, self.answered_at = None, 0, None
        self.last_contact = now

    def assigned(self, *, in_sync: bool, sync_gen: int) -> None:
        """Apply the coordinator's view, unless it is older than one already applied."""
        if (sync_gen, not in_sync) < (self.coord_gen, self.coord_dropped):
            return
        self.coord_in_sync, self.coord_gen, self.coord_dropped = in_sync, sync_gen, not in_sync

    @property
    def waiting(self) -> bool:
        """True while writes must wait for the replica (in sync, or a generation proposed)."""
        return self.coord_in_sync or (self.self_gen is not None and self.self_gen > self.coord_gen)

    @property
    def waited_gen(self) -> int:
        """The generation writes are waiting for (meaningful only while `waiting`)."""
        if self.self_gen is not None and self.self_gen > self.coord_gen:
            return self.self_gen
        return self.coord_gen

    @property
    def ready(self) -> bool:
        """The proposed generation's replica holds everything acknowledged before it."""
        return self.self_gen is not None and self.peer_acked >= self.sync_from

    def on_pull(self, *, after: int, last_index: int, now: float, propose: bool = True) -> bool:
        """A pull positioned at ``after`` arrived (its position acknowledges up to ``after``).

        Updates the keeping-up streak; with ``propose`` (sync replication), starts a new
        generation (and returns True) when the replica keeps up and writes do not wait for it.
        """
        turnaround = None if self.answered_at is None else now - self.answered_at
        self.last_contact = now
        self.peer_acked = after
        quick = turnaround is None or turnaround <= self.timeout_s / 2
        gap = last_index - after
        self.streak = self.streak + 1 if quick and gap <= self.near_records else 0
        keeps_up = self.streak >= self.keepup_pulls or (quick and gap == 0)
        if not propose or self.waiting or not keeps_up:
            return False
        self.self_gen, self.sync_from, self.shrink_gen = self.coord_gen + 1, last_index, None
        return True

    def on_answer(self, now: float) -> None:
        """A pull answer is leaving now: the replica's turnaround is measured from here."""
        self.answered_at = now

    def on_diverged(self) -> None:
        """The replica's position did not match the log: it is not keeping up."""
        self.streak = 0

    def request_shrink(self) -> bool:
        """A write waited the replication timeout: ask to drop `waited_gen` (True if new)."""
        self.streak = 0
        if not self.waiting or self.shrink_gen == self.waited_gen:
            return False
        self.shrink_gen = self.waited_gen
        return True
