"""The planted-bugs knob (``--bugs`` / ``CLIPSTREAM_BUGS``): parsing, wiring, reporting, and each
bug's behaviour next to the correct behaviour in the same scenario.

No node processes: engines run over real files in ``tmp_path``, `decide` is pure, and the node
apps run in-process (their lifespan entered, called through ``httpx.ASGITransport``; the api
dials a mock coordinator and mock stores).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from clipstream.api_app import create_api_app, zero_counters
from clipstream.bugs import BUG_NODES, KNOWN_BUGS, Bug, parse_bugs
from clipstream.cli import api_config, build_parser, coordinator_config, main, store_config
from clipstream.config import ApiConfig, CoordinatorConfig
from clipstream.coordinator import Coordinator, CoordState, Observation, decide
from clipstream.coordinator_app import create_coordinator_app
from clipstream.engine import Assignment, PullAnswer
from clipstream.errors import ConfigError, Unavailable
from clipstream.launch import Knobs, LocalCluster
from clipstream.records import VideoRecord
from clipstream.replica import durable_before_ack
from clipstream.state import Index
from clipstream.store_app import create_store_app
from fastapi import FastAPI
from test_clipstream_coordinator import DETECT, START, UP_REPLICA, obs, report
from test_clipstream_engine import PRIMARY, config, engine_at, run

TIMEOUT_MS = 200
IN_SYNC = Assignment(role="primary", epoch=1, primary="store-east", in_sync=True, sync_gen=1)
STORE_ARGS = ["store", "--name", "s", "--port", "1", "--data-dir", "d"]
STORES = ["--store", "store-east=http://127.0.0.1:1", "--store", "store-west=http://127.0.0.1:2"]
BUGGED = pytest.mark.parametrize("bugged", [False, True], ids=["correct", "bug"])


def bugs_if(bugged: bool, bug: Bug) -> frozenset[str]:
    return frozenset({bug}) if bugged else frozenset()


@pytest.fixture
def no_bug_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests below must not see a CLIPSTREAM_BUGS set by whoever runs them."""
    monkeypatch.delenv("CLIPSTREAM_BUGS", raising=False)


# ---------------------------------------------------------------- the knob
def test_the_catalogue_names_exactly_the_seven_bugs_each_with_its_node() -> None:
    assert set(KNOWN_BUGS) == {
        "ack-before-fsync", "ack-before-replication", "promote-lagging-replica", "no-fencing",
        "count-retries-twice", "zero-counts-when-degraded", "failback-with-stale-data"}
    assert set(BUG_NODES) == set(KNOWN_BUGS) and all(KNOWN_BUGS.values())


def test_parse_bugs_accepts_a_comma_list_and_empty_means_none() -> None:
    assert parse_bugs("") == parse_bugs(" , ") == frozenset()
    assert parse_bugs(" no-fencing,ack-before-fsync ,no-fencing") == {"no-fencing",
                                                                      "ack-before-fsync"}
    assert all(type(b) is str for b in parse_bugs("no-fencing"))


def test_an_unknown_bug_is_refused_naming_it_and_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        parse_bugs("no-fencing,lose-everything")
    assert "'lose-everything'" in str(info.value)
    assert all(name in str(info.value) for name in KNOWN_BUGS)


