"""The final-read contract of a user's system, and the reader for it.

A store's state, as the contract gives it (JSON)::

    {"role": "primary" | "replica" | null, "epoch": int | null,
     "keys": ["k1", ...], "counters": {"c1": {"hits": 3}, ...}}

Two ways to get it (drill file ``stack.data``): ``http: <path>`` (GET on every store's direct
address) or ``python: "file.py:function"`` / ``"module:function"``, called as
``function(stores)`` with ``stores`` = store -> ``"host:port"``, returning store -> state (a
store it could not read: ``{"error": "..."}``) or a `FinalRead`. Everything a reader gets wrong
(a missing field, a wrong type) marks that store unreachable with the reason: the checks then
say "unknown", never "passed".
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from drills.errors import SpecError
from drills.model import FinalRead, StoreSnapshot

Reader = Callable[[Mapping[str, str]], Any]


def snapshot_from(name: str, state: Any) -> StoreSnapshot:
    """One store's contract state as a `StoreSnapshot` (unreachable with the reason when the
    state says ``error`` or is malformed)."""
    if not isinstance(state, Mapping):
        return StoreSnapshot(name=name, reachable=False,
                             error=f"expected a JSON object, got {type(state).__name__}")
    if state.get("error"):
        return StoreSnapshot(name=name, reachable=False, error=str(state["error"]))
    try:
        keys = state.get("keys", [])
        counters = state.get("counters", {})
        if not isinstance(keys, list) or not isinstance(counters, Mapping):
            raise TypeError("keys must be a list and counters an object")
        role = state.get("role")
        epoch = state.get("epoch")
        return StoreSnapshot(
            name=name, reachable=True,
            role=None if role is None else str(role),
            epoch=None if epoch is None else int(epoch),
            keys=frozenset(str(k) for k in keys),
            counters={str(k): {str(c): int(v) for c, v in dict(cs).items()}
                      for k, cs in counters.items()},
        )
    except (TypeError, ValueError, AttributeError) as exc:
        return StoreSnapshot(name=name, reachable=False, error=f"malformed state: {exc}")


def primary_of(stores: tuple[StoreSnapshot, ...]) -> str | None:
    """The reachable store claiming ``primary`` with the highest epoch (ties: the first)."""
    claims = [s for s in stores if s.reachable and s.role == "primary"]
    return max(claims, key=lambda s: s.epoch or 0).name if claims else None


def final_read_from(states: Mapping[str, Any], order: Mapping[str, str]) -> FinalRead:
    """A `FinalRead` from store -> contract state, in ``order``'s store order."""
    snaps = tuple(snapshot_from(name, states.get(name, {"error": "not returned by the reader"}))
                  for name in order)
    return FinalRead(primary=primary_of(snaps), stores=snaps)


def http_reader(path: str, *, timeout: float = 10.0) -> Reader:
    """A reader doing ``GET http://<store><path>`` on every store."""

    def read(stores: Mapping[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with httpx.Client(timeout=timeout) as client:
            for name, addr in stores.items():
                try:
                    resp = client.get(f"http://{addr}{path}")
                    resp.raise_for_status()
                    out[name] = resp.json()
                except (httpx.HTTPError, ValueError) as exc:
                    out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        return out

    return read


def python_reader(ref: str, *, base_dir: Path) -> Reader:
    """The callable ``file.py:function`` (relative to ``base_dir``) or ``module:function``.
    Raises `SpecError` (field ``stack.data.python``) when it cannot be loaded."""
    where, _, func = ref.rpartition(":")
    if not where or not func:
        raise SpecError(f"expected file.py:function or module:function, got {ref!r}",
                        field="stack.data.python")
    try:
        if where.endswith(".py"):
            path = (base_dir / where).resolve()
            spec = importlib.util.spec_from_file_location(f"drills_reader_{path.stem}", path)
            if spec is None or spec.loader is None or not path.is_file():
                raise FileNotFoundError(path)
            module = importlib.util.module_from_spec(spec)
            sys.path.insert(0, str(path.parent))  # its own helpers next to it
            try:
                spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(path.parent))
        else:
            module = importlib.import_module(where)
        reader = getattr(module, func)
    except Exception as exc:  # any import error is the drill file's problem, said precisely
        raise SpecError(f"cannot load {ref!r}: {type(exc).__name__}: {exc}",
                        field="stack.data.python") from exc
    if not callable(reader):
        raise SpecError(f"{ref!r} is not callable", field="stack.data.python")
    found: Reader = reader
    return found


def read_all(reader: Reader, stores: Mapping[str, str]) -> FinalRead:
    """Run ``reader`` on ``stores``; a reader that raises leaves every store unreachable."""
    try:
        result = reader(stores)
    except Exception as exc:  # the user's code: its failure is evidence, not a crash
        error = f"the final read raised {type(exc).__name__}: {exc}"
        return FinalRead(primary=None, stores=tuple(
            StoreSnapshot(name=n, reachable=False, error=error) for n in stores))
    if isinstance(result, FinalRead):
        return result
    if not isinstance(result, Mapping):
        error = f"the final read returned {type(result).__name__}, expected store -> state"
        return FinalRead(primary=None, stores=tuple(
            StoreSnapshot(name=n, reachable=False, error=error) for n in stores))
    return final_read_from(result, stores)


def same_data(read: FinalRead) -> bool:
    """Every store reachable and holding the same keys and counters."""
    if not read.stores or not all(s.reachable for s in read.stores):
        return False
    first = read.stores[0]
    return all(s.keys == first.keys and s.counters == first.counters for s in read.stores[1:])


def wait_same(read: Callable[[], FinalRead], *, timeout: float, interval: float = 0.5,
              clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> tuple[bool, float]:
    """Poll ``read`` until every store holds the same data, at most ``timeout`` s."""
    start = clock()
    while True:
        if same_data(read()):
            return True, clock() - start
        if clock() - start >= timeout:
            return False, clock() - start
        sleep(interval)
