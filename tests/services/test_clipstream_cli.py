"""The command line: flags with environment twins, refusals with exit 2, clean SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from clipstream.cli import build_parser, main
from clipstream.config import FsyncPolicy, env_name, parse_store_list
from clipstream.errors import ConfigError
from clipstream.launch import NodeProcess, free_port
from clipstream_support import dump, wait_for

STORE = ["store", "--name", "s", "--port", "1", "--data-dir", "d"]
STORES = ["--store", "store-east=http://127.0.0.1:1", "--store", "store-west=http://127.0.0.1:2"]


def test_env_name_is_the_upper_snake_twin() -> None:
    assert env_name("--detection-ms") == "CLIPSTREAM_DETECTION_MS"
    assert env_name("--fsync") == "CLIPSTREAM_FSYNC"


def test_every_knob_reads_its_twin_and_the_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    for knob, value in {"FSYNC": "interval:250", "REPLICATION": "async",
                        "PULL_INTERVAL_MS": "900", "REPLICATION_TIMEOUT_MS": "700"}.items():
        monkeypatch.setenv(f"CLIPSTREAM_{knob}", value)
    a = build_parser().parse_args(["store", "--name", "s", "--port", "1", "--data-dir", "d"])
    assert (a.fsync, a.replication, a.pull_interval_ms, a.replication_timeout_ms) == (
        FsyncPolicy("interval", 250), "async", 900, 700)
    for knob, value in {"DETECTION_MS": "2500", "CHECK_INTERVAL_MS": "50",
                        "CHECK_TIMEOUT_MS": "75", "WRITE_RETRY_S": "1.5",
                        "REQUEST_TIMEOUT_MS": "300", "MAX_UPLOAD_BYTES": "1024"}.items():
        monkeypatch.setenv(f"CLIPSTREAM_{knob}", value)
    c = build_parser().parse_args(["coordinator", "--data-dir", "d", *STORES])
    assert (c.detection_ms, c.check_interval_ms, c.check_timeout_ms) == (2500, 50, 75)
    c = build_parser().parse_args(["coordinator", "--data-dir", "d", "--detection-ms", "800"])
    assert c.detection_ms == 800
    api = build_parser().parse_args(["api", "--coordinator-url", "http://127.0.0.1:1"])
    assert (api.write_retry_s, api.request_timeout_ms, api.max_upload_bytes) == (1.5, 300, 1024)
    monkeypatch.setenv("CLIPSTREAM_STORE", "store-east=http://127.0.0.1:1,b=http://127.0.0.1:2")
    assert parse_store_list(None) == {"store-east": "http://127.0.0.1:1",
                                      "b": "http://127.0.0.1:2"}


def test_defaults_without_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CLIPSTREAM_"):
            monkeypatch.delenv(key)
    a = build_parser().parse_args(["store", "--name", "s", "--port", "1", "--data-dir", "d"])
    assert (str(a.fsync), a.replication, a.pull_interval_ms) == ("always", "sync", 200)
    c = build_parser().parse_args(["coordinator", "--data-dir", "d"])
    assert (c.detection_ms, c.check_interval_ms, c.check_timeout_ms) == (1500, 200, 300)


@pytest.mark.parametrize(("env", "argv"), [
    ({"CLIPSTREAM_FSYNC": "sometimes"}, STORE),
    ({"CLIPSTREAM_FSYNC": "interval:0"}, STORE),
    ({"CLIPSTREAM_REPLICATION": "semi"}, STORE),
    ({"CLIPSTREAM_DETECTION_MS": "-5"}, ["coordinator", "--data-dir", "d", *STORES]),
    ({"CLIPSTREAM_DETECTION_MS": "soon"}, ["coordinator", "--data-dir", "d", *STORES]),
    ({}, ["store", "--name", "bad name", "--port", "1", "--data-dir", "d"]),
    ({}, ["store", "--name", "s", "--port", "1", "--data-dir", "d", "--peer-url", "ftp://x"]),
    ({}, ["coordinator", "--data-dir", "d", "--store", "store-east=http://127.0.0.1:1"]),
    ({}, ["coordinator", "--data-dir", "d", *STORES, "--primary", "store-north"]),
    ({}, ["api", "--coordinator-url", "http://127.0.0.1:1", "--store", "nourl", *STORES[2:]]),
])
def test_bad_knobs_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                          env: dict[str, str], argv: list[str]) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


def test_parse_store_list_refusals() -> None:
    for bad in (["a=http://x"], ["a=http://x", "a=http://y"], ["a=x", "b=http://y"]):
        with pytest.raises(ConfigError):
            parse_store_list(bad)


def test_fsync_policy_parse() -> None:
    assert FsyncPolicy.parse("interval:500") == FsyncPolicy("interval", 500)
    assert str(FsyncPolicy.parse("never")) == "never"
    with pytest.raises(ConfigError):
        FsyncPolicy.parse("interval:")


def test_store_configured_by_env_only_and_sigterm_keeps_the_buffer(tmp_path: Path) -> None:
    """A real store process: knobs from env twins; SIGTERM flushes even with fsync=never."""
    port = free_port()
    env = {"CLIPSTREAM_NAME": "store-east", "CLIPSTREAM_PORT": str(port),
           "CLIPSTREAM_DATA_DIR": str(tmp_path / "d"), "CLIPSTREAM_FSYNC": "never",
           "CLIPSTREAM_REPLICATION": "async"}
    node = NodeProcess("store-east", "store", f"http://127.0.0.1:{port}", [],
                       tmp_path / "store.log")
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        node.start()
        node.wait_healthy()
        st = httpx.get(f"{node.url}/state").json()
        assert (st["fsync"], st["replication"], st["role"]) == ("never", "async", "unassigned")
        assert httpx.post(f"{node.url}/videos", params={"id": "v", "title": "t", "epoch": 1},
                          content=b"x").status_code == 409  # unassigned: refuses writes
        httpx.post(f"{node.url}/assign", json={"role": "primary", "epoch": 1,
                                               "primary": "store-east"}).raise_for_status()
        for i in range(20):
            r = httpx.post(f"{node.url}/videos", params={"id": f"v{i}", "title": "t",
                                                         "epoch": 1}, content=b"x")
            assert r.status_code == 201
        assert httpx.get(f"{node.url}/state").json()["durable_index"] == 0  # all buffered
        node.terminate()
        assert node.proc is not None and node.proc.returncode == 0
        node.start()
        node.wait_healthy()
        assert len(dump(node.url)["videos"]) == 20
        st = httpx.get(f"{node.url}/state").json()
        assert (st["role"], st["epoch"]) == ("unassigned", 1)  # never self-promotes
        node.kill()
    finally:
        node.kill()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_dev_starts_everything_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "clipstream", "dev", "--port", str(port),
                             "--data-dir", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.strip() == f"ClipStream api: http://127.0.0.1:{port}"
        url = line.split()[-1]
        wait_for(lambda: httpx.get(f"{url}/healthz").status_code == 200, 10, what="api")
        r = httpx.post(f"{url}/videos", params={"title": "t", "client_id": "dev"}, content=b"x")
        assert r.status_code == 201
        proc.send_signal(2)  # Ctrl-C
        assert proc.wait(20) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz")
    finally:
        proc.kill()
        proc.wait()
