"""The coordinator (zone witness): health-checks the stores, assigns roles, fails over.

Each store is watched by its own loop of long polls: ``POST /assign?wait_ms=<check_interval_ms>``
sends the store its assignment, and the store answers its status as soon as something the
coordinator decides on changes, or after ``check_interval_ms`` (plus ``check_timeout_ms`` of
grace, after which the check fails). The answer doubles as the health check. The loops are
independent, so a frozen store delays nobody else's news; a timer re-decides every
``check_interval_ms`` so time-based rules fire while a store hangs. `decide` (a pure function)
turns the observations into the next `CoordState`:

- promote the replica when the primary has been unreachable for ``detection_ms`` and the replica
  is eligible (async: it has reconciled with the primary of this epoch; sync: it is *in sync*);
  the epoch is bumped, which fences the old primary;
- drop the replica from sync at once when the primary asks (a write waited its replication
  timeout for the replica): the primary acknowledges alone only after hearing of the drop, and
  the long poll makes that a round trip, not a check interval;
- mark the replica in sync when the primary reports it keeps up and holds everything
  acknowledged (a new sync generation);
- drop it from sync when it has been unreachable, or silent towards the primary, for the
  detection time (the replica is not eligible then);
- adopt a newer epoch if a store reports one (a coordinator whose data dir was lost).

Two planted bugs (``--bugs``, off by default) bend these rules through `decide`'s keywords:
``promote-lagging-replica`` (``promote_lagging``: any reachable replica of this epoch is
eligible) and ``failback-with-stale-data`` (``failback_to``: fail back to the home store as
soon as it answers, whatever it holds).

The state is persisted (fsync'd, atomically) *before* anyone is told about it, so a restarted
coordinator keeps the epoch and the primary, and a drop the primary acts on cannot be forgotten.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import httpx

from clipstream.bugs import Bug
from clipstream.config import CoordinatorConfig

LOG = logging.getLogger("clipstream.coordinator")
MIN_CHECK_GAP_S = 0.02  # a store answering every long poll at once cannot make us spin


@dataclass(frozen=True, slots=True)
class CoordState:
    """What the coordinator has decided (persisted in ``<data-dir>/coordinator.json``)."""

    epoch: int
    primary: str
    in_sync: bool = False
    sync_gen: int = 0
    failovers: int = 0
    last_failover_at: float | None = None
    primary_boot: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """The part of a store's status the coordinator decides on."""

    role: str
    epoch: int
    reconciled: bool
    replication: str
    waiting_for_peer: bool
    sync_gen: int | None
    sync_ready: bool
    peer_silent_ms: int
    last_index: int
    last_epoch: int
    boot_id: str | None = None
    shrink_gen: int | None = None

    @classmethod
    def parse(cls, d: Mapping[str, object]) -> Report:
        gen, shrink = d.get("sync_gen"), d.get("shrink_gen")
        return cls(
            role=str(d["role"]), epoch=int(d["epoch"]),  # type: ignore[call-overload]
            reconciled=bool(d.get("reconciled")), replication=str(d.get("replication")),
            waiting_for_peer=bool(d.get("waiting_for_peer")),
            sync_gen=None if gen is None else int(gen),  # type: ignore[call-overload]
            sync_ready=bool(d.get("sync_ready")),
            peer_silent_ms=int(d.get("peer_silent_ms") or 0),  # type: ignore[call-overload]
            last_index=int(d.get("last_index") or 0),  # type: ignore[call-overload]
            last_epoch=int(d.get("last_epoch") or 0),  # type: ignore[call-overload]
            boot_id=None if d.get("boot_id") is None else str(d.get("boot_id")),
            shrink_gen=None if shrink is None else int(shrink),  # type: ignore[call-overload]
        )


@dataclass(frozen=True, slots=True)
class Observation:
    """The latest health check of one store: when it last answered, and what it said."""

    reachable: bool
    last_ok: float | None
    report: Report | None


def _eligible(r: Observation, state: CoordState, *, lagging: bool = False) -> bool:
    """May the replica be promoted? Reachable, replica of this epoch, and in sync (sync) or
    reconciled (async); with ``lagging`` (bug promote-lagging-replica) the first three suffice.
    """
    rep = r.report
    if not r.reachable or rep is None or rep.role != "replica" or rep.epoch != state.epoch:
        return False
    if lagging:
        return True
    return state.in_sync if rep.replication == "sync" else rep.reconciled


