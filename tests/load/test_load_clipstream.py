"""The ClipStream load end to end: real ``clipstream dev`` (four node processes) and a real
Locust subprocess driven by `LoadRunner` for a few seconds; then the records, the history and
the api's own state are compared.

One run (module fixture) feeds every test below, to keep the area's runtime small.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import drills
from drills.load.runner import LoadConfig, LoadRunner, resolve_locustfile
from drills.model import Op, Request, read_jsonl
from drills.targets.clipstream.mix import MIX, users_per_class

pytestmark = pytest.mark.slow


#: ClipStream's locustfile (a target's own, by path; the tests may name ClipStream).
CLIPSTREAM = Path(drills.__file__).parent / "targets" / "clipstream" / "locustfile.py"


def what(o: Op) -> str:
    """ClipStream's name for a generic op: an upload is a ``write``, a view or a like an
    ``incr`` of counter ``views`` / ``likes``; a read is a read."""
    if o.f == "incr":
        return {"views": "view", "likes": "like"}[o.counter or ""]
    return "upload" if o.f == "write" else o.f

RATE, USERS, RUN_S = 50.0, 10, 7.0


@dataclass(frozen=True)
class Run:
    """What one load run against ClipStream left behind."""

    api: str
    started_at: float
    live: list[Request]
    requests: list[Request]
    history: list[Op]
    merged: tuple[Path, Path]


@pytest.fixture(scope="module")
def run(clipstream_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    base = tmp_path_factory.mktemp("load-run")
    cfg = LoadConfig(locustfile=resolve_locustfile(CLIPSTREAM), host=clipstream_api,
                     users=USERS, rate=RATE, timeout_s=1.5, record_dir=base / "load")
    live: list[Request] = []
    with LoadRunner(cfg) as load:
        deadline = time.monotonic() + RUN_S
        while time.monotonic() < deadline:
            time.sleep(0.5)
            live.extend(load.poll())
            assert load.alive
    merged = load.merge_into(base)
    yield Run(api=clipstream_api, started_at=load.started_at, live=live,
              requests=load.requests(), history=load.history(), merged=merged)


def _completions(history: list[Op]) -> dict[str, Op]:
    """Completion per op id, after checking every invoke has exactly one, later, same op."""
    invokes = {o.id: o for o in history if o.type == "invoke"}
    done: dict[str, Op] = {}
    for o in history:
        if o.type != "invoke":
            assert o.id in invokes and o.id not in done, f"stray or doubled completion {o}"
            inv = invokes[o.id]
            assert (o.process, o.f, o.key, o.counter) == (inv.process, inv.f, inv.key,
                                                          inv.counter)
            assert o.time >= inv.time
            done[o.id] = o
    assert done.keys() == invokes.keys()
    return done


def test_records_arrive_live_and_cover_every_class(run: Run) -> None:
    assert len(run.live) > RATE * 2, "poll() must deliver records while the load runs"
    assert set(run.live) <= set(run.requests)
    assert set(MIX) == {r.op for r in run.requests}
    assert min(r.t for r in run.requests) >= run.started_at
    ok = sum(r.ok for r in run.requests) / len(run.requests)
    assert ok > 0.95, Counter(r.error for r in run.requests if not r.ok)


def test_mix_follows_the_weights(run: Run) -> None:
    share = {op: n / len(run.requests) for op, n in Counter(r.op for r in run.requests).items()}
    users = users_per_class(USERS)
    # every user paces at the same rate, so a class's share of requests is its share of users
    # (loosely: views/likes/stats wait until a video is known)
    for op in ("feed", "upload", "search"):
        assert abs(share[op] - users[op] / USERS) < 0.12, (op, share, users)
    assert share["feed"] > share["search"]


def test_history_pairs_every_invoke_and_acks_name_their_store(run: Run) -> None:
    done = _completions(run.history)
    kinds = Counter((what(o), o.type) for o in done.values())
    for f in ("upload", "view", "like", "read"):
        assert kinds[(f, "ok")] > 0, kinds
    for o in done.values():
        if o.type == "ok" and o.f != "read":
            assert o.epoch is not None and o.epoch >= 1 and o.store, o
        if o.f == "read" and o.type == "ok" and o.key is not None:  # a stats read
            assert o.counts is not None and set(o.counts) == {"views", "likes"}
            assert o.counts["views"] >= 0 and o.items is None
        if o.f == "read" and o.type == "ok" and o.key is None:  # a feed or a search
            assert o.items is not None and o.counts is None
        if o.f == "read" and o.type == "ok":
            assert o.degraded is not None
        if o.f != "read":
            assert o.attempt == 1, "retries are off by default"
    assert any(o.items for o in done.values() if o.f == "read"), "feeds show the uploads"
    # Requests and history agree on how many writes and reads were sent (a request cut by
    # the stop has its invoke but no request record: at most one per user).
    sent = Counter(r.op for r in run.requests)
    invoked = Counter(what(o) for o in run.history if o.type == "invoke")
    reads = sent["stats"] + sent["feed"] + sent["search"]
    for f, n in (("upload", sent["upload"]), ("view", sent["view"]), ("like", sent["like"]),
                 ("read", reads)):
        assert 0 <= invoked[f] - n <= USERS, (f, invoked[f], n)


def test_acked_uploads_really_exist_in_the_api(run: Run) -> None:
    done = _completions(run.history)
    acked = {o.key for o in done.values() if o.f == "write" and o.type == "ok"}
    failed = {o.key for o in done.values() if o.f == "write" and o.type == "fail"}
    ids = set(httpx.get(f"{run.api}/videos", timeout=5).json()["ids"])
    assert acked and acked <= ids
    assert not failed & ids


def test_counters_lie_between_acked_and_acked_plus_indeterminate(run: Run) -> None:
    done = _completions(run.history)
    acked: Counter[tuple[str | None, str]] = Counter()
    maybe: Counter[tuple[str | None, str]] = Counter()
    for o in done.values():
        if o.f == "incr" and o.type == "ok":
            acked[(o.key, what(o))] += 1
        elif o.f == "incr" and o.type == "info":
            maybe[(o.key, what(o))] += 1
    # Only videos this run created: their whole counter history is in this history.
    ours = {o.key for o in done.values() if o.f == "write" and o.type == "ok"}
    videos = {v for v, _ in acked} & ours
    assert videos
    with httpx.Client(base_url=run.api, timeout=5) as client:
        for vid in videos:
            stats = client.get(f"/videos/{vid}/stats").json()
            for f, key in (("view", "views"), ("like", "likes")):
                lo, hi = acked[(vid, f)], acked[(vid, f)] + maybe[(vid, f)]
                assert lo <= stats[key] <= hi, (vid, f, stats)


def test_pacing_is_near_the_target_rate(run: Run) -> None:
    start = run.started_at + 1.0  # skip the spawn second
    window = [r for r in run.requests if start <= r.t < start + RUN_S - 2.0]
    rate = len(window) / (RUN_S - 2.0)
    assert 0.5 * RATE < rate < 1.3 * RATE, rate


def test_merge_into_writes_the_run_files(run: Run) -> None:
    from drills.runstore import read_frame

    req_path, hist_path = run.merged
    # the lines as recorded (in completion order); read back, the records in start order
    assert sorted(read_jsonl(req_path, Request), key=lambda r: r.t) == run.requests
    assert list(read_frame([req_path]).rows()) == run.requests
    assert list(read_jsonl(hist_path, Op)) == run.history
