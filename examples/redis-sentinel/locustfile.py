"""Load for the Redis Sentinel example: a Locust user with its own Redis client.

Each user writes keys (``SET k:<uuid> 1``), increments shared counters (``INCR c:<n>``, 20 of
them) and reads them back (``GET c:<n>``), and fires one Locust ``request`` event per operation
named ``SET``, ``INCR`` or ``GET`` (request type ``redis``): the harness turns those into one
RTO per class, with no cooperation needed from this file.

The data history goes through the public recording API, `drills.record` (Jepsen's vocabulary):

- ``ok``: Redis replied (``OK`` to SET, the new value to INCR); with ``REDIS_WAIT_REPLICAS`` set,
  only once ``WAIT`` confirmed that many replicas have it.
- ``fail``: definitely not applied: the primary could not be found or the connection was refused
  before anything was sent, or Redis answered an error (``READONLY``, ``NOREPLICAS``...).
- ``info``: indeterminate: a timeout or a connection reset after the command was sent, or a
  ``WAIT`` that came back short (the primary has the write, too few replicas do).

Finding the primary: every Sentinel that answers is asked (redis-py's `redis.sentinel.Sentinel`)
which node is the master of ``mymaster``, and the answer with the highest configuration epoch
wins; it is kept until an operation goes wrong, then they are asked again. An acknowledged write
is recorded with ``store`` = the primary's node name (its ``syslog-ident``, which the compose file
sets to the service name) and ``epoch`` = that Sentinel configuration epoch: Redis itself reports
no epoch, and the epoch under which the client chose its primary is what tells a write acked by
a deposed primary (a stale epoch) from one acked by the current one.

The first Sentinel is the Locust host (``-H``, ``http://<ip>:26379`` or ``<ip>:26379``: the
drill's ``stack.entry``), the others are learnt from it (``SENTINEL SENTINELS``); or all are
given in ``REDIS_SENTINELS`` (``host:port,host:port``).

Pacing: each user aims at rate/users operations per second, as Locust's ``constant_throughput``
(slow answers shorten the wait). Under the harness, users also honour the drill's write bursts
(``load.burst``): within ``width / 2`` of each fault's injection they pace ``multiplier`` times
faster (`drills.load.pacing`, offsets counted from `drills.record.started_at`), so more writes
are in flight, and at risk, when a fault lands. A user mixes SET, INCR and GET, so its reads
speed up with its writes.

Environment (all optional): ``DRILLS_RATE`` and ``DRILLS_USERS`` (the harness's target rate:
default 5 per user), ``DRILLS_TIMEOUT_S`` (socket timeout, default 1.0 s), the harness's burst
variables (``DRILLS_BURSTS``...), ``REDIS_WAIT_REPLICAS`` (0: off) and ``REDIS_WAIT_TIMEOUT_MS``
(default 500). Without ``DRILLS_RECORD_DIR`` (plain ``locust -f locustfile.py``) or without
`drills` installed, nothing is recorded, there are no bursts, and the load runs the same.
"""

from __future__ import annotations

import logging
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import redis
from locust import User, events, task
from locust.env import Environment
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

try:
    from drills import record
    from drills.load.pacing import wait_s
    from drills.load.records import LoadSettings
except ImportError:  # plain Locust without drills: load only
    record = None  # type: ignore[assignment]

SERVICE = "mymaster"
COUNTERS = 20
COUNTER = "n"  # each counter key's one counter (readback.py reports it under the same name)
SENTINEL_PORT = 26379
SENTINEL_CONNECT_S = 0.25  # a Sentinel on the same network answers well within this
log = logging.getLogger("redis-sentinel-load")


class NoHistory:
    """Stands in for `drills.record`'s history when nothing is recorded."""

    def invoke(self, f: str, **_kw: Any) -> None:
        return None

    def ok(self, op: Any, **_kw: Any) -> None: ...
    def fail(self, op: Any, **_kw: Any) -> None: ...
    def info(self, op: Any, **_kw: Any) -> None: ...
    def read(self, key: str, **_kw: Any) -> None: ...


class NotSent(Exception):
    """The command never left the client: no primary known, or its connection refused."""


class Refused(Exception):
    """Redis answered an error (READONLY, NOREPLICAS, LOADING...): the command was not applied."""


class Indeterminate(Exception):
    """The command was sent and no answer came (timeout, reset), or WAIT came back short."""


def parse_addr(text: str, default_port: int = SENTINEL_PORT) -> tuple[str, int]:
    """``http://h:p``, ``redis://h:p``, ``h:p`` or ``h`` -> (host, port)."""
    parts = urlsplit(text if "://" in text else f"//{text}")
    if not parts.hostname:
        raise ValueError(f"no host in {text!r}")
    return parts.hostname, parts.port or default_port


