"""The harness's Toxiproxy client: links that can be broken and healed, over toxiproxy-python.

Three lines create, break and heal a link::

    with ToxiproxyClient.connect() as tp:   # TOXIPROXY_URL if set, else our embedded server
        link = tp.create_link("api->store-east", upstream="127.0.0.1:7101")
        link.blackhole(); ...; link.heal()

Requests go through toxiproxy-python's ``APIConsumer``, with its quirks hidden: each client
uses its own subclass of it (the library keeps the server address in class attributes shared by
the whole process), every call has a timeout, every failure is a `ProxyError` carrying the HTTP
status and the server's message (the library maps only 400/404/409, loosely, and lets 403, 405
and 500 through), toxic calls return the toxic's name (``add_toxic`` returns nothing there), and
``populate`` uses the server's ``/populate``, which compares resolved listen addresses (the
library compares raw text, so ``localhost:0`` always looks different and is recreated).

Link names contain ``->``; proxies are named with ``_to_`` instead (``api->store-east`` is
proxy ``api_to_store-east``), so names are safe in URL paths. Toxic-adding methods are
idempotent: adding a toxic whose name exists updates it (or replaces it if its type or stream
differ), and they return the names they added so that a fault can remove exactly its own.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import requests
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from drills.errors import ProxyError
from drills.toxiproxy.embedded import EmbeddedServer, free_port, wait_ready

__all__ = [
    "Link",
    "LinkSpec",
    "ProxyInfo",
    "ServerRefusal",
    "ToxicInfo",
    "ToxiproxyClient",
    "free_port",
    "link_name",
    "proxy_name",
    "wait_ready",
]

ENV_URL = "TOXIPROXY_URL"
Stream = Literal["upstream", "downstream"]
BOTH: tuple[Stream, Stream] = ("upstream", "downstream")
#: Which way a latency fault delays: both streams, or one.
Direction = Literal["both", "upstream", "downstream"]
_SAFE = re.compile(r"[A-Za-z0-9._-]+")
_LIBRARY_ERRORS = {ProxyExists: 409, NotFound: 404, InvalidToxic: 400}


def proxy_name(link: str) -> str:
    """The proxy name of link ``link``: ``->`` becomes ``_to_``; ProxyError if unsafe."""
    name = link.replace("->", "_to_")
    if "_to_" in link or not _SAFE.fullmatch(name):
        raise ProxyError(
            f"link name {link!r}: use letters, digits, '.', '_', '-' and '->' (and not '_to_')"
        )
    return name


def link_name(proxy: str) -> str:
    """The link name of proxy ``proxy`` (``_to_`` back to ``->``)."""
    return proxy.replace("_to_", "->")


@dataclass(frozen=True, slots=True)
class ToxicInfo:
    """A toxic as the server reports it."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ToxicInfo:
        return cls(
            name=str(d["name"]),
            type=str(d["type"]),
            stream=str(d.get("stream", "")),
            toxicity=float(d.get("toxicity", 1.0)),
            attributes=dict(d.get("attributes") or {}),
        )


