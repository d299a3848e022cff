"""The final read of the Redis Sentinel example: what each Redis node holds after the drill.

The harness calls ``final_read(stores)`` (drill file ``stack.data: {python:
readback.py:final_read}``) with every store node's address as the harness reaches it
(``{"redis-east": "172.18.0.2:6379", ...}``) and gets back, per store, the drills final-read
contract::

    {"role": "primary" | "replica", "epoch": None,
     "keys": ["k:<uuid>", ...], "counters": {"c:<n>": {"n": <value>}, ...}}

``keys`` are the keys the locustfile's ``SET`` wrote (``k:*``), ``counters`` every counter key
its ``INCR`` increments (``c:*``) with its one counter, ``n``: the same key and counter names the
locustfile records in its history (``locustfile.py``). Redis has no per-node epoch a client can
read, so ``epoch`` is None. A node that cannot be read gets ``{"error": "..."}`` (the harness
marks it unreachable and says why); nothing here raises for one bad node.

Touches each node with read-only commands (INFO, SCAN, MGET) over redis-py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

KEY_PATTERN = "k:*"
COUNTER_PATTERN = "c:*"
COUNTER = "n"  # the one counter of a counter key, as the locustfile records it
TIMEOUT_S = 5.0
BATCH = 1000


def final_read(stores: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Store name -> contract state (or ``{"error": ...}``) for every store in ``stores``."""
    return {name: read_store(address) for name, address in stores.items()}


def read_store(address: str, *, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """One node's state; ``{"error": ...}`` when it cannot be read or holds a non-integer
    counter."""
    host, _, port = address.rpartition(":")
    client = redis.Redis(host=host, port=int(port), socket_timeout=timeout,
                         socket_connect_timeout=timeout, decode_responses=True,
                         retry=Retry(NoBackoff(), 0))  # the harness polls; one try each
    try:
        role = client.info("replication").get("role")
        keys = sorted(_scan(client, KEY_PATTERN))
        counters: dict[str, dict[str, int]] = {}
        names = sorted(_scan(client, COUNTER_PATTERN))
        for i in range(0, len(names), BATCH):
            chunk = names[i:i + BATCH]
            for key, value in zip(chunk, client.mget(chunk), strict=True):
                if value is not None:  # expired or deleted between SCAN and MGET
                    counters[key] = {COUNTER: int(value)}
    except (redis.RedisError, ValueError) as exc:
        return {"error": f"{address}: {type(exc).__name__}: {exc}"}
    finally:
        client.close()
    return {"role": {"master": "primary", "slave": "replica"}.get(str(role)),
            "epoch": None, "keys": keys, "counters": counters}


def _scan(client: redis.Redis, pattern: str) -> Iterator[str]:
    """Every key matching ``pattern`` (SCAN may repeat a key: deduplicated)."""
    return iter(set(client.scan_iter(match=pattern, count=BATCH)))