@dataclass(frozen=True, slots=True)
class Primary:
    """The primary as one Sentinel reported it, with that Sentinel's configuration epoch."""

    host: str
    port: int
    epoch: int


def _no_start() -> float | None:
    """No start marker: the load runs without the harness."""
    return None


@dataclass
class Cluster:
    """What every user of this Locust process shares: the Sentinels and the settings."""

    sentinels: list[tuple[str, int]]
    timeout_s: float
    wait_replicas: int
    wait_timeout_ms: int
    history: Any
    rate: float = 5.0  # operations per second and user
    bursts: Any = None  # drills.load.pacing.Bursts when the harness runs the load
    t0: Callable[[], float | None] = _no_start  # the load's start: burst offsets count from it
    rng: random.Random = field(default_factory=random.Random)
    names: dict[str, str] = field(default_factory=dict)  # "host:port" -> node name

    def discover(self) -> Primary:
        """The primary according to the Sentinels that answer (the answer with the highest
        configuration epoch: a Sentinel that was down may not know of the last failover yet);
        `NotSent` if none names one (for instance between the primary's death and the end of
        the failover, when they report it down)."""
        sentinel = Sentinel(self.sentinels, sentinel_kwargs={
            "socket_timeout": self.timeout_s, "socket_connect_timeout": SENTINEL_CONNECT_S,
            "retry": Retry(NoBackoff(), 0)})
        best: Primary | None = None
        errors: list[str] = []
        for client in list(sentinel.sentinels):
            try:
                state = cast(dict[str, Any], client.sentinel_master(SERVICE))
                ok = sentinel.check_master_state(state, SERVICE)
            except redis.RedisError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            self._learn_sentinels(client)
            found = Primary(str(state["ip"]), int(state["port"]), int(state["config-epoch"]))
            if ok and (best is None or found.epoch > best.epoch):
                best = found
            elif not ok:
                errors.append(f"{found.host}:{found.port} is {state.get('flags')}")
        if best is None:
            raise NotSent("no primary: " + ("; ".join(errors) or "no sentinel"))
        return best

    def _learn_sentinels(self, answered: redis.Redis) -> None:
        """Add the Sentinels that ``answered`` knows of."""
        try:
            peers = cast(list[dict[str, Any]], answered.sentinel_sentinels(SERVICE))
        except redis.RedisError:
            return
        for peer in peers:
            addr = (str(peer["ip"]), int(peer["port"]))
            if addr not in self.sentinels:
                self.sentinels.append(addr)

    def name_of(self, conn: redis.Connection, address: str) -> str:
        """The node's name: its ``syslog-ident`` (docker-compose.yml sets it to the service
        name, which is the store's name in the drill), else its address."""
        if address not in self.names:
            conn.send_command("CONFIG", "GET", "syslog-ident")
            reply = conn.read_response()
            if isinstance(reply, list):  # RESP2 as a flat list; redis-py may give a mapping
                reply = dict(zip(reply[::2], reply[1::2], strict=True))
            value = reply.get(b"syslog-ident", b"") if isinstance(reply, dict) else b""
            ident = value.decode() if isinstance(value, bytes) else str(value)
            self.names[address] = ident if ident and ident != "redis" else address
        return self.names[address]


def _cluster(environment: Environment) -> Cluster:
    given = os.environ.get("REDIS_SENTINELS", "")
    if given:
        sentinels = [parse_addr(a.strip()) for a in given.split(",") if a.strip()]
    elif environment.host:
        sentinels = [parse_addr(environment.host)]
    else:
        raise ValueError("no Sentinel: give the Locust host (-H <ip>:26379) or REDIS_SENTINELS")
    history: Any = NoHistory()
    bursts: Any = None
    t0: Callable[[], float | None] = _no_start
    if record is not None and os.environ.get("DRILLS_RECORD_DIR"):
        history = record.history()
        bursts = LoadSettings.from_env(os.environ).burst_plan
        t0 = record.started_at
    elif record is None:
        log.warning("drills is not installed: no history is recorded")
    rate = float(os.environ.get("DRILLS_RATE", "0") or 0)
    users = int(os.environ.get("DRILLS_USERS", "0") or 0)
    return Cluster(sentinels=sentinels,
                   timeout_s=float(os.environ.get("DRILLS_TIMEOUT_S", "1.0")),
                   wait_replicas=int(os.environ.get("REDIS_WAIT_REPLICAS", "0")),
                   wait_timeout_ms=int(os.environ.get("REDIS_WAIT_TIMEOUT_MS", "500")),
                   history=history, rate=rate / users if rate > 0 and users > 0 else 5.0,
                   bursts=bursts, t0=t0)


