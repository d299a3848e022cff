"""The harness's client (``drills.toxiproxy.client``) against the server under test.

Every verb is checked on real sockets through the link it changed. The embedded-server tests
start their own child process (``python -m drills.toxiproxy``) whatever TOXIPROXY_URL says.
"""

from __future__ import annotations

import contextlib
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from toxiproxy.api import APIConsumer
from tp_support import (
    TcpServer,
    closed_port_addr,
    connect,
    read_until_end,
    refused,
    round_trip,
    unique,
)

from drills.errors import ProxyError
from drills.toxiproxy.client import (
    LinkSpec,
    ToxiproxyClient,
    link_name,
    proxy_name,
    wait_ready,
)
from drills.toxiproxy.embedded import EmbeddedServer


@pytest.fixture
def tp(tp_url: str) -> Iterator[ToxiproxyClient]:
    with ToxiproxyClient.connect(tp_url) as client:
        yield client


@pytest.fixture
def link_name_factory(tp: ToxiproxyClient) -> Iterator:
    names: list[str] = []

    def make(prefix: str = "api") -> str:
        name = f"{prefix}->{unique('store-')}"
        names.append(name)
        return name

    yield make
    for name in names:
        with contextlib.suppress(ProxyError):
            tp.link(name).delete()


def test_three_lines_create_break_and_heal(tp: ToxiproxyClient, link_name_factory) -> None:
    with TcpServer() as up:
        link = tp.create_link(link_name_factory(), upstream=up.addr)
        link.blackhole()
        with connect(link.listen) as sock:
            sock.sendall(b"lost")
            assert read_until_end(sock, 0.5).data == b""
        link.heal()
        with connect(link.listen) as sock:
            assert round_trip(sock) < 1


def test_link_names_map_to_url_safe_proxy_names(
    tp: ToxiproxyClient, http: httpx.Client, link_name_factory
) -> None:
    name = link_name_factory()
    link = tp.create_link(name, upstream="127.0.0.1:1")
    assert link.name == name and link.proxy == name.replace("->", "_to_")
    assert link.proxy in http.get("/proxies").json()
    assert name in [x.name for x in tp.links()]
    assert tp.link(name).listen == link.listen
    assert link_name(proxy_name("a->b->c")) == "a->b->c"
    for bad in ("a b", "x_to_y", "a/b", "", "é->b"):
        with pytest.raises(ProxyError):
            proxy_name(bad)


def test_listen_is_the_real_bound_address(tp: ToxiproxyClient, link_name_factory) -> None:
    link = tp.create_link(link_name_factory(), upstream="127.0.0.1:1", listen="localhost:0")
    host, port = link.listen.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0


def test_down_refuses_and_up_restores(tp: ToxiproxyClient, link_name_factory) -> None:
    with TcpServer() as up:
        link = tp.create_link(link_name_factory(), upstream=up.addr)
        with connect(link.listen) as open_conn:
            round_trip(open_conn)
            link.down()
            assert link.enabled is False
            assert refused(link.listen)
            assert read_until_end(open_conn, 5).end in ("eof", "reset")
        link.down()  # idempotent
        link.up()
        assert link.enabled is True
        with connect(link.listen) as sock:
            round_trip(sock)


def test_blackhole_is_idempotent_and_returns_its_names(
    tp: ToxiproxyClient, link_name_factory
) -> None:
    with TcpServer() as up:
        link = tp.create_link(link_name_factory(), upstream=up.addr)
        names = link.blackhole()
        assert link.blackhole() == names == ["timeout_upstream", "timeout_downstream"]
        assert sorted(t.name for t in link.toxics()) == sorted(names)
        with connect(link.listen) as sock:
            sock.sendall(b"x")
            assert read_until_end(sock, 0.5).end == "timeout"
            assert up.received == b""
            assert link.remove_toxic(names[0]) is True
            assert link.remove_toxic(names[0]) is False
            assert link.remove_toxic(names[1]) is True
            assert read_until_end(sock, 5).end in ("eof", "reset")  # healing closes held conns