@pytest.mark.parametrize(("env", "argv"), [
    ({}, [*STORE_ARGS, "--bugs", "ack-before-fsync,nope-bug"]),
    ({"CLIPSTREAM_BUGS": "nope-bug"}, STORE_ARGS),
    ({"CLIPSTREAM_BUGS": "nope-bug"}, ["coordinator", "--data-dir", "d", *STORES]),
    ({}, ["api", "--coordinator-url", "http://127.0.0.1:1", *STORES, "--bugs", "nope-bug"]),
    ({}, ["dev", "--bugs", "nope-bug"]),
])
def test_the_cli_exits_2_on_an_unknown_bug(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           env: dict[str, str], argv: list[str]) -> None:
    monkeypatch.delenv("CLIPSTREAM_BUGS", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "nope-bug" in err and "no-fencing" in err


def test_every_node_reads_the_env_twin_and_the_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPSTREAM_BUGS", " no-fencing , promote-lagging-replica")
    both = {"no-fencing", "promote-lagging-replica"}
    parser = build_parser()  # flags read their twins when the parser is built
    assert store_config(parser.parse_args(STORE_ARGS)).bugs == both
    assert coordinator_config(parser.parse_args(["coordinator", "--data-dir", "d",
                                                 *STORES])).bugs == both
    assert api_config(parser.parse_args(["api", "--coordinator-url", "http://127.0.0.1:1",
                                         *STORES])).bugs == both
    assert store_config(parser.parse_args([*STORE_ARGS, "--bugs="])).bugs == frozenset()
    assert parser.parse_args(["dev"]).bugs == both


@pytest.mark.usefixtures("no_bug_env")
def test_the_default_is_no_bug() -> None:
    parser = build_parser()
    assert store_config(parser.parse_args(STORE_ARGS)).bugs == frozenset()
    assert coordinator_config(parser.parse_args(["coordinator", "--data-dir", "d",
                                                 *STORES])).bugs == frozenset()
    assert api_config(parser.parse_args(["api", "--coordinator-url", "http://127.0.0.1:1",
                                         *STORES])).bugs == frozenset()
    assert Knobs().bugs == "" and config(Path("d")).bugs == frozenset()


def test_a_local_cluster_gives_every_node_the_same_bugs(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, knobs=Knobs(bugs="no-fencing,count-retries-twice"))
    for node in cluster.nodes.values():
        assert "--bugs=no-fencing,count-retries-twice" in node.argv, node.name
    plain = LocalCluster(tmp_path, knobs=Knobs())
    assert all("--bugs=" in n.argv for n in plain.nodes.values())  # overrides the env twin


# ---------------------------------------------------------------- reporting
@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` with its lifespan running, and a client that calls it in-process."""
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://node") as client:
        yield client


def get_all(app: FastAPI, paths: Mapping[str, Mapping[str, str]]) -> dict[str, httpx.Response]:
    """GET each path (with its query) from ``app`` served in-process; the answers by path."""
    async def body() -> dict[str, httpx.Response]:
        async with serving(app) as client:
            return {path: await client.get(path, params=dict(q)) for path, q in paths.items()}

    return asyncio.run(body())


def test_the_store_state_lists_its_bugs_and_start_up_warns(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = config(tmp_path / "a", bugs=frozenset({"no-fencing", "ack-before-fsync"}))
    with caplog.at_level(logging.WARNING):
        r = get_all(create_store_app(cfg), {"/state": {}})["/state"]
    assert r.json()["bugs"] == ["ack-before-fsync", "no-fencing"]
    assert "PLANTED BUGS" in caplog.text and "no-fencing" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        r = get_all(create_store_app(config(tmp_path / "b")), {"/state": {}})["/state"]
    assert r.json()["bugs"] == []
    assert "PLANTED BUGS" not in caplog.text


def coordinator_config_for(tmp_path: Path, bugs: frozenset[str]) -> CoordinatorConfig:
    return CoordinatorConfig(host="127.0.0.1", port=1, data_dir=tmp_path,
                             stores={"store-east": "http://127.0.0.1:9",
                                     "store-west": "http://127.0.0.1:9"},
                             primary="store-east", bugs=bugs)


def test_the_coordinator_state_lists_its_bugs(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    cfg = coordinator_config_for(tmp_path, frozenset({"promote-lagging-replica"}))
    with caplog.at_level(logging.WARNING):
        r = get_all(create_coordinator_app(cfg), {"/state": {}})["/state"]
    assert r.json()["bugs"] == ["promote-lagging-replica"]
    assert "PLANTED BUGS" in caplog.text
    r = get_all(create_coordinator_app(replace(cfg, bugs=frozenset())), {"/state": {}})["/state"]
    assert r.json()["bugs"] == []


# ---------------------------------------------------------------- 1. ack-before-fsync
@BUGGED
def test_ack_before_fsync_acks_from_the_buffer_and_a_power_cut_loses_it(
        tmp_path: Path, bugged: bool) -> None:
    cfg = config(tmp_path, bugs=bugs_if(bugged, Bug.ACK_BEFORE_FSYNC))
    seen: dict[str, bool] = {}

    async def body() -> None:
        async with engine_at(cfg, crash=True) as e:  # crash: close without flushing
            await e.assign(PRIMARY)
            await e.upload(video_id="v", title="t", data=b"abc", epoch=1)
            seen["upload"] = e.log.durable_index < e.index.video_at["v"]
            await e.increment(video_id="v", field="likes", op="o", epoch=1)
            seen["incr"] = e.log.durable_index < e.log.last_index
        async with engine_at(config(tmp_path)) as e:  # both data centres lost power
            seen["kept"] = "v" in e.index.videos

    run(body)
    assert seen == {"upload": bugged, "incr": bugged, "kept": not bugged}


def test_ack_before_fsync_still_flushes_lazily_in_groups(tmp_path: Path) -> None:
    async def body() -> None:
        cfg = config(tmp_path, bugs=frozenset({Bug.ACK_BEFORE_FSYNC}))
        async with engine_at(cfg) as e:
            await e.assign(PRIMARY)
            for k in range(3):
                await e.upload(video_id=f"v{k}", title="t", data=b"x", epoch=1)
                assert e.log.durable_index < e.index.video_at[f"v{k}"]  # acked, not on disk
            t0 = time.monotonic()
            while e.log.durable_index < 3 and time.monotonic() - t0 < 5:
                await e.wait_change(1.0)
            assert e.log.durable_index == 3  # one group flush, ~100 ms later
    run(body)


@BUGGED
def test_ack_before_fsync_makes_a_replica_ack_pulled_records_before_they_are_durable(
        tmp_path: Path, bugged: bool) -> None:
    cfg = config(tmp_path, name="store-west", replication="sync",
                 bugs=bugs_if(bugged, Bug.ACK_BEFORE_FSYNC))

    async def body() -> None:
        async with engine_at(cfg) as e:
            await e.assign(Assignment(role="replica", epoch=1, primary="store-east"))
            recs = tuple(VideoRecord(index=i, epoch=1, id=f"v{i}", title="t", size=1,
                                     sha256="0" * 64, created_at=1.0) for i in (1, 2))
            assert e.apply_pulled(PullAnswer(1, 2, False, records=recs), epoch=1) == 2
            durable = await durable_before_ack(e)
            # the replica's next pull (its ack of index 2) leaves now
            assert durable is not bugged
            assert (e.log.durable_index < 2) is bugged
    run(body)


# ---------------------------------------------------------------- 2. ack-before-replication
@BUGGED
def test_ack_before_replication_acks_without_the_in_sync_replica(tmp_path: Path,
                                                                 bugged: bool) -> None:
    cfg = config(tmp_path, replication="sync", replication_timeout_ms=TIMEOUT_MS,
                 bugs=bugs_if(bugged, Bug.ACK_BEFORE_REPLICATION))

    async def body() -> None:
        async with engine_at(cfg) as e:
            await e.assign(IN_SYNC)  # the replica is in sync; nobody pulls
            if not bugged:
                with pytest.raises(Unavailable):
                    await e.upload(video_id="v", title="t", data=b"x", epoch=1)
                assert e.status().shrink_gen == 1  # asked to drop it: never acked past it
                return
            await e.upload(video_id="v", title="t", data=b"x", epoch=1)
            at = e.index.video_at["v"]
            s = e.status()
            assert e.sync.peer_acked < at <= s.durable_index  # durable here, not replicated
            # the replica keeps its in-sync status: still promotable by the coordinator
            assert s.waiting_for_peer and s.shrink_gen is None
            assert e.sync.coord_in_sync and e.sync.coord_gen == 1
    run(body)


# ---------------------------------------------------------------- 3. promote-lagging-replica
def test_promote_lagging_replica_promotes_an_out_of_sync_replica_only_with_the_flag() -> None:
    down = Observation(False, 0.0, report("primary", replication="sync"))
    lagging = (
        Observation(True, 10.0, report("replica", replication="sync")),  # out of sync
        Observation(True, 10.0, report("replica", reconciled=False)),  # async, not reconciled
    )
    for west in lagging:
        o = obs(down, west)
        assert decide(START, o, now=10.0, started=0.0, detection_s=DETECT) == (START, None)
        state, why = decide(START, o, now=10.0, started=0.0, detection_s=DETECT,
                            promote_lagging=True)
        assert (state.primary, state.epoch, state.failovers) == ("store-west", 2, 1), west
        assert "promoted store-west" in str(why)
    for west in (  # still never: unreachable, another epoch, no role
        Observation(False, 0.0, report("replica", replication="sync")),
        Observation(True, 10.0, report("replica", epoch=0)),
        Observation(True, 10.0, report("unassigned")),
    ):
        assert decide(START, obs(down, west), now=10.0, started=0.0, detection_s=DETECT,
                      promote_lagging=True)[0] == START
    # nor before the detection time
    recent = Observation(False, 9.0, report("primary"))
    assert decide(START, obs(recent, lagging[0]), now=10.0, started=0.0, detection_s=DETECT,
                  promote_lagging=True)[0] == START


# ---------------------------------------------------------------- 4. no-fencing
@BUGGED
def test_no_fencing_acks_alone_after_the_timeout_without_the_coordinators_confirmation(
        tmp_path: Path, bugged: bool) -> None:
    cfg = config(tmp_path, replication="sync", replication_timeout_ms=TIMEOUT_MS,
                 bugs=bugs_if(bugged, Bug.NO_FENCING))

    async def body() -> None:
        async with engine_at(cfg) as e:
            await e.assign(IN_SYNC)  # the replica is silent, the coordinator never answers
            t0 = time.monotonic()
            if not bugged:
                with pytest.raises(Unavailable):
                    await e.upload(video_id="v", title="t", data=b"x", epoch=1)
                assert time.monotonic() - t0 >= 2 * TIMEOUT_MS / 1000
                return
            await e.upload(video_id="v", title="t", data=b"x", epoch=1)
            assert time.monotonic() - t0 >= TIMEOUT_MS / 1000
            # acked alone although the drop was asked for and never confirmed: the replica
            # may still be promoted (split brain)
            assert e.sync.peer_acked == 0 and e.status().shrink_gen == 1
            assert e.sync.coord_in_sync and e.waiting_for_peer
            await e.increment(video_id="v", field="likes", op="o", epoch=1)  # and again
    run(body)


# ---------------------------------------------------------------- 5. count-retries-twice
@BUGGED
def test_count_retries_twice_counts_a_retry_across_a_failover_again(tmp_path: Path,
                                                                    bugged: bool) -> None:
    bugs = bugs_if(bugged, Bug.COUNT_RETRIES_TWICE)
    east_cfg = config(tmp_path / "east", bugs=bugs)
    west_cfg = config(tmp_path / "west", name="store-west", bugs=bugs)
    expected = 2 if bugged else 1

    async def body() -> None:
        async with engine_at(east_cfg) as east, engine_at(west_cfg) as west:
            await east.assign(PRIMARY)
            await west.assign(Assignment(role="replica", epoch=1, primary="store-east"))
            await east.upload(video_id="v", title="t", data=b"x", epoch=1)
            await east.increment(video_id="v", field="likes", op="o", epoch=1)
            stats = await east.increment(video_id="v", field="likes", op="o", epoch=1)
            assert stats.likes == 1  # within one epoch a retry counts once, bug or not
            ans = await east.serve_pull(epoch=1, after=0, after_epoch=0, wait_ms=0)
            west.apply_pulled(ans, epoch=1)
            # failover: west is promoted; the client's retry of "o" (its ack was lost) lands there
            await west.assign(Assignment(role="primary", epoch=2, primary="store-west"))
            stats = await west.increment(video_id="v", field="likes", op="o", epoch=2)
            assert stats.likes == expected
            stats = await west.increment(video_id="v", field="likes", op="o", epoch=2)
            assert stats.likes == expected  # once more in epoch 2: deduplicated
            # east rejoins as a replica of west: replication carries the same count
            await east.assign(Assignment(role="replica", epoch=2, primary="store-west"))
            ans = await west.serve_pull(epoch=2, after=east.log.last_index,
                                        after_epoch=east.log.last_epoch, wait_ms=0)
            assert not ans.diverged
            east.apply_pulled(ans, epoch=2)
            assert east.index.likes["v"] == west.index.likes["v"] == expected
            assert Index.replay(west.log.records).likes["v"] == expected
        async with engine_at(west_cfg) as west:  # and so does replay after a restart
            assert west.index.likes["v"] == expected

    run(body)


# ---------------------------------------------------------------- 6. zero-counts-when-degraded
VIDEO = {"id": "v", "title": "Cat", "size": 3, "sha256": "0" * 64, "created_at": 1.0}
ITEM = {"id": "v", "title": "Cat", "views": 5, "likes": 3, "created_at": 1.0}


def fake_network(*, east_up: bool) -> httpx.MockTransport:
    """A coordinator naming store-east primary; store-east down (or up); store-west a replica."""
    def handler(request: httpx.Request) -> httpx.Response:
        host, path = request.url.host, request.url.path
        if host == "coordinator":
            if path == "/primary":
                return httpx.Response(200, json={"primary": "store-east", "epoch": 1,
                                                 "in_sync": True})
            return httpx.Response(200, json={"stores": {}})
        if host == "store-east" and not east_up:
            raise httpx.ConnectError("store-east is down", request=request)
        role = "primary" if host == "store-east" else "replica"
        headers = {"X-ClipStream-Role": role, "X-ClipStream-Store": host,
                   "X-ClipStream-Epoch": "1"}
        bodies: dict[str, object] = {
            "/healthz": {"name": host, "role": role, "epoch": 1},
            "/videos/v/stats": {"id": "v", "views": 5, "likes": 3},
            "/videos/v": {**VIDEO, "views": 5, "likes": 3},
            "/feed": {"items": [ITEM], "next": None},
            "/search": {"items": [ITEM]},
        }
        if path not in bodies:
            return httpx.Response(404, json={"error": "no", "field": "id"}, headers=headers)
        return httpx.Response(200, json=bodies[path], headers=headers)

    return httpx.MockTransport(handler)


def api_app(*, bugs: frozenset[str], east_up: bool) -> FastAPI:
    cfg = ApiConfig(host="127.0.0.1", port=1, coordinator_url="http://coordinator",
                    stores={"store-east": "http://store-east", "store-west": "http://store-west"},
                    bugs=bugs)
    return create_api_app(cfg, transport=fake_network(east_up=east_up))


COUNTER_READS: Mapping[str, Mapping[str, str]] = {
    "/videos/v/stats": {}, "/videos/v": {}, "/feed": {}, "/search": {"q": "cat"}}


@BUGGED
def test_zero_counts_when_degraded_shows_zeros_undegraded_while_the_primary_is_down(
        bugged: bool) -> None:
    app = api_app(bugs=bugs_if(bugged, Bug.ZERO_COUNTS_WHEN_DEGRADED), east_up=False)
    answers = get_all(app, COUNTER_READS)
    for path, r in answers.items():
        assert r.status_code == 200, path
        assert r.headers["X-ClipStream-Store"] == "store-west", path
        assert ("X-ClipStream-Degraded" in r.headers) is not bugged, path
    n = 0 if bugged else 5
    m = 0 if bugged else 3
    assert answers["/videos/v/stats"].json() == {"id": "v", "views": n, "likes": m}
    assert answers["/videos/v"].json() == {**VIDEO, "views": n, "likes": m}
    assert answers["/feed"].json() == {"items": [{**ITEM, "views": n, "likes": m}], "next": None}
    assert answers["/search"].json() == {"items": [{**ITEM, "views": n, "likes": m}]}


def test_zero_counts_when_degraded_leaves_answers_of_the_primary_alone() -> None:
    app = api_app(bugs=frozenset({Bug.ZERO_COUNTS_WHEN_DEGRADED}), east_up=True)
    for path, r in get_all(app, COUNTER_READS).items():
        assert r.headers["X-ClipStream-Store"] == "store-east", path
        assert '"views":5' in r.text.replace(" ", ""), path


def test_zero_counters_is_a_copy_with_every_counter_at_zero() -> None:
    body = {"items": [dict(ITEM)], "next": "4"}
    assert zero_counters(body) == {"items": [{**ITEM, "views": 0, "likes": 0}], "next": "4"}
    assert body["items"][0]["views"] == 5 and zero_counters([1]) == [1]


def test_the_api_healthz_lists_its_bugs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        h = get_all(api_app(bugs=frozenset({"no-fencing", "zero-counts-when-degraded"}),
                            east_up=True), {"/healthz": {}})["/healthz"].json()
    assert h["status"] == "ok" and h["bugs"] == ["no-fencing", "zero-counts-when-degraded"]
    assert "PLANTED BUGS" in caplog.text
    h = get_all(api_app(bugs=frozenset(), east_up=True), {"/healthz": {}})["/healthz"].json()
    assert h["bugs"] == []


# ---------------------------------------------------------------- 7. failback-with-stale-data
def test_failback_with_stale_data_fails_back_to_the_reachable_home_only_with_the_flag() -> None:
    after = CoordState(epoch=2, primary="store-west", failovers=1, primary_boot="w1")
    west = Observation(True, 10.0, report("primary", epoch=2, boot_id="w1", last_index=80))
    stale_east = Observation(True, 10.0, report("replica", epoch=2, reconciled=False,
                                                last_index=40, last_epoch=1, boot_id="e2"))
    o = obs(stale_east, west)
    assert decide(after, o, now=10.0, started=0.0, detection_s=DETECT) == (after, None)
    state, why = decide(after, o, now=10.0, started=0.0, detection_s=DETECT,
                        failback_to="store-east")
    assert (state.epoch, state.primary, state.in_sync, state.failovers,
            state.primary_boot) == (3, "store-east", False, 2, "e2")
    assert "failed back" in str(why)
    # not while the home store is unreachable, and never away from it
    gone = obs(Observation(False, 5.0, stale_east.report), west)
    assert decide(after, gone, now=10.0, started=0.0, detection_s=DETECT,
                  failback_to="store-east") == (after, None)
    home = CoordState(epoch=1, primary="store-east")
    up = obs(Observation(True, 10.0, report("primary")), UP_REPLICA)
    assert decide(home, up, now=10.0, started=0.0, detection_s=DETECT,
                  failback_to="store-east")[0].primary == "store-east"


# ---------------------------------------------------------------- coordinator wiring
def step_once(tmp_path: Path, bugs: frozenset[str], *, state: CoordState,
              east: Observation | None, west: Observation) -> str:
    """One `Coordinator.step` on the given observations (no store answers); the new primary."""
    async def body() -> str:
        async with httpx.AsyncClient(transport=httpx.MockTransport(
                lambda r: httpx.Response(503))) as client:
            c = Coordinator(coordinator_config_for(tmp_path, bugs), client)
            c.state, c.started = state, time.monotonic() - 10
            if east is not None:
                c.obs["store-east"] = east
            c.obs["store-west"] = west
            await c.step()
            for task in list(c._pushes):
                task.cancel()
            await asyncio.gather(*c._pushes, return_exceptions=True)
            return c.state.primary

    return asyncio.run(body())


@BUGGED
def test_the_coordinator_passes_promote_lagging_replica_to_decide(tmp_path: Path,
                                                                  bugged: bool) -> None:
    lagging = Observation(True, time.monotonic(), report("replica", replication="sync"))
    primary = step_once(tmp_path, bugs_if(bugged, Bug.PROMOTE_LAGGING_REPLICA), state=START,
                        east=None, west=lagging)  # store-east never answered, for 10 s
    assert primary == ("store-west" if bugged else "store-east")


@BUGGED
def test_the_coordinator_fails_back_to_its_primary_flag_only_with_the_bug(
        tmp_path: Path, bugged: bool) -> None:
    now = time.monotonic()
    primary = step_once(
        tmp_path, bugs_if(bugged, Bug.FAILBACK_WITH_STALE_DATA),
        state=CoordState(epoch=2, primary="store-west", failovers=1, primary_boot="w1"),
        east=Observation(True, now, report("replica", epoch=2, reconciled=False)),
        west=Observation(True, now, report("primary", epoch=2, boot_id="w1")))
    assert primary == ("store-east" if bugged else "store-west")