class RedisClient:
    """One connection to the current primary; every command is sent once (no retry), so an
    error says exactly how far the command got."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.conn: redis.Connection | None = None
        self.store = ""  # the primary's node name (or address), as the history records it
        self.epoch: int | None = None  # the Sentinel epoch under which it was chosen

    def _connect(self) -> redis.Connection:
        if self.conn is None:
            primary = self.cluster.discover()
            address = f"{primary.host}:{primary.port}"
            conn = redis.Connection(host=primary.host, port=primary.port,
                                    socket_timeout=self.cluster.timeout_s,
                                    socket_connect_timeout=self.cluster.timeout_s,
                                    retry=Retry(NoBackoff(), 0))
            try:
                conn.connect()
                self.store = self.cluster.name_of(conn, address)
            except redis.RedisError as exc:
                conn.disconnect()
                raise NotSent(f"{address}: {exc}") from exc
            self.conn, self.epoch = conn, primary.epoch
        return self.conn

    def drop(self) -> None:
        """Forget the connection: the next command asks the Sentinels again."""
        if self.conn is not None:
            self.conn.disconnect()
        self.conn = None

    def call(self, *args: Any, write: bool = False) -> Any:
        """Send one command and return its reply. Raises `NotSent`, `Refused` (not applied
        either) or `Indeterminate`; on any of them the connection is dropped."""
        conn = self._connect()
        try:
            conn.send_command(*args)
            reply = conn.read_response()
            if write and self.cluster.wait_replicas > 0:
                conn.send_command("WAIT", self.cluster.wait_replicas, self.cluster.wait_timeout_ms)
                try:
                    acked = int(conn.read_response())
                except redis.ResponseError as exc:  # the write itself was applied
                    raise Indeterminate(f"{self.store}: WAIT: {exc}") from exc
                if acked < self.cluster.wait_replicas:
                    raise Indeterminate(f"WAIT: {acked} of {self.cluster.wait_replicas} replicas")
            return reply
        except (redis.ResponseError, redis.BusyLoadingError) as exc:  # Redis said no
            self.drop()
            raise Refused(f"{self.store}: {exc}") from exc
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self.drop()
            raise Indeterminate(f"{self.store}: {type(exc).__name__}: {exc}") from exc
        except Indeterminate:
            self.drop()
            raise


@events.init.add_listener
def _on_init(environment: Environment, **_kw: Any) -> None:
    environment.redis_cluster = _cluster(environment)  # type: ignore[attr-defined]


class RedisUser(User):
    """A client of the Redis primary: SET new keys, INCR and GET shared counters."""

    def on_start(self) -> None:
        self.cluster: Cluster = self.environment.redis_cluster
        self.client = RedisClient(self.cluster)
        now = time.time()
        self.t0 = self.cluster.t0() or now
        self.last_start = now  # the first task runs right after on_start

    def wait_time(self) -> float:
        """Constant throughput (`Cluster.rate` per second), faster inside a write burst."""
        now = time.time()
        if self.cluster.bursts is not None:
            wait = wait_s(last_start=self.last_start, now=now, rate=self.cluster.rate,
                          t0=self.t0, bursts=self.cluster.bursts)
        else:
            wait = max(0.0, 1.0 / self.cluster.rate - (now - self.last_start))
        self.last_start = now + wait
        return wait

    def on_stop(self) -> None:
        self.client.drop()

    @task(2)
    def set_key(self) -> None:
        key = f"k:{uuid.uuid4().hex}"
        self.write("SET", "write", key, {}, ("SET", key, 1))

    @task(2)
    def incr(self) -> None:
        key = f"c:{self.cluster.rng.randrange(COUNTERS)}"
        self.write("INCR", "incr", key, {"counter": COUNTER}, ("INCR", key))

    @task(1)
    def get(self) -> None:
        key = f"c:{self.cluster.rng.randrange(COUNTERS)}"
        start, sent = time.perf_counter(), time.time()
        error: Exception | None = None
        try:
            value = self.client.call("GET", key)
            self.cluster.history.read(key, counts={COUNTER: int(value or 0)}, started=sent,
                                      store=self.client.store, epoch=self.client.epoch,
                                      degraded=False)
        except (NotSent, Refused, Indeterminate) as exc:
            error = exc
        self.fire("GET", start, error)

    def write(self, name: str, f: str, key: str, extra: dict[str, str],
              command: tuple[Any, ...]) -> None:
        """Send a write and record it: invoke, then ok / fail / info by how it ended."""
        h = self.cluster.history
        op = h.invoke(f, key=key, **extra)
        start = time.perf_counter()
        error: Exception | None = None
        try:
            self.client.call(*command, write=True)
            h.ok(op, store=self.client.store, epoch=self.client.epoch)
        except (NotSent, Refused) as exc:
            error = exc
            h.fail(op, error=f"{type(exc).__name__}: {exc}")
        except Indeterminate as exc:
            error = exc
            h.info(op, error=str(exc))
        self.fire(name, start, error)

    def fire(self, name: str, start: float, error: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="redis", name=name, response_time=(time.perf_counter() - start) * 1000,
            response_length=0, exception=error, context={})