def test_reset_peer_resets(tp: ToxiproxyClient, link_name_factory) -> None:
    with TcpServer() as up:
        link = tp.create_link(link_name_factory(), upstream=up.addr)
        assert link.reset_peer() == ["reset_peer_upstream", "reset_peer_downstream"]
        with connect(link.listen) as sock:
            sock.sendall(b"x")
            assert read_until_end(sock, 5).end == "reset"


def test_latency_both_ways_and_update_in_place(tp: ToxiproxyClient, link_name_factory) -> None:
    with TcpServer() as up:
        link = tp.create_link(link_name_factory(), upstream=up.addr)
        with connect(link.listen) as sock:
            assert link.latency(ms=60.4) == ["latency_upstream", "latency_downstream"]
            assert 0.120 <= round_trip(sock) < 0.120 + 0.6
            link.latency(ms=150, jitter=0)  # same names: updated, not duplicated
            assert len(link.toxics()) == 2
            assert {t.attributes["latency"] for t in link.toxics()} == {150}
            assert 0.300 <= round_trip(sock) < 0.300 + 0.6
            link.heal()
            assert round_trip(sock) < 0.1


def test_latency_one_way_delays_only_that_stream(tp: ToxiproxyClient, link_name_factory) -> None:
    with TcpServer() as up:
        link = tp.create_link(link_name_factory(), upstream=up.addr)
        with connect(link.listen) as sock:
            assert link.latency(ms=150, direction="upstream") == ["latency_upstream"]
            assert [t.stream for t in link.toxics()] == ["upstream"]
            assert 0.150 <= round_trip(sock) < 0.300  # one way only: not 2 x 150 ms
            link.heal()
            assert link.latency(ms=150, direction="downstream") == ["latency_downstream"]
            assert [t.stream for t in link.toxics()] == ["downstream"]


def test_bandwidth_limits_each_way(tp: ToxiproxyClient, link_name_factory) -> None:
    with TcpServer() as up:
        link = tp.create_link(link_name_factory(), upstream=up.addr)
        assert link.bandwidth(kbps=100) == ["bandwidth_upstream", "bandwidth_downstream"]
        with connect(link.listen) as sock:
            start = time.monotonic()
            assert round_trip(sock, b"z" * 100_000, timeout=20) >= 0.8
        assert time.monotonic() - start < 1.2 * 2 + 2  # < 1 s each way, plus slack


def test_add_toxic_replaces_a_same_named_toxic_of_another_type(
    tp: ToxiproxyClient, link_name_factory
) -> None:
    link = tp.create_link(link_name_factory(), upstream="127.0.0.1:1")
    assert link.add_toxic("latency", name="fault-1", latency=5) == "fault-1"
    assert link.add_toxic("timeout", name="fault-1", stream="upstream", timeout=0) == "fault-1"
    (only,) = link.toxics()
    assert (only.type, only.stream, only.attributes) == ("timeout", "upstream", {"timeout": 0})


def test_errors_carry_status_and_message(tp: ToxiproxyClient, link_name_factory) -> None:
    with pytest.raises(ProxyError) as missing:
        tp.link(f"nobody->{unique()}")
    assert missing.value.status == 404 and "proxy not found" in str(missing.value)
    name = link_name_factory()
    link = tp.create_link(name, upstream="127.0.0.1:1")
    with pytest.raises(ProxyError) as dup:
        tp.create_link(name, upstream="127.0.0.1:1")
    assert dup.value.status == 409
    with pytest.raises(ProxyError) as bad:
        link.add_toxic("no_such_toxic")
    assert bad.value.status == 400 and "invalid toxic type" in str(bad.value)
    link.delete()
    with pytest.raises(ProxyError) as gone:
        link.remove_toxic("anything")
    assert gone.value.status == 404


def test_listen_failure_is_a_proxy_error_500(tp: ToxiproxyClient, link_name_factory) -> None:
    taken = tp.create_link(link_name_factory(), upstream="127.0.0.1:1")
    with pytest.raises(ProxyError) as err:
        tp.create_link(link_name_factory(), upstream="127.0.0.1:1", listen=taken.listen)
    assert err.value.status == 500 and "address already in use" in str(err.value)


