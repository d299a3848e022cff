"""Proxies: a listening socket, its open connections, its toxics; and the collection of them.

Behaviour follows Shopify/toxiproxy ``proxy.go`` and ``proxy_collection.go``: a proxy is
started by binding ``listen`` (rewritten to the bound address: ``localhost:0`` becomes
``127.0.0.1:<port>``), stopped by closing the listener and every open connection (its toxics
stay), and compared for ``/populate`` by resolving the new ``listen`` first. Toxics are applied
to the open connections at once. Every change is logged as one line.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
from collections.abc import Iterator

from drills.toxiproxy.decode import ApiError
from drills.toxiproxy.link import Connection
from drills.toxiproxy.metrics import Labels, Traffic
from drills.toxiproxy.resolve import Resolver
from drills.toxiproxy.toxics import ToxicSpec

log = logging.getLogger("drills.toxiproxy")


# -- addresses, the way Go's net package reads and prints them --------------------------------
def split_host_port(addr: str) -> tuple[str, str]:
    """``host``, ``port`` of ``addr`` (``[v6]:p``, ``h:p``, ``:p``); ValueError in Go's words."""
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise ValueError(f"address {addr}: missing ']' in address")
        host, rest = addr[1:end], addr[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError(f"address {addr}: missing port in address")
        return host, rest[1:]
    host, sep, port = addr.rpartition(":")
    if not sep:
        raise ValueError(f"address {addr}: missing port in address")
    if ":" in host:
        raise ValueError(f"address {addr}: too many colons in address")
    return host, port


def format_addr(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def resolve(addr: str) -> tuple[str | None, int]:
    """The IP (None for an empty host) and port ``addr`` names, IPv4 first; ValueError.
    An empty ``addr`` is every interface and an ephemeral port, as in Go."""
    if not addr:
        return None, 0
    host, port_text = split_host_port(addr)
    try:
        port = int(port_text) if port_text else 0
    except ValueError:
        try:
            port = socket.getservbyname(port_text, "tcp")
        except OSError:
            raise ValueError(f"lookup tcp/{port_text}: unknown port") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"address {addr}: invalid port")
    if not host:
        return None, port
    try:
        return str(ipaddress.ip_address(host.split("%")[0])), port
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        raise ValueError(f"lookup {host}: no such host") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0]), port


def resolved_text(addr: str) -> str:
    """Go's ``ResolveTCPAddr(addr).String()``: ``127.0.0.1:0`` for ``localhost:0``."""
    ip, port = resolve(addr)
    return f":{port}" if ip is None else format_addr(ip, port)


def bind(listen: str) -> tuple[socket.socket, str]:
    """A listening socket for ``listen`` and its bound address; ApiError 500 with Go's text.

    It is made with proto IPPROTO_TCP, so that asyncio sets TCP_NODELAY on what it accepts
    (asyncio skips sockets whose ``proto`` is 0, and accepted sockets inherit the listener's).
    """
    try:
        ip, port = resolve(listen)
    except ValueError as exc:
        raise ApiError(f"listen tcp: {exc}", 500) from None
    family = socket.AF_INET6 if ip is None or ":" in ip else socket.AF_INET
    where = format_addr(ip, port) if ip is not None else f":{port}"
    try:
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except OSError:
        family, ip = socket.AF_INET, "0.0.0.0"
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and ip is None:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((ip or "::", port))
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        raise ApiError(f"listen tcp {where}: bind: {reason}", 500) from None
    bound = sock.getsockname()
    return sock, format_addr(bound[0], bound[1])


