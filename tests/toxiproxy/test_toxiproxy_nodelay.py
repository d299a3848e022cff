"""A clean link adds no Nagle delay: every socket of the server has TCP_NODELAY, as in Go.

Regression for a ~40 ms stall on multi-segment HTTP responses through a proxy with no toxic.
The sockets a proxy accepted had Nagle's algorithm on (asyncio sets TCP_NODELAY only on sockets
whose ``proto`` is IPPROTO_TCP, and ours came from a listener made with proto 0), so a write's
short tail waited for the ACK of an earlier short segment, which the client's kernel delays by
its 40 ms minimum. The in-process tests check the flag on the real sockets; the end-to-end one
measures a 100 KB keep-alive HTTP response direct and through the server under test.
"""

from __future__ import annotations

import asyncio
import random
import socket
import statistics
import time

import httpx
from tp_support import TcpServer, http_streamer

from drills.toxiproxy.proxy import Proxy, bind

BODY = bytes(range(256)) * 400  # 102,400 bytes: one full loopback segment and more
ROUNDS = 20
#: Allowed extra median per request through the proxy. The bug costs ~40 ms (the delayed-ACK
#: minimum) on most requests; a working hop costs well under a millisecond on loopback.
SLACK = 0.020


def _nodelay(transport: asyncio.BaseTransport | None) -> int:
    assert transport is not None
    sock = transport.get_extra_info("socket")
    return int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def test_both_sockets_of_a_proxied_connection_have_nodelay() -> None:
    async def flags(upstream: str) -> tuple[int, int]:
        proxy = Proxy("nodelay", "127.0.0.1:0", upstream, rng=random.Random(1))
        await proxy.start()
        host, _, port = proxy.listen.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
            (conn,) = proxy.connections()
            return _nodelay(conn.client.transport), _nodelay(conn.server.transport)
        finally:
            writer.close()
            proxy.stop()

    with TcpServer() as up:
        client_side, server_side = asyncio.run(flags(up.addr))
    assert (client_side, server_side) == (1, 1)


def test_sockets_accepted_from_a_bound_listener_have_nodelay() -> None:
    """The API listener comes from ``bind`` too: what it accepts must not wait on Nagle."""

    async def accepted_flag() -> int:
        sock, bound = bind("127.0.0.1:0")
        got: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def on_client(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.set_result(_nodelay(writer.transport))
            writer.close()

        server = await asyncio.start_server(on_client, sock=sock)
        async with server:
            host, _, port = bound.rpartition(":")
            _, writer = await asyncio.open_connection(host, int(port))
            try:
                return await asyncio.wait_for(got, 10)
            finally:
                writer.close()

    assert asyncio.run(accepted_flag()) == 1


def test_a_streamed_100kb_http_response_is_not_held_back(make_proxy) -> None:
    """Median of 20 keep-alive GETs of a 100 KB body streamed in parts, direct vs proxied,
    alternating so that load on the machine hits both alike."""
    with TcpServer(http_streamer(BODY)) as up:
        proxy = make_proxy(up.addr)
        bases = {"direct": f"http://{up.addr}", "proxy": f"http://{proxy['listen']}"}
        times: dict[str, list[float]] = {name: [] for name in bases}
        with (
            httpx.Client(base_url=bases["direct"], trust_env=False, timeout=10) as direct,
            httpx.Client(base_url=bases["proxy"], trust_env=False, timeout=10) as proxied,
        ):
            clients = {"direct": direct, "proxy": proxied}
            for client in clients.values():
                assert client.get("/warm-up").content == BODY
            for _ in range(ROUNDS):
                for name, client in clients.items():
                    start = time.perf_counter()
                    resp = client.get("/blob")
                    times[name].append(time.perf_counter() - start)
                    assert resp.status_code == 200 and resp.content == BODY
        assert up.accepted == 2, "each client must keep one connection alive"
        assert up.received.count(b"GET /blob ") == 2 * ROUNDS
    direct_ms = statistics.median(times["direct"]) * 1000
    proxy_ms = statistics.median(times["proxy"]) * 1000
    assert proxy_ms < direct_ms + SLACK * 1000, (
        f"proxy median {proxy_ms:.1f} ms vs direct {direct_ms:.1f} ms; proxied times (ms): "
        f"{[round(t * 1000, 1) for t in times['proxy']]}"
    )