def test_populate_keeps_equal_links_and_replaces_changed_ones(
    tp: ToxiproxyClient, link_name_factory
) -> None:
    a, b = link_name_factory(), link_name_factory()
    first = {
        x.name: x for x in tp.populate([LinkSpec(a, "127.0.0.1:1"), LinkSpec(b, "127.0.0.1:2")])
    }
    first[a].latency(ms=1)
    first[b].latency(ms=1)
    port_b = first[b].listen.rsplit(":", 1)[1]
    again = {
        x.name: x
        for x in tp.populate(
            [
                LinkSpec(a, "127.0.0.1:1", listen=first[a].listen),
                LinkSpec(b, "127.0.0.1:3", listen=f"localhost:{port_b}"),
            ]
        )
    }
    assert len(again[a].toxics()) == 2 and again[a].listen == first[a].listen
    assert again[b].toxics() == [] and again[b].upstream == "127.0.0.1:3"


def test_reset_clears_every_link(tp: ToxiproxyClient, link_name_factory) -> None:
    link = tp.create_link(link_name_factory(), upstream="127.0.0.1:1")
    link.blackhole()
    link.down()
    tp.reset()
    info = link.refresh()
    assert info.enabled is True and info.toxics == ()


def test_library_global_address_is_left_alone(tp: ToxiproxyClient) -> None:
    before = (APIConsumer.host, APIConsumer.port)
    tp.version()
    tp.links()
    assert (APIConsumer.host, APIConsumer.port) == before


# -- connecting -------------------------------------------------------------------------------
def test_connect_without_url_starts_and_stops_an_embedded_server(
    monkeypatch: pytest.MonkeyPatch, tp: ToxiproxyClient
) -> None:
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    with ToxiproxyClient.connect() as own:
        assert own.embedded is True and own.url.startswith("http://127.0.0.1:")
        assert own.url != tp.url
        server = own.server
        assert server is not None and server.process is not None
        pid = server.process.pid
        proc = server.process
        with TcpServer() as up:
            link = own.create_link(f"x->{unique()}", upstream=up.addr)
            with connect(link.listen) as sock:
                round_trip(sock)
        assert [x.name for x in own.links()] == [link.name]  # its own, separate server
        assert tp.version()  # two clients, two servers, no shared address
    assert proc.poll() is not None, f"embedded server {pid} still running"
    assert refused(link.listen)


def test_connect_follows_toxiproxy_url(monkeypatch: pytest.MonkeyPatch, tp_url: str) -> None:
    monkeypatch.setenv("TOXIPROXY_URL", tp_url)
    with ToxiproxyClient.connect() as client:
        assert client.embedded is False and client.url == tp_url
        assert client.version()


def test_connect_to_a_dead_url_fails_quickly() -> None:
    start = time.monotonic()
    with pytest.raises(ProxyError) as err:
        ToxiproxyClient.connect(f"http://{closed_port_addr()}", ready_timeout=0.5)
    assert time.monotonic() - start < 5
    assert "did not answer within 0.5s" in str(err.value)
    with pytest.raises(ProxyError):
        ToxiproxyClient.connect("https://127.0.0.1:1")


def test_wait_ready_polls_on_its_interval_and_attaches_logs() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    with pytest.raises(ProxyError) as err:
        wait_ready(
            f"http://{closed_port_addr()}",
            1.0,
            interval=0.25,
            clock=lambda: now[0],
            sleep=sleep,
            logs=lambda: "server said: boom",
        )
    assert slept == [0.25] * 4
    assert "did not answer within 1s" in str(err.value) and "server said: boom" in str(err.value)


def test_wait_ready_returns_the_version_of_a_live_server(tp_url: str) -> None:
    assert wait_ready(tp_url, 5.0)


def test_embedded_server_that_dies_reports_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho 'fatal: cannot start' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "tp.log"
    start = time.monotonic()
    with pytest.raises(ProxyError) as err, EmbeddedServer(python=str(fake), log_path=log):
        pass
    assert time.monotonic() - start < 10
    assert "exited" in str(err.value) and "fatal: cannot start" in str(err.value)
    assert log.exists()


def test_embedded_server_writes_its_log_where_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    log = tmp_path / "logs" / "toxiproxy.log"
    with ToxiproxyClient.connect(log_path=log) as own:
        own.create_link(f"log->{unique()}", upstream="127.0.0.1:1")
    text = log.read_text()
    assert "created" in text and "shutdown complete" in text