class Proxy:
    """A named proxy: ``listen`` -> ``upstream``, its toxics and its open connections."""

    def __init__(self, name: str, listen: str, upstream: str, *, rng: random.Random,
                 resolver: Resolver | None = None):
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self._rng = rng
        self._resolver = resolver or Resolver()
        self._toxics: dict[str, tuple[ToxicSpec, int]] = {}
        self._seq = 0
        self._server: asyncio.Server | None = None
        self._conns: set[Connection] = set()
        self.traffic = Traffic()  # bytes through it (Toxiproxy's proxy metrics)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "Logger": {},  # Toxiproxy 2.12 marshals its exported, untagged Logger field too
            "toxics": [spec.to_json() for spec in self.toxics()],
        }

    # -- listening -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind ``listen`` and accept; no-op if running. Raises ApiError 500 if it can't bind."""
        if self.enabled:
            return
        sock, bound = bind(self.listen)
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(self._accept, sock=sock)
        except OSError as exc:
            sock.close()
            raise ApiError(f"listen tcp {bound}: {exc}", 500) from None
        self.listen = bound
        self.enabled = True

    def stop(self) -> None:
        """Close the listener (new clients are refused) and every open connection."""
        if not self.enabled:
            return
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
        dropped = list(self._conns)
        for conn in dropped:
            conn.abort()
        log.debug("proxy %s stopped: %d connections dropped", self.name, len(dropped))

    def _accept(self) -> asyncio.Protocol:
        conn = Connection(
            loop=asyncio.get_running_loop(),
            upstream=self.upstream,
            toxics=self._chain,
            rng=self._rng,
            resolver=self._resolver,
            forget=self._conns.discard,
            proxy_name=self.name,
            traffic=self.traffic,
        )
        self._conns.add(conn)
        return conn.client

    def connections(self) -> list[Connection]:
        """The connections open now whose upstream socket is connected."""
        return [conn for conn in self._conns if conn.ready]

    def differs(self, listen: str, upstream: str) -> bool:
        """Whether ``listen`` (resolved) or ``upstream`` differ from ours; ApiError 500 if the
        new ``listen`` cannot be resolved."""
        try:
            return self.listen != resolved_text(listen) or self.upstream != upstream
        except ValueError as exc:
            raise ApiError(str(exc), 500) from None

    async def update(self, *, listen: str, upstream: str, enabled: bool) -> None:
        """Apply a proxy update: a new address restarts it; ``enabled`` starts or stops it.
        Logs one line if anything changed."""
        before = (self.listen, self.upstream, self.enabled)
        if self.differs(listen, upstream):
            self.stop()
            self.listen, self.upstream = listen, upstream
        if enabled and not self.enabled:
            await self.start()
        elif not enabled:
            self.stop()
        if (self.listen, self.upstream, self.enabled) != before:
            log.info("proxy %s updated: %s", self.name, self.describe())

    def describe(self) -> str:
        return f"listen={self.listen} upstream={self.upstream} enabled={str(self.enabled).lower()}"

    # -- toxics --------------------------------------------------------------------------------
    def toxics(self) -> list[ToxicSpec]:
        """Upstream toxics first, then downstream, each in the order they were added."""
        specs = [spec for spec, _ in self._toxics.values()]
        return [s for s in specs if s.upstream] + [s for s in specs if not s.upstream]

    def _chain(self) -> Iterator[tuple[ToxicSpec, int]]:
        return iter(list(self._toxics.values()))

    def _pipes(self, upstream: bool) -> Iterator:
        for conn in self.connections():
            yield conn.pipe(upstream)

    def has_toxic(self, name: str) -> bool:
        return name in self._toxics

    def toxic(self, name: str) -> ToxicSpec:
        try:
            return self._toxics[name][0]
        except KeyError:
            raise ApiError("toxic not found", 404) from None

    def add_toxic(self, spec: ToxicSpec) -> None:
        self._seq += 1
        self._toxics[spec.name] = (spec, self._seq)
        for pipe in self._pipes(spec.upstream):
            pipe.add_stage(spec, self._seq, self._rng)
        log.info("proxy %s: toxic %s added: %s", self.name, spec.name, spec.to_json())

    def update_toxic(self, spec: ToxicSpec) -> None:
        _, seq = self._toxics[spec.name]
        self._toxics[spec.name] = (spec, seq)
        for pipe in self._pipes(spec.upstream):
            pipe.update_stage(seq, spec)
        log.info("proxy %s: toxic %s updated: %s", self.name, spec.name, spec.to_json())

    def remove_toxic(self, name: str) -> None:
        spec = self.toxic(name)
        _, seq = self._toxics.pop(name)
        for pipe in self._pipes(spec.upstream):
            pipe.remove_stage(seq)
        log.info("proxy %s: toxic %s removed", self.name, name)

    def reset_toxics(self) -> None:
        for name in list(self._toxics):
            self.remove_toxic(name)


class ProxyCollection:
    """Every proxy by name; guards duplicate names, as Toxiproxy's ProxyCollection."""

    def __init__(self) -> None:
        self._proxies: dict[str, Proxy] = {}
        self._retired: dict[Labels, Traffic] = {}  # counters of proxies gone (they only grow)

    def traffic(self) -> list[tuple[Labels, Traffic]]:
        """Bytes per (proxy, listener, upstream), proxies gone included, for ``/metrics``."""
        totals: dict[Labels, Traffic] = {}
        rows = [*self._retired.items(),
                *(((p.name, p.listen, p.upstream), p.traffic) for p in self._proxies.values())]
        for labels, t in rows:
            totals.setdefault(labels, Traffic()).add(t)
        return list(totals.items())

    def _retire(self, proxy: Proxy) -> None:
        self._retired.setdefault((proxy.name, proxy.listen, proxy.upstream), Traffic()).add(
            proxy.traffic)

    def all(self) -> list[Proxy]:
        return [self._proxies[name] for name in sorted(self._proxies)]

    def get(self, name: str) -> Proxy:
        try:
            return self._proxies[name]
        except KeyError:
            raise ApiError("proxy not found", 404) from None

    async def add(self, proxy: Proxy, *, start: bool) -> None:
        """Add a new proxy (409 if the name is taken), started if ``start`` (500 if it can't)."""
        if proxy.name in self._proxies:
            raise ApiError("proxy already exists", 409)
        if start:
            await proxy.start()
        self._proxies[proxy.name] = proxy
        log.info("proxy %s created: %s", proxy.name, proxy.describe())

    async def add_or_replace(self, proxy: Proxy, *, start: bool) -> Proxy:
        """``/populate`` semantics: an equal proxy (resolved listen, upstream) is kept as it is,
        toxics and all; a different one is stopped and replaced."""
        existing = self._proxies.get(proxy.name)
        if existing is not None:
            if not existing.differs(proxy.listen, proxy.upstream):
                return existing
            existing.stop()
            self._retire(existing)
        if start:
            await proxy.start()
        self._proxies[proxy.name] = proxy
        what = "replaced" if existing is not None else "created"
        log.info("proxy %s %s (populate): %s", proxy.name, what, proxy.describe())
        return proxy

    def remove(self, name: str) -> None:
        proxy = self.get(name)
        proxy.stop()
        self._retire(proxy)
        del self._proxies[name]
        log.info("proxy %s deleted", name)

    def clear(self) -> None:
        for name in list(self._proxies):
            self.remove(name)
