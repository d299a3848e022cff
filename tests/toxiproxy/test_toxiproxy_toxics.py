"""Conformance: every toxic measured on real sockets through the server under test.

Each test contrasts the toxic with the clean link (so it would fail against a server that
ignores the toxic) and bounds are loose enough for a loaded 2-core machine: lower bounds follow
from the semantics (data cannot arrive before its delay), upper bounds leave seconds of slack.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
from tp_support import (
    TcpServer,
    connect,
    read_until_end,
    recorder,
    round_trip,
    sender,
    wait_for,
)


def test_latency_delays_each_direction_it_is_on(make_proxy, add_toxic, http) -> None:
    with TcpServer() as up:
        proxy = make_proxy(up.addr)
        name = proxy["name"]
        with connect(proxy["listen"]) as sock:
            clean = min(round_trip(sock) for _ in range(3))
            add_toxic(name, "latency", latency=150)  # added while the connection is open
            down = [round_trip(sock) for _ in range(3)]
            add_toxic(name, "latency", stream="upstream", latency=100)
            both = [round_trip(sock) for _ in range(2)]
            http.delete(f"/proxies/{name}/toxics/latency_downstream")
            http.delete(f"/proxies/{name}/toxics/latency_upstream")
            healed = min(round_trip(sock) for _ in range(3))
    assert clean < 0.075
    assert all(0.150 <= t < 0.150 + 0.6 for t in down), down
    assert all(0.250 <= t < 0.250 + 0.6 for t in both), both
    assert healed < 0.075


def test_latency_jitter_stays_within_its_band(make_proxy, add_toxic) -> None:
    with TcpServer() as up:
        proxy = make_proxy(up.addr)
        add_toxic(proxy["name"], "latency", latency=100, jitter=60)
        with connect(proxy["listen"]) as sock:
            times = [round_trip(sock) for _ in range(12)]
    assert all(0.040 <= t < 0.160 + 0.6 for t in times), times
    assert max(times) - min(times) > 0.005  # jitter really varies the delay


def test_bandwidth_limits_within_20_percent(make_proxy, add_toxic) -> None:
    size, rate_kb = 300_000, 150  # 2 seconds at 150 KB/s
    with TcpServer(sender(b"x" * size, close=False, linger=10)) as up:
        proxy = make_proxy(up.addr)
        with connect(proxy["listen"]) as sock:
            assert read_until_end(sock, 10, limit=size).data == b"x" * size  # clean: fast
        add_toxic(proxy["name"], "bandwidth", rate=rate_kb)
        start = time.monotonic()  # before connect: the server may start sending at once
        with connect(proxy["listen"]) as sock:
            got = read_until_end(sock, 20, limit=size, start=start)
    assert len(got.data) == size, got.end
    measured = size / got.elapsed / 1000
    assert 0.8 * rate_kb <= measured <= 1.2 * rate_kb, f"{measured:.1f} KB/s"


def test_bandwidth_zero_stalls_until_removed_and_then_flushes(make_proxy, add_toxic, http):
    with TcpServer() as up:
        proxy = make_proxy(up.addr)
        add_toxic(proxy["name"], "bandwidth", rate=0)
        with connect(proxy["listen"]) as sock:
            sock.sendall(b"held back")
            stalled = read_until_end(sock, 0.5)
            http.delete(f"/proxies/{proxy['name']}/toxics/bandwidth_downstream")
            flushed = read_until_end(sock, 5, limit=9)
    assert stalled.data == b"" and stalled.end == "timeout"
    assert bytes(up.received) == b"held back"  # upstream unaffected
    assert flushed.data == b"held back"


def test_slow_close_delays_only_the_close(make_proxy, add_toxic) -> None:
    with TcpServer(sender(b"bye")) as up:
        proxy = make_proxy(up.addr)
        with connect(proxy["listen"]) as sock:
            clean = read_until_end(sock, 5)
        add_toxic(proxy["name"], "slow_close", delay=600)
        start = time.monotonic()
        with connect(proxy["listen"]) as sock:
            slow = read_until_end(sock, 10, start=start)
    assert clean.data == b"bye" and clean.end == "eof" and clean.elapsed < 0.5
    assert slow.data == b"bye" and slow.end == "eof"
    assert slow.first_byte is not None and slow.elapsed - slow.first_byte >= 0.45  # data first
    assert 0.6 <= slow.elapsed < 0.6 + 2.0


def test_timeout_zero_is_a_blackhole_that_closes_when_removed(make_proxy, add_toxic, http):
    with TcpServer(recorder) as up:
        proxy = make_proxy(up.addr)
        with connect(proxy["listen"]) as sock:
            sock.sendall(b"before")
            assert wait_for(lambda: bytes(up.received) == b"before", 5)
            add_toxic(proxy["name"], "timeout", stream="upstream", timeout=0)
            sock.sendall(b"swallowed")
            held = read_until_end(sock, 0.8)
            assert bytes(up.received) == b"before"  # the data vanished, the socket is open
            assert held.end == "timeout"
            http.delete(f"/proxies/{proxy['name']}/toxics/timeout_upstream")
            after = read_until_end(sock, 5)
    assert after.end in ("eof", "reset") and after.data == b""
    assert bytes(up.received) == b"before"


def test_timeout_closes_after_its_delay_and_drops_data(make_proxy, add_toxic) -> None:
    with TcpServer(sender(b"never seen", close=False, linger=10)) as up:
        proxy = make_proxy(up.addr)
        add_toxic(proxy["name"], "timeout", timeout=400)
        start = time.monotonic()  # the server's clock starts when it accepts
        with connect(proxy["listen"]) as sock:
            got = read_until_end(sock, 10, start=start)
    assert got.data == b"" and got.end in ("eof", "reset")
    assert 0.4 <= got.elapsed < 0.4 + 2.0


def test_reset_peer_gives_econnreset(make_proxy, add_toxic) -> None:
    with TcpServer() as up:
        proxy = make_proxy(up.addr)
        with connect(proxy["listen"]) as sock:
            round_trip(sock)
        add_toxic(proxy["name"], "reset_peer", stream="upstream", timeout=0)
        with connect(proxy["listen"]) as sock:
            sock.sendall(b"hello")
            got = read_until_end(sock, 5)
    assert got.end == "reset" and got.data == b""


def test_reset_peer_waits_its_timeout_first(make_proxy, add_toxic) -> None:
    with TcpServer() as up:
        proxy = make_proxy(up.addr)
        add_toxic(proxy["name"], "reset_peer", stream="upstream", timeout=400)
        with connect(proxy["listen"]) as sock:
            start = time.monotonic()
            sock.sendall(b"hello")
            got = read_until_end(sock, 10, start=start)
    assert got.end == "reset" and got.data == b""
    assert 0.4 <= got.elapsed < 0.4 + 2.0


def test_slicer_cuts_data_into_delayed_pieces(make_proxy, add_toxic) -> None:
    payload = bytes(range(100)) * 2
    with TcpServer(sender(payload, close=False, linger=10)) as up:
        proxy = make_proxy(up.addr)
        with connect(proxy["listen"]) as sock:
            clean = read_until_end(sock, 5, limit=len(payload))
        add_toxic(proxy["name"], "slicer", average_size=20, size_variation=5, delay=20_000)
        with connect(proxy["listen"]) as sock:
            sliced = read_until_end(sock, 10, limit=len(payload))
    assert clean.data == payload and clean.elapsed < 0.3
    assert sliced.data == payload  # intact and in order
    assert sliced.reads >= 2
    # at least 8 pieces of <= 25 bytes, each followed by a 20 ms pause
    assert sliced.elapsed - (sliced.first_byte or 0) >= 7 * 0.020


def test_limit_data_closes_at_the_byte_count(make_proxy, add_toxic) -> None:
    payload = b"0123456789" * 100
    with TcpServer(sender(payload, close=False, linger=10)) as up:
        proxy = make_proxy(up.addr)
        add_toxic(proxy["name"], "limit_data", bytes=123)
        with connect(proxy["listen"]) as sock:
            got = read_until_end(sock, 10)
    assert got.data == payload[:123] and got.end in ("eof", "reset")


def test_limit_data_upstream_counts_client_bytes(make_proxy, add_toxic) -> None:
    with TcpServer(recorder) as up:
        proxy = make_proxy(up.addr)
        add_toxic(proxy["name"], "limit_data", stream="upstream", bytes=10)
        with connect(proxy["listen"]) as sock:
            sock.sendall(b"abcdef")
            sock.sendall(b"ghijklmnop")
            end = read_until_end(sock, 5)
        assert end.end in ("eof", "reset")
        assert wait_for(lambda: bytes(up.received) == b"abcdefghij", 5), bytes(up.received)


def test_noop_passes_everything(make_proxy, add_toxic) -> None:
    with TcpServer() as up:
        proxy = make_proxy(up.addr)
        add_toxic(proxy["name"], "noop")
        add_toxic(proxy["name"], "noop", stream="upstream")
        with connect(proxy["listen"]) as sock:
            big = bytes(range(256)) * 400
            assert round_trip(sock, big) < 5


def test_streams_are_directions(make_proxy, add_toxic, http) -> None:
    with TcpServer() as up:
        proxy = make_proxy(up.addr)
        name = proxy["name"]
        add_toxic(name, "timeout", timeout=0)  # downstream: server -> client
        with connect(proxy["listen"]) as sock:
            sock.sendall(b"request")
            reply = read_until_end(sock, 0.6)
        assert wait_for(lambda: bytes(up.received) == b"request", 5)  # reached the server
        assert reply.data == b""  # the answer did not reach the client
        http.delete(f"/proxies/{name}/toxics/timeout_downstream")
        add_toxic(name, "timeout", stream="upstream", timeout=0)
        with connect(proxy["listen"]) as sock:
            sock.sendall(b"lost")
            read_until_end(sock, 0.6)
        assert bytes(up.received) == b"request"


def test_no_half_close_eof_from_client_closes_both(make_proxy) -> None:
    with TcpServer(sender(b"", close=False, linger=10)) as up:
        proxy = make_proxy(up.addr)
        with connect(proxy["listen"]) as sock:
            assert wait_for(lambda: up.accepted == 1, 5)
            sock.shutdown(1)  # SHUT_WR: half-close from the client
            got = read_until_end(sock, 5)
    assert got.end in ("eof", "reset")


def test_toxicity_is_decided_once_per_connection_and_lands_near_half(make_proxy, add_toxic):
    """200 connections through a blackhole of toxicity 0.5: each gets all or nothing."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"A")
        await writer.drain()
        await asyncio.sleep(0.03)
        writer.write(b"B")
        await writer.drain()
        writer.close()

    async def one(listen: str, gate: asyncio.Semaphore) -> bytes:
        host, _, port = listen.rpartition(":")
        async with gate:
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                return await asyncio.wait_for(reader.read(), 20)
            except ConnectionResetError:
                return b"<reset>"
            finally:
                writer.close()

    async def run() -> list[bytes]:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        proxy = make_proxy(f"127.0.0.1:{port}")
        add_toxic(proxy["name"], "timeout", timeout=0, toxicity=0.5)
        gate = asyncio.Semaphore(50)
        async with server:
            return await asyncio.gather(*(one(proxy["listen"], gate) for _ in range(200)))

    results = asyncio.run(run())
    assert set(results) <= {b"AB", b""}, {r for r in results if r not in (b"AB", b"")}
    hit = results.count(b"")
    assert 65 <= hit <= 135, hit  # binomial(200, 0.5): 4.9 standard deviations either side


