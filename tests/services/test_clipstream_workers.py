"""``CLIPSTREAM_API_WORKERS``: the api as several processes on one port, killed as one.

Starts a real local ClipStream (four node processes on 127.0.0.1, the api with two workers).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest
from clipstream.cli import api_config, build_parser
from clipstream.launch import LocalCluster
from clipstream_support import wait_for

API_ARGS = ["api", "--coordinator-url", "http://127.0.0.1:1",
            "--store", "store-east=http://127.0.0.1:2", "--store", "store-west=http://127.0.0.1:3"]


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as dead: it serves nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_the_worker_count_is_a_knob_with_an_env_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    assert api_config(build_parser().parse_args(API_ARGS)).workers == 1
    monkeypatch.setenv("CLIPSTREAM_API_WORKERS", "3")
    assert api_config(build_parser().parse_args(API_ARGS)).workers == 3
    assert api_config(build_parser().parse_args([*API_ARGS, "--api-workers", "2"])).workers == 2
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*API_ARGS, "--api-workers", "0"])
    assert exc.value.code == 2


@pytest.mark.slow
def test_two_api_workers_both_serve_and_a_group_sigkill_leaves_none(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, env={"CLIPSTREAM_API_WORKERS": "2"}) as cluster:
        api = cluster.nodes["api"]
        assert api.proc is not None
        leader = api.proc.pid
        served: dict[int, int] = {}

        def both_served() -> bool:
            # one connection per request: the kernel spreads connections over the workers
            with httpx.Client(timeout=2) as client:
                h = client.get(f"{api.url}/healthz").json()
                assert (h["status"], h["primary"], h["epoch"]) == ("ok", "store-east", 1)
                feed = client.get(f"{api.url}/feed")
                assert feed.status_code == 200, feed.text
            served[h["pid"]] = served.get(h["pid"], 0) + 1
            return len(served) == 2

        wait_for(both_served, timeout=20, poll=0.01, what="answers from two api workers")
        workers = sorted(served)
        assert leader not in workers
        assert all(os.getpgid(pid) == leader for pid in workers)  # one process group

        os.killpg(leader, signal.SIGKILL)  # a power cut, as the harness does it
        api.proc.wait(5)
        wait_for(lambda: not any(alive(pid) for pid in workers), timeout=5,
                 what="every worker dead")
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{api.url}/healthz", timeout=1)

        api.start()  # the same port again
        api.wait_healthy(20)
        h = httpx.get(f"{api.url}/healthz", timeout=2).json()
        assert h["primary"] == "store-east" and h["pid"] not in workers

        again = children(api.proc.pid)
        api.proc.kill()  # the parent alone: the kernel takes its workers with it
        api.proc.wait(5)
        wait_for(lambda: not any(alive(pid) for pid in again), timeout=5,
                 what="the orphaned workers dead")


@pytest.mark.slow
def test_sigterm_stops_every_worker_and_the_api_exits_0(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, env={"CLIPSTREAM_API_WORKERS": "2"}) as cluster:
        api = cluster.nodes["api"]
        assert api.proc is not None
        workers = children(api.proc.pid)
        assert len(workers) == 2
        api.proc.send_signal(signal.SIGTERM)  # to the parent only: it passes it on
        assert api.proc.wait(15) == 0
        wait_for(lambda: not any(alive(pid) for pid in workers), timeout=5,
                 what="every worker stopped")