def _failback(state: CoordState, obs: Mapping[str, Observation],
              home: str | None) -> CoordState | None:
    """Bug failback-with-stale-data: make ``home`` primary again as soon as it answers.

    No catch-up, no sync check: what the other store acknowledged meanwhile is discarded when
    it rejoins as a replica of the stale home store. None when ``home`` is None (bug off),
    already primary, or not reachable.
    """
    if home is None or home == state.primary or home not in obs:
        return None
    o = obs[home]
    if not o.reachable or o.report is None:
        return None
    return CoordState(epoch=state.epoch + 1, primary=home, in_sync=False,
                      sync_gen=state.sync_gen, failovers=state.failovers + 1,
                      last_failover_at=time.time(), primary_boot=o.report.boot_id)


def _adopt(state: CoordState, obs: Mapping[str, Observation]) -> CoordState | None:
    """A store knows a newer epoch than we do: take over above it, keeping the freshest data."""
    reports = {n: o.report for n, o in obs.items() if o.report is not None}
    if not reports or max(r.epoch for r in reports.values()) <= state.epoch:
        return None
    top = max(r.epoch for r in reports.values())
    primaries = [n for n, r in reports.items() if r.role == "primary" and r.epoch == top]
    best = primaries[0] if primaries else max(
        reports, key=lambda n: (reports[n].last_epoch, reports[n].last_index))
    return replace(state, epoch=top + 1, primary=best, in_sync=False)


def decide(state: CoordState, obs: Mapping[str, Observation], *, now: float, started: float,
           detection_s: float, promote_lagging: bool = False,
           failback_to: str | None = None) -> tuple[CoordState, str | None]:
    """The next state from the current one and the latest observations (pure).

    Returns the (possibly unchanged) state and a human reason when it changed. The planted
    bugs are keywords, off by default: ``promote_lagging`` (promote-lagging-replica) and
    ``failback_to`` = the home store (failback-with-stale-data).
    """
    adopted = _adopt(state, obs)
    if adopted is not None:
        return adopted, f"adopted epoch {adopted.epoch} above a store's"
    back = _failback(state, obs, failback_to)
    if back is not None:
        return back, (f"home store {back.primary} reachable again: failed back at once "
                      f"(bug {Bug.FAILBACK_WITH_STALE_DATA})")
    other = next(n for n in obs if n != state.primary)
    p, r = obs[state.primary], obs[other]
    p_down = now - (p.last_ok if p.last_ok is not None else started)
    if p_down >= detection_s and _eligible(r, state, lagging=promote_lagging):
        new = CoordState(epoch=state.epoch + 1, primary=other, in_sync=False,
                         sync_gen=state.sync_gen, failovers=state.failovers + 1,
                         last_failover_at=time.time(),
                         primary_boot=r.report.boot_id if r.report else None)
        return new, f"primary {state.primary} unreachable for {p_down:.2f}s: promoted {other}"
    rep = p.report
    if p.reachable and rep is not None and rep.boot_id != state.primary_boot:
        if state.primary_boot is None:
            return replace(state, primary_boot=rep.boot_id), f"{state.primary} first seen"
        return (replace(state, epoch=state.epoch + 1, in_sync=False, primary_boot=rep.boot_id),
                f"primary {state.primary} restarted: new epoch fences its lost tail")
    if not p.reachable or rep is None or rep.role != "primary" or rep.epoch != state.epoch:
        return state, None
    shrink = rep.shrink_gen
    if shrink is not None and (shrink > state.sync_gen or (state.in_sync
                                                           and shrink == state.sync_gen)):
        # checked before "in sync": a generation the primary gave up on is never confirmed
        gen = max(state.sync_gen, rep.sync_gen or 0, shrink)
        return (replace(state, in_sync=False, sync_gen=gen),
                f"{other} dropped from sync: {state.primary} timed out waiting for it "
                f"(generation {shrink})")
    if (not state.in_sync and rep.sync_ready and rep.sync_gen == state.sync_gen + 1):
        return replace(state, in_sync=True, sync_gen=rep.sync_gen), f"{other} is in sync"
    pending = rep.sync_gen is not None and rep.sync_gen > state.sync_gen
    if (state.in_sync or (pending and rep.waiting_for_peer)):
        r_down = now - (r.last_ok if r.last_ok is not None else started)
        if r_down >= detection_s or rep.peer_silent_ms >= detection_s * 1000:
            gen = max(state.sync_gen, rep.sync_gen or 0)
            return (replace(state, in_sync=False, sync_gen=gen),
                    f"{other} dropped from sync (unreachable {r_down:.2f}s, "
                    f"silent {rep.peer_silent_ms} ms)")
    return state, None


