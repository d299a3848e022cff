"""Builders for hand-made histories, request records and final reads used by the check tests.

Histories are in the generic vocabulary (``write`` / ``incr`` / ``read``); as shorthand, the
builders also take ClipStream's words for its ops (the tests' example system): ``upload`` is a
``write`` of key = its id, ``view`` / ``like`` an ``incr`` of counter ``views`` / ``likes``, and
``views=`` / ``likes=`` the ``counts`` a read saw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from drills.model import FaultRecord, FinalRead, Op, Request, StoreSnapshot

#: A realistic wall-clock origin: float rounding near 1.7e9 is part of what is tested.
T0 = 1_700_000_000.0


#: ClipStream shorthand -> (generic f, counter).
SHORT = {"upload": ("write", None), "view": ("incr", "views"), "like": ("incr", "likes")}


def _f(f: str, counter: str | None) -> tuple[str, str | None]:
    g, c = SHORT.get(f, (f, None))
    return g, counter if counter is not None else c


def _seen(extra: dict[str, object]) -> dict[str, object]:
    """``views=`` / ``likes=`` folded into ``counts``."""
    counts = {k: extra.pop(k) for k in ("views", "likes") if k in extra}
    if counts and "counts" not in extra:
        extra["counts"] = counts
    return extra


def write(
    f: str,
    id: str,
    t: float,
    done: float | None,
    outcome: str = "ok",
    *,
    key: str | None = None,
    counter: str | None = None,
    process: str = "p0",
    **extra: object,
) -> list[Op]:
    """An invoke at ``t`` and (unless ``done`` is None) its completion at ``done``."""
    f, counter = _f(f, counter)
    key = key if key is not None else (id if f == "write" else None)
    ops = [Op(process=process, type="invoke", f=f, id=id, time=t, key=key,  # type: ignore[arg-type]
              counter=counter)]
    if done is not None:
        ops.append(Op(process=process, type=outcome, f=f, id=id, time=done,  # type: ignore[arg-type]
                      key=key, counter=counter, **_seen(extra)))  # type: ignore[arg-type]
    return ops


def flatten(parts: Iterable[list[Op]]) -> list[Op]:
    """Concatenate op lists (each part keeps its own order)."""
    return [op for part in parts for op in part]


def snap(
    name: str,
    keys: Iterable[str] = (),
    *,
    views: Mapping[str, int] | None = None,
    likes: Mapping[str, int] | None = None,
    counters: Mapping[str, Mapping[str, int]] | None = None,
    reachable: bool = True,
    epoch: int | None = None,
) -> StoreSnapshot:
    """A snapshot holding ``keys``; ``views`` / ``likes`` (key -> value) are shorthand for
    those counters, merged into ``counters`` (key -> counter -> value)."""
    merged: dict[str, dict[str, int]] = {k: dict(c) for k, c in (counters or {}).items()}
    for name_, values in (("views", views), ("likes", likes)):
        for k, v in (values or {}).items():
            merged.setdefault(k, {})[name_] = v
    return StoreSnapshot(name=name, reachable=reachable, epoch=epoch, keys=frozenset(keys),
                         counters=merged)


def final(*stores: StoreSnapshot, primary: str | None = None) -> FinalRead:
    """A final read whose primary is the first store unless named."""
    return FinalRead(primary=primary if primary is not None else stores[0].name,
                     stores=tuple(stores))


def fault(
    id: str,
    at: float,
    kind: str = "power_down",
    *,
    reverted: float | None = None,
    target: str = "dc-east",
) -> FaultRecord:
    return FaultRecord(id=id, kind=kind, target=target, scheduled_at=at - T0, injected_at=at,
                       reverted_at=reverted)


def attempts(
    f: str,
    id: str,
    tries: Iterable[tuple[float, float | None, str]],
    *,
    key: str | None = None,
    counter: str | None = None,
    process: str = "p0",
    **extra: object,
) -> list[Op]:
    """One op id sent several times: ``(invoke, done, outcome)`` per attempt, numbered from 1
    on both entries (``done`` None: no completion was recorded)."""
    f, counter = _f(f, counter)
    key = key if key is not None else (id if f == "write" else None)
    ops: list[Op] = []
    for n, (t, done, outcome) in enumerate(tries, start=1):
        ops.append(Op(process=process, type="invoke", f=f, id=id, time=t,  # type: ignore[arg-type]
                      key=key, counter=counter, attempt=n))
        if done is not None:
            ops.append(Op(process=process, type=outcome, f=f, id=id,  # type: ignore[arg-type]
                          time=done, key=key, counter=counter, attempt=n,
                          **_seen(dict(extra))))  # type: ignore[arg-type]
    return ops


def stats_read(id: str, key: str, t: float, done: float, *, store: str = "west",
               outcome: str = "ok", **seen: object) -> list[Op]:
    """A read of ``key`` (``seen``: views, likes or counts, degraded, epoch, ...)."""
    return write("read", id, t, done, outcome, key=key, store=store, **seen)


def feed_read(id: str, items: Iterable[tuple[str, int, int]], t: float, done: float, *,
              store: str = "west", **extra: object) -> list[Op]:
    """An ok list read that showed ``items``: ``(key, views, likes)`` each."""
    return [Op(process="p0", type="invoke", f="read", id=id, time=t),
            Op(process="p0", type="ok", f="read", id=id, time=done, store=store,
               items=tuple((k, {"views": v, "likes": lk}) for k, v, lk in items),
               **extra)]  # type: ignore[arg-type]


def traffic(
    op: str,
    start: float,
    end: float,
    per_s: float,
    *,
    ok: Callable[[float], bool] = lambda t: True,
    phase: float = 0.37,
) -> list[Request]:
    """Requests of class ``op`` evenly spaced at ``per_s`` over ``[start, end)``.

    ``phase`` (fraction of the spacing) offsets the first one so that no start sits exactly on
    a bucket boundary unless a test means it to.
    """
    step = 1.0 / per_s
    out: list[Request] = []
    i = 0
    while (t := start + (i + phase) * step) < end:
        good = ok(t)
        out.append(Request(t=t, duration=0.01 if good else 2.0, op=op, ok=good,
                           status=200 if good else 503, error=None if good else "503"))
        i += 1
    return out