@dataclass(frozen=True, slots=True)
class ProxyInfo:
    """A proxy as the server reports it (``listen`` is the bound address)."""

    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: tuple[ToxicInfo, ...] = ()

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ProxyInfo:
        try:
            return cls(
                name=str(d["name"]),
                listen=str(d["listen"]),
                upstream=str(d["upstream"]),
                enabled=bool(d["enabled"]),
                toxics=tuple(ToxicInfo.from_json(t) for t in d.get("toxics") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProxyError(f"unexpected proxy from toxiproxy: {d!r}") from exc


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """A link to ensure with `ToxiproxyClient.populate`."""

    name: str
    upstream: str
    listen: str = "127.0.0.1:0"
    enabled: bool = True


class ServerRefusal(ProxyError):
    """The server answered an error status; ``reason`` is its own message (``proxy not found``)."""

    def __init__(self, what: str, reason: str, status: int):
        self.reason = reason
        super().__init__(f"{what}: {reason}", status=status)


def _message(content: object) -> str:
    text = content.decode(errors="replace") if isinstance(content, bytes) else str(content)
    try:
        return str(json.loads(text)["error"])
    except (ValueError, KeyError, TypeError):
        return text.strip() or "no message"


class _Api:
    """HTTP to one Toxiproxy server through a private subclass of toxiproxy-python's consumer."""

    def __init__(self, url: str, timeout: float):
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ProxyError(f"toxiproxy url {url!r}: expected http://host:port")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        port = parts.port or 8474
        self.url = f"http://{host}:{port}"
        self.timeout = timeout
        self._consumer: type[APIConsumer] = type(
            "Consumer", (APIConsumer,), {"host": host, "port": port}
        )

    def call(self, method: str, path: str, body: object = None) -> Any:
        """The decoded JSON answer (None when empty); ProxyError on any failure."""
        kwargs: dict[str, Any] = {"timeout": self.timeout, "proxies": {"http": None}}
        if body is not None:
            kwargs["json"] = body
        try:
            resp = getattr(self._consumer, method)(path, **kwargs)
        except tuple(_LIBRARY_ERRORS) as exc:
            status = _LIBRARY_ERRORS[type(exc)]
            reason = _message(exc.args[0] if exc.args else "")
            raise ServerRefusal(f"{method.upper()} {path}", reason, status) from exc
        except requests.RequestException as exc:
            raise ProxyError(f"toxiproxy at {self.url} unreachable: {exc}") from exc
        if resp.status_code >= 300:
            reason = _message(resp.content)
            raise ServerRefusal(f"{method.upper()} {path}", reason, resp.status_code)
        if not resp.content.strip():
            return None
        try:
            return resp.json()
        except ValueError as exc:
            raise ProxyError(f"{method.upper()} {path}: answer is not JSON") from exc


class Link:
    """A proxied TCP path between two services, named ``a->b``, with verbs to break and heal it.

    ``listen`` is the address services dial instead of the upstream. Every method talks to the
    server and raises `ProxyError` (with ``status``) if it refuses.
    """

    def __init__(self, api: _Api, info: ProxyInfo):
        self._api = api
        self._info = info

    def __repr__(self) -> str:
        return f"Link({self.name!r}, listen={self.listen!r}, upstream={self.upstream!r})"

    @property
    def name(self) -> str:
        """The link's name (``a->b``)."""
        return link_name(self._info.name)

    @property
    def proxy(self) -> str:
        """The proxy's name on the server."""
        return self._info.name

    @property
    def listen(self) -> str:
        """The bound address to dial."""
        return self._info.listen

    @property
    def upstream(self) -> str:
        """The real service address."""
        return self._info.upstream

    @property
    def enabled(self) -> bool:
        """Enabled as of the last answer."""
        return self._info.enabled

    @property
    def _path(self) -> str:
        return f"/proxies/{quote(self._info.name, safe='')}"

    def refresh(self) -> ProxyInfo:
        """The proxy as the server has it now."""
        self._info = ProxyInfo.from_json(self._api.call("get", self._path))
        return self._info

    def _set(self, **fields: Any) -> None:
        self._info = ProxyInfo.from_json(self._api.call("post", self._path, fields))

    def down(self) -> None:
        """Disable: the listener closes (connections refused) and open connections drop."""
        self._set(enabled=False)

    def up(self) -> None:
        """Enable again, on the same address."""
        self._set(enabled=True)

    def toxics(self) -> list[ToxicInfo]:
        return [ToxicInfo.from_json(t) for t in self._api.call("get", f"{self._path}/toxics")]

    def add_toxic(
        self,
        type: str,
        *,
        stream: Stream = "downstream",
        name: str | None = None,
        toxicity: float = 1.0,
        **attributes: int,
    ) -> str:
        """Add (or update in place) one toxic; its name (default ``<type>_<stream>``)."""
        return self._add(type, stream, name or f"{type}_{stream}", toxicity, attributes)

    def _add(
        self, type: str, stream: Stream, name: str, toxicity: float, attributes: Mapping[str, int]
    ) -> str:
        body = {
            "name": name,
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": dict(attributes),
        }
        try:
            self._api.call("post", f"{self._path}/toxics", body)
            return name
        except ProxyError as exc:
            if exc.status != 409:
                raise
        tpath = f"{self._path}/toxics/{quote(name, safe='')}"
        old = ToxicInfo.from_json(self._api.call("get", tpath))
        if old.type == type and old.stream == stream:
            self._api.call("post", tpath, {"toxicity": toxicity, "attributes": dict(attributes)})
        else:
            self._api.call("delete", tpath)
            self._api.call("post", f"{self._path}/toxics", body)
        return name

    def remove_toxic(self, name: str) -> bool:
        """Remove toxic ``name``; False if it was not there (removing twice is fine)."""
        try:
            self._api.call("delete", f"{self._path}/toxics/{quote(name, safe='')}")
            return True
        except ServerRefusal as exc:
            if exc.reason == "toxic not found":
                return False
            raise

    def _both(self, type: str, **attributes: int) -> list[str]:
        return [self._add(type, s, f"{type}_{s}", 1.0, attributes) for s in BOTH]

    def blackhole(self) -> list[str]:
        """``timeout`` 0 both ways: data vanishes, connections stay open until healed."""
        return self._both("timeout", timeout=0)

    def reset_peer(self, timeout_ms: int = 0) -> list[str]:
        """``reset_peer`` both ways: the first data (after ``timeout_ms``) gets a TCP RST."""
        return self._both("reset_peer", timeout=int(timeout_ms))

    def latency(self, ms: float, jitter: float = 0, direction: Direction = "both") -> list[str]:
        """``latency`` ± ``jitter`` ms each way (a round trip gains about twice ``ms``), or only
        ``upstream`` (what the client sends) or ``downstream`` (what it receives)."""
        streams = BOTH if direction == "both" else (direction,)
        return [self._add("latency", s, f"latency_{s}", 1.0, {"latency": round(ms),
                                                                 "jitter": round(jitter)})
                for s in streams]

    def bandwidth(self, kbps: float) -> list[str]:
        """Each way limited to ``kbps`` kilobytes per second (Toxiproxy's ``rate``, 1 KB =
        1000 bytes; 0 stalls all data)."""
        return self._both("bandwidth", rate=round(kbps))

    def heal(self) -> None:
        """Remove every toxic and enable: back to a clean link."""
        for toxic in self.toxics():
            self.remove_toxic(toxic.name)
        self.up()

    def delete(self) -> None:
        """Remove the proxy from the server."""
        self._api.call("delete", self._path)


class ToxiproxyClient:
    """One Toxiproxy server: ours, started as a child process, or one at a given URL.

    Use `connect`; the client is a context manager that stops the embedded server on exit.
    """

    def __init__(self, url: str, *, embedded: EmbeddedServer | None = None, timeout: float = 10.0):
        self._api = _Api(url, timeout)
        self._embedded = embedded

    @classmethod
    def connect(
        cls,
        url: str | None = None,
        *,
        timeout: float = 10.0,
        ready_timeout: float = 5.0,
        start_timeout: float = 15.0,
        log_path: Path | None = None,
    ) -> ToxiproxyClient:
        """A client for ``url``, else ``$TOXIPROXY_URL``, else a freshly started embedded server.

        A given server must answer ``/version`` within ``ready_timeout`` s; the embedded one
        within ``start_timeout`` s (its log, at ``log_path`` or a temporary file, is in the
        error if it does not). Raises `ProxyError`.
        """
        url = url or os.environ.get(ENV_URL) or None
        if url is not None:
            client = cls(url, timeout=timeout)
            wait_ready(client.url, ready_timeout)
            return client
        server = EmbeddedServer(log_path=log_path, start_timeout=start_timeout)
        server.__enter__()
        return cls(server.url, embedded=server, timeout=timeout)

    @property
    def url(self) -> str:
        return self._api.url

    @property
    def embedded(self) -> bool:
        """True if this client started the server (a child process it will stop)."""
        return self._embedded is not None

    @property
    def server(self) -> EmbeddedServer | None:
        return self._embedded

    def __enter__(self) -> ToxiproxyClient:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the embedded server if this client started one; idempotent."""
        server, self._embedded = self._embedded, None
        if server is not None:
            server.stop()

    def version(self) -> str:
        return str(self._api.call("get", "/version")["version"])

    def create_link(
        self, name: str, *, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True
    ) -> Link:
        """Create proxy ``name`` from ``listen`` to ``upstream``; ProxyError 409 if it exists."""
        body = {
            "name": proxy_name(name),
            "listen": listen,
            "upstream": upstream,
            "enabled": enabled,
        }
        return Link(self._api, ProxyInfo.from_json(self._api.call("post", "/proxies", body)))

    def link(self, name: str) -> Link:
        """The existing link ``name``; ProxyError 404 if there is none."""
        path = f"/proxies/{quote(proxy_name(name), safe='')}"
        return Link(self._api, ProxyInfo.from_json(self._api.call("get", path)))

    def links(self) -> list[Link]:
        answer: Mapping[str, Any] = self._api.call("get", "/proxies") or {}
        return [Link(self._api, ProxyInfo.from_json(answer[k])) for k in sorted(answer)]

    def populate(self, specs: Iterable[LinkSpec]) -> list[Link]:
        """Ensure these links exist: an equal one is kept (toxics too), a different one replaced."""
        body = [
            {
                "name": proxy_name(s.name),
                "listen": s.listen,
                "upstream": s.upstream,
                "enabled": s.enabled,
            }
            for s in specs
        ]
        answer = self._api.call("post", "/populate", body) or {}
        return [Link(self._api, ProxyInfo.from_json(p)) for p in answer.get("proxies") or ()]

    def reset(self) -> None:
        """Enable every proxy and remove every toxic (``POST /reset``)."""
        self._api.call("post", "/reset")

    def lease(self, holder: str, *, ttl_ms: int, links: Iterable[str]) -> None:
        """Take or renew a lease on ``links`` (our server's extension, `drills.toxiproxy.lease`):
        if it is not renewed within ``ttl_ms`` the server heals them. ProxyError (status 404
        on a real Toxiproxy) when the server cannot."""
        self._api.call("post", "/drills/lease", {"holder": holder, "ttl_ms": int(ttl_ms),
                                                 "proxies": [proxy_name(n) for n in links]})

    def release_lease(self, holder: str) -> None:
        """Give a lease back without healing (the faults were reverted); a missing one is fine."""
        try:
            self._api.call("delete", f"/drills/lease/{holder}")
        except ProxyError as exc:
            if exc.status != 404:
                raise
