"""The in-sync-set rules of a sync primary (`SyncSet`), driven with an explicit clock."""

from __future__ import annotations

from clipstream.syncset import SyncSet

TIMEOUT = 0.3


def fresh() -> SyncSet:
    s = SyncSet(TIMEOUT, near_records=32, keepup_pulls=3)
    s.reset(0.0)
    return s


def pull(s: SyncSet, *, after: int, last: int, at: float, answer_after: float = 0.0) -> bool:
    """One pull arriving at ``at`` and answered ``answer_after`` later; True if it proposed."""
    proposed = s.on_pull(after=after, last_index=last, now=at)
    s.on_answer(at + answer_after)
    return proposed


def test_a_replica_keeping_up_is_proposed_after_three_quick_close_pulls() -> None:
    s = fresh()
    assert not pull(s, after=0, last=5, at=0.0)
    assert not pull(s, after=5, last=9, at=0.05)
    assert not s.waiting
    assert pull(s, after=9, last=12, at=0.10)  # third quick pull with few records missing
    assert s.waiting and s.self_gen == 1 and s.sync_from == 12 and not s.ready
    assert not pull(s, after=12, last=13, at=0.15)  # no second proposal while waiting
    assert s.ready and s.self_gen == 1


def test_a_close_replica_still_digesting_a_batch_is_not_proposed() -> None:
    """The rejoin stall: a replica within one batch of the primary, but seconds per batch."""
    s = fresh()
    at = 0.0
    for after in range(0, 300, 20):  # every pull a few records behind, but 1 s of digestion
        assert not pull(s, after=after, last=after + 20, at=at)
        at += 1.0
        assert s.streak <= 1 and not s.waiting
    # a slow turnaround resets the streak even after quick pulls
    pull(s, after=300, last=301, at=at)
    pull(s, after=301, last=302, at=at + 0.01)
    assert not pull(s, after=302, last=303, at=at + 0.01 + TIMEOUT)
    assert s.streak == 0 and not s.waiting


def test_a_far_behind_replica_is_never_proposed_even_when_quick() -> None:
    s = fresh()
    for k in range(10):
        assert not pull(s, after=k * 512, last=k * 512 + 600, at=k * 0.01)
    assert s.streak == 0 and not s.waiting


def test_nothing_missing_and_quick_is_proposed_at_once_but_not_when_slow() -> None:
    s = fresh()
    assert pull(s, after=4, last=4, at=0.0)  # first pull of an idle replica: caught up
    slow = fresh()
    pull(slow, after=0, last=3, at=0.0)
    assert not pull(slow, after=3, last=3, at=TIMEOUT)  # caught up, but took too long
    assert not slow.waiting


def test_async_replication_never_proposes() -> None:
    s = fresh()
    for k in range(5):
        assert not s.on_pull(after=k, last_index=k, now=k * 0.01, propose=False)
    assert not s.waiting and s.self_gen is None


def test_shrink_names_the_waited_generation_once_and_resets_the_streak() -> None:
    s = fresh()
    assert not s.request_shrink()  # nothing is waited for: nothing to drop
    pull(s, after=0, last=0, at=0.0)  # proposes generation 1 (pending)
    assert s.waiting and s.waited_gen == 1
    assert s.request_shrink() and s.shrink_gen == 1
    assert not s.request_shrink()  # asked already
    assert s.streak == 0
    s.assigned(in_sync=False, sync_gen=1)  # the coordinator dropped it
    assert not s.waiting
    # in sync under generation 2, then a timeout asks to drop generation 2
    pull(s, after=0, last=0, at=0.05)
    assert s.self_gen == 2 and s.shrink_gen is None
    s.assigned(in_sync=True, sync_gen=2)
    assert s.waiting and s.waited_gen == 2
    assert s.request_shrink() and s.shrink_gen == 2


def test_assignments_never_go_back_so_a_late_one_cannot_end_a_wait() -> None:
    s = fresh()
    s.assigned(in_sync=True, sync_gen=3)
    s.assigned(in_sync=False, sync_gen=2)  # older generation: ignored
    assert s.waiting and s.coord_gen == 3
    s.assigned(in_sync=False, sync_gen=3)  # the drop of 3
    assert not s.waiting
    s.assigned(in_sync=True, sync_gen=3)  # a late "in sync 3": ignored, the drop stands
    assert not s.coord_in_sync and not s.waiting
    pull(s, after=0, last=0, at=0.0)  # proposes 4: waits regardless of older news
    s.assigned(in_sync=False, sync_gen=3)
    assert s.waiting and s.waited_gen == 4
    s.reset(1.0)  # a new epoch starts from scratch
    s.assigned(in_sync=False, sync_gen=1)
    assert s.coord_gen == 1 and not s.waiting