def test_toxicity_zero_never_acts(make_proxy, add_toxic, http: httpx.Client) -> None:
    with TcpServer() as up:
        proxy = make_proxy(up.addr)
        add_toxic(proxy["name"], "timeout", timeout=0, toxicity=0)
        for _ in range(5):
            with connect(proxy["listen"]) as sock:
                round_trip(sock)


def _pattern(size: int) -> bytes:
    return bytes((i * 7 + i // 251) % 256 for i in range(65536)) * (size // 65536)


def test_bulk_data_stays_whole_and_in_order_while_toxics_come_and_go(
    make_proxy, add_toxic, http: httpx.Client
) -> None:
    """Toxics switched on and off mid-transfer (fast path <-> toxic path) lose and reorder
    nothing, in either direction. Sockets are pumped by threads while the toxics change (the
    Go server blocks a toxic change until backpressured connections drain)."""
    size = 24 << 20
    payload = _pattern(size)
    got = bytearray()
    with TcpServer() as up:
        proxy = make_proxy(up.addr)
        name = proxy["name"]
        with connect(proxy["listen"], timeout=60) as sock:

            def pump() -> None:
                view = memoryview(payload)
                for i in range(0, size, 1 << 20):
                    sock.sendall(view[i : i + (1 << 20)])
                    time.sleep(0.02)  # spread the transfer over the toxic changes

            def drain() -> None:
                while len(got) < size and (chunk := sock.recv(1 << 20)):
                    got.extend(chunk)

            threads = [threading.Thread(target=pump), threading.Thread(target=drain)]
            for thread in threads:
                thread.start()
            flips = 0
            while threads[1].is_alive():
                stream = ("upstream", "downstream")[flips % 2]
                add_toxic(name, "noop", stream=stream, name=f"n{flips}")
                if flips % 5 == 2:
                    add_toxic(name, "latency", stream=stream, name=f"l{flips}", latency=1)
                if flips % 5 == 4:
                    http.delete(f"/proxies/{name}/toxics/l{flips - 2}")
                http.delete(f"/proxies/{name}/toxics/n{flips - 1}")
                flips += 1
            for thread in threads:
                thread.join(60)
    assert flips >= 4
    assert len(got) == size and bytes(got) == payload
    assert bytes(up.received) == payload
