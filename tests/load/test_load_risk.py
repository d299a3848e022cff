"""Load that puts data at risk, end to end: real ``clipstream dev`` (four node processes)
behind the ``lossy_api`` proxy (loopback, in this process) that loses the answer of ~30 % of
the writes after the api applied them, and a real Locust subprocess driven by `LoadRunner` with
retries, a hot set and one write burst on.

One run (module fixture, ~12 s of load) feeds every test below.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

import drills
from drills.load.runner import LoadConfig, LoadRunner, resolve_locustfile
from drills.model import Op, Request

if TYPE_CHECKING:
    from conftest import LossyProxy

pytestmark = pytest.mark.slow

RATE, USERS, RUN_S = 30.0, 10, 11.5
BURST_AT, BURST_WIDTH, MULTIPLIER = 6.5, 3.0, 3.0  # the window: [5, 8] s after the start
RETRIES, HOT = 3, 3
WRITES = ("upload", "view", "like")
#: ClipStream's locustfile (a target's own, by path; the tests may name ClipStream).
CLIPSTREAM = Path(drills.__file__).parent / "targets" / "clipstream" / "locustfile.py"


def what(o: Op) -> str:
    """ClipStream's name for a generic op: an upload is a ``write``, a view or a like an
    ``incr`` of counter ``views`` / ``likes``; a read is a read."""
    if o.f == "incr":
        return {"views": "view", "likes": "like"}[o.counter or ""]
    return "upload" if o.f == "write" else o.f


@dataclass(frozen=True)
class Run:
    """What one run left behind."""

    api: str
    started_at: float
    lost: int
    degraded_lists: int
    requests: list[Request]
    history: list[Op]


@pytest.fixture(scope="module")
def run(clipstream_api: str, lossy_api: LossyProxy,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    base = tmp_path_factory.mktemp("risk-run")
    cfg = LoadConfig(locustfile=resolve_locustfile(CLIPSTREAM), host=lossy_api.url,
                     users=USERS, rate=RATE, timeout_s=1.5, record_dir=base / "load",
                     retries=RETRIES, bursts=(BURST_AT,), burst_multiplier=MULTIPLIER,
                     burst_width_s=BURST_WIDTH, hot_keys=HOT, hot_share=0.8)
    with LoadRunner(cfg) as load:
        time.sleep(RUN_S)
        assert load.alive
    yield Run(api=clipstream_api, started_at=load.started_at, lost=lossy_api.lost,
              degraded_lists=lossy_api.degraded_lists, requests=load.requests(),
              history=load.history())


def _interrupted(o: Op) -> bool:
    return (o.error or "").startswith("interrupted")


def _attempts(history: list[Op]) -> dict[str, list[tuple[Op, Op]]]:
    """Per write id, its (invoke, completion) pairs in attempt order; checks the pairing."""
    invokes: dict[tuple[str, int], Op] = {}
    out: dict[str, list[tuple[Op, Op]]] = defaultdict(list)
    for o in history:
        if o.f == "read":
            continue
        assert o.attempt is not None and o.attempt >= 1, o
        key = (o.id, o.attempt)
        if o.type == "invoke":
            assert key not in invokes, f"doubled invoke {o}"
            invokes[key] = o
        else:
            inv = invokes.pop(key)
            assert (o.process, o.f, o.key, o.counter) == (inv.process, inv.f, inv.key,
                                                          inv.counter)
            out[o.id].append((inv, o))
    assert not invokes, f"invokes without completion: {list(invokes)[:3]}"
    return out


def test_indeterminate_writes_are_retried_with_the_same_id(run: Run) -> None:
    assert run.lost > 10, "the proxy lost answers"
    ops = _attempts(run.history)
    retried = {i: pairs for i, pairs in ops.items() if len(pairs) > 1}
    assert retried, "some write was retried"
    for pairs in ops.values():
        assert [inv.attempt for inv, _ in pairs] == list(range(1, len(pairs) + 1))
        assert len(pairs) <= RETRIES + 1
        # every attempt but the last was indeterminate; a later one starts after it ended
        assert all(end.type == "info" for _, end in pairs[:-1])
        for (_, end), (nxt, _) in itertools.pairwise(pairs):
            assert nxt.time >= end.time + 0.09  # the backoff
        assert len({inv.process for inv, _ in pairs}) == 1
    finals = Counter(pairs[-1][1].type for pairs in retried.values())
    assert finals["ok"] > 0, finals  # retried to success
    assert {what(pairs[0][0]) for pairs in retried.values()} >= {"upload", "view"}
    # Every attempt is its own request record (as the RTO check sees it).
    attempts = Counter(what(inv) for pairs in ops.values() for inv, end in pairs
                       if not _interrupted(end))
    sent = Counter(r.op for r in run.requests)
    for f in WRITES:
        assert attempts[f] == sent[f], (f, attempts[f], sent[f])


def test_retries_with_the_same_key_count_once(run: Run) -> None:
    """Each lost answer was applied; its retry must not count again: every counter of a video
    of this run lies between its acknowledged ops and all its ops, counted by id."""
    ops = _attempts(run.history)
    acked: dict[tuple[str, str], set[str]] = defaultdict(set)
    tried: dict[tuple[str, str], set[str]] = defaultdict(set)
    ours: set[str] = set()
    for op_id, pairs in ops.items():
        inv, last = pairs[0][0], pairs[-1][1]
        assert inv.key is not None
        if inv.f == "write" and last.type == "ok":
            ours.add(inv.key)
        elif inv.f == "incr":
            tried[(inv.key, what(inv))].add(op_id)
            if last.type == "ok":
                acked[(inv.key, what(inv))].add(op_id)
    checked = 0
    with httpx.Client(base_url=run.api, timeout=5) as client:
        assert ours <= set(client.get("/videos").json()["ids"])
        for vid in {v for v, _ in tried} & ours:
            stats = client.get(f"/videos/{vid}/stats").json()
            for f, key in (("view", "views"), ("like", "likes")):
                assert len(acked[(vid, f)]) <= stats[key] <= len(tried[(vid, f)]), (vid, f)
                checked += stats[key]
    assert checked > 0


def test_feed_and_search_reads_record_items_and_degraded(run: Run) -> None:
    reads = [o for o in run.history if o.f == "read" and o.type != "invoke"]
    lists = [o for o in reads if o.key is None and o.type == "ok"]
    assert lists and all(o.items is not None for o in lists)
    assert any(o.items for o in lists)
    for o in lists:
        assert o.items is not None
        assert all(isinstance(k, str) and c["views"] >= 0 and c["likes"] >= 0
                   for k, c in o.items)
    assert all(o.degraded is not None for o in reads if o.type == "ok")
    # The proxy marks every search answer degraded, and counts the list answers it relayed
    # degraded (the searches, and any feed the api's primary was too slow for; it counts
    # before it writes the answer). Each of those reached the client as a degraded ok read,
    # or was lost to the client (a timeout, or the load stopping): a list read that is not ok.
    degraded = sum(bool(o.degraded) for o in lists)
    searches = sum(r.ok for r in run.requests if r.op == "search")
    assert searches > 0 and degraded >= searches - 2, (degraded, searches)
    unanswered = sum(1 for o in reads if o.key is None and o.type != "ok")
    assert run.degraded_lists - unanswered <= degraded <= run.degraded_lists, \
        (degraded, run.degraded_lists, unanswered)
    feeds = sum(r.ok for r in run.requests if r.op == "feed")
    assert abs(len(lists) - degraded - feeds) <= USERS
    stats = [o for o in reads if o.key is not None and o.type == "ok"]
    assert stats and all(o.items is None and o.counts is not None for o in stats)


def test_a_few_hot_videos_take_most_views_likes_and_stats(run: Run) -> None:
    targets = Counter(o.key for o in run.history
                      if o.type == "invoke" and o.key is not None and o.f != "write"
                      and o.attempt in (None, 1))
    top = sum(n for _, n in targets.most_common(HOT))
    assert len(targets) > HOT and top / sum(targets.values()) > 0.6, targets.most_common(5)


def test_the_burst_raises_the_write_rate_in_its_window(run: Run) -> None:
    def writes(a: float, b: float) -> int:
        lo, hi = run.started_at + a, run.started_at + b
        return sum(r.op in WRITES and lo <= r.t < hi for r in run.requests)

    def reads(a: float, b: float) -> int:
        lo, hi = run.started_at + a, run.started_at + b
        return sum(r.op not in WRITES and lo <= r.t < hi for r in run.requests)

    half = BURST_WIDTH / 2
    inside = writes(BURST_AT - half, BURST_AT + half)
    before = writes(BURST_AT - half - BURST_WIDTH - 0.5, BURST_AT - half - 0.5)
    after = writes(BURST_AT + half + 0.5, BURST_AT + half + BURST_WIDTH + 0.5)
    assert inside >= 1.5 * max(before, after), (before, inside, after)
    # reads keep their pace
    assert reads(BURST_AT - half, BURST_AT + half) < 1.5 * reads(1.0, 1.0 + BURST_WIDTH)