class Coordinator:
    """The coordinator's loop and state; one per process, used from one event loop."""

    def __init__(self, cfg: CoordinatorConfig, client: httpx.AsyncClient):
        if cfg.primary not in cfg.stores:
            raise ValueError(f"--primary {cfg.primary} is not one of the stores")
        self.cfg = cfg
        self.client = client
        self.path = Path(cfg.data_dir) / "coordinator.json"
        self.state = self._load() or CoordState(epoch=1, primary=cfg.primary)
        self.started = time.monotonic()
        self.obs: dict[str, Observation] = {n: Observation(False, None, None) for n in cfg.stores}
        self.checks = 0
        self._deciding = asyncio.Lock()
        self._pushes: set[asyncio.Task[None]] = set()

    def _load(self) -> CoordState | None:
        try:
            d = json.loads(self.path.read_text())
            state = CoordState(**d)
        except (OSError, ValueError, TypeError):
            return None
        return state if state.primary in self.cfg.stores else None

    def _persist(self, state: CoordState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            json.dump(asdict(state), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def assignment(self, name: str) -> dict[str, object]:
        s = self.state
        return {"role": "primary" if name == s.primary else "replica", "epoch": s.epoch,
                "primary": s.primary, "in_sync": s.in_sync, "sync_gen": s.sync_gen,
                "boot_id": s.primary_boot if name == s.primary else None}

    async def _check(self, name: str, *, wait_ms: int = 0) -> bool:
        """Send ``name`` its assignment and record its status; True if it answered ``/assign``.

        With ``wait_ms`` the store holds the answer until its report changes (long poll).
        """
        url = self.cfg.stores[name]
        grace = self.cfg.check_timeout_ms / 1000
        prev = self.obs[name]
        self.checks += 1
        try:
            resp = await self.client.post(
                f"{url}/assign", params={"wait_ms": wait_ms}, json=self.assignment(name),
                timeout=httpx.Timeout(grace + wait_ms / 1000, connect=grace))
            held = resp.status_code != 409
            if not held:  # newer epoch, or restarted since: read its state
                resp = await self.client.get(f"{url}/state", timeout=grace)
            resp.raise_for_status()
            report = Report.parse(resp.json())
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            LOG.debug("check of %s failed: %r", name, exc)
            self.obs[name] = Observation(False, prev.last_ok, prev.report)
            return False
        self.obs[name] = Observation(True, time.monotonic(), report)
        return held

    async def step(self) -> None:
        """Decide on the latest observations; on a change persist, then tell every store."""
        async with self._deciding:
            new, reason = decide(
                self.state, self.obs, now=time.monotonic(), started=self.started,
                detection_s=self.cfg.detection_ms / 1000,
                promote_lagging=Bug.PROMOTE_LAGGING_REPLICA in self.cfg.bugs,
                failback_to=(self.cfg.primary if Bug.FAILBACK_WITH_STALE_DATA in self.cfg.bugs
                             else None))
            if new == self.state:
                return
            await asyncio.to_thread(self._persist, new)
            LOG.warning("epoch %d primary %s in_sync %s: %s", new.epoch, new.primary,
                        new.in_sync, reason)
            self.state = new
        for name in self.cfg.stores:  # each on its own: a hung store delays no one else
            task = asyncio.create_task(self._push(name))
            self._pushes.add(task)
            task.add_done_callback(self._pushes.discard)

    async def _push(self, name: str) -> None:
        await self._check(name)
        await self.step()

    async def _watch(self, name: str) -> None:
        """Long-poll ``name`` forever; pace retries of a store that fails or refuses."""
        interval = self.cfg.check_interval_ms / 1000
        while True:
            t0 = time.monotonic()
            held = await self._check(name, wait_ms=self.cfg.check_interval_ms)
            await self.step()
            pause = (MIN_CHECK_GAP_S if held else interval) - (time.monotonic() - t0)
            if pause > 0:
                await asyncio.sleep(pause)

    async def _timer(self) -> None:
        """Re-decide every check interval: detection must fire while checks hang."""
        while True:
            await asyncio.sleep(self.cfg.check_interval_ms / 1000)
            await self.step()

    async def run(self) -> None:
        """Watch every store and run the timer until cancelled."""
        loops = [asyncio.create_task(self._watch(n)) for n in self.cfg.stores]
        loops.append(asyncio.create_task(self._timer()))
        try:
            await asyncio.gather(*loops)
        finally:
            for task in [*loops, *self._pushes]:
                task.cancel()
            await asyncio.gather(*loops, *self._pushes, return_exceptions=True)

    def snapshot(self) -> dict[str, object]:
        """The coordinator's view for ``GET /state``."""
        now = time.monotonic()
        stores = {
            n: {"reachable": o.reachable,
                "last_ok_age_ms": None if o.last_ok is None else int((now - o.last_ok) * 1000),
                "report": None if o.report is None else asdict(o.report)}
            for n, o in self.obs.items()
        }
        return {**asdict(self.state), "stores": stores, "checks": self.checks,
                "detection_ms": self.cfg.detection_ms, "bugs": sorted(self.cfg.bugs)}
