"""What a run directory keeps so that the run can be judged again from disk (`drill analyze`).

Beside ``journal.json`` (faults, load start, classes) and the records (``requests.jsonl``,
``history.jsonl``), a run keeps:

- ``drill.yaml``: the effective drill (defaults and ``--set`` overrides applied, paths absolute);
- ``preexisting.json``: the keys the primary held before the load started (they are neither
  attempted nor unexpected);
- ``final-read.json``: every store's keys and counters after quiesce, whether the stores
  converged and how long that took, and when the timeline ended.

`analyze` re-runs every check on those files with the drill as it is now, and returns the new
`Judgement`: the same verdict when nothing changed, a different one when a definition did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drills.errors import SpecError
from drills.journal import JOURNAL_FILE, Judgement
from drills.model import FaultRecord, FinalRead, Op, Request, StoreSnapshot, read_jsonl

DRILL_FILE = "drill.yaml"
PREEXISTING_FILE = "preexisting.json"
FINAL_READ_FILE = "final-read.json"


def _write(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def save_drill(run_dir: Path, text: str) -> None:
    Path(run_dir, DRILL_FILE).write_text(text, encoding="utf-8")


def save_preexisting(run_dir: Path, keys: frozenset[str]) -> None:
    _write(Path(run_dir) / PREEXISTING_FILE, sorted(keys))


def _snapshot_dict(s: StoreSnapshot) -> dict[str, Any]:
    return {"name": s.name, "reachable": s.reachable, "role": s.role, "epoch": s.epoch,
            "error": s.error, "keys": sorted(s.keys),
            "counters": {k: dict(cs) for k, cs in sorted(s.counters.items())}}


def save_final_read(run_dir: Path, final: FinalRead | None, *, converged: bool,
                    quiesce_s: float, load_end: float | None) -> None:
    """The final read (None: the target has no data contract) and the quiesce outcome."""
    _write(Path(run_dir) / FINAL_READ_FILE, {
        "converged": converged, "quiesce_s": quiesce_s, "load_end": load_end,
        "final": None if final is None else {
            "primary": final.primary, "stores": [_snapshot_dict(s) for s in final.stores]},
    })


@dataclass(frozen=True, slots=True)
class StoredRun:
    """Everything judging needs, read back from a run directory."""

    drill_text: str
    journal: Mapping[str, Any]
    requests: list[Request]
    history: list[Op]
    faults: list[FaultRecord]
    final: FinalRead | None
    preexisting: frozenset[str]
    converged: bool
    quiesce_s: float
    load_end: float | None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"cannot read it: {exc.strerror or exc}", source=str(path)) from exc
    except ValueError as exc:
        raise SpecError(f"not valid JSON: {exc}", source=str(path)) from exc


def _final_from(data: Mapping[str, Any] | None) -> FinalRead | None:
    if data is None:
        return None
    stores = tuple(StoreSnapshot(
        name=s["name"], reachable=bool(s["reachable"]), role=s.get("role"), epoch=s.get("epoch"),
        error=s.get("error"), keys=frozenset(s.get("keys") or ()),
        counters={k: dict(cs) for k, cs in (s.get("counters") or {}).items()},
    ) for s in data["stores"])
    return FinalRead(primary=data.get("primary"), stores=stores)


def load_run(run_dir: Path) -> StoredRun:
    """Read a run directory back; `SpecError` naming the file that is missing or malformed
    (a run from before these files were kept cannot be re-judged, and says so)."""
    run_dir = Path(run_dir)
    journal = _read_json(run_dir / JOURNAL_FILE)
    for name in (DRILL_FILE, FINAL_READ_FILE, PREEXISTING_FILE):
        if not (run_dir / name).is_file():
            raise SpecError(f"{name} is missing: this run did not get as far as its final "
                            f"read, or was made by a drills that did not keep it",
                            source=str(run_dir))
    stored = _read_json(run_dir / FINAL_READ_FILE)
    try:
        faults = [FaultRecord(**f) for f in journal.get("faults") or ()]
        final = _final_from(stored.get("final"))
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"malformed: {exc}", source=str(run_dir)) from exc
    requests = list(read_jsonl(run_dir / "requests.jsonl", Request)) \
        if (run_dir / "requests.jsonl").is_file() else []
    history = list(read_jsonl(run_dir / "history.jsonl", Op)) \
        if (run_dir / "history.jsonl").is_file() else []
    return StoredRun(
        drill_text=(run_dir / DRILL_FILE).read_text(encoding="utf-8"), journal=journal,
        requests=requests, history=history, faults=faults, final=final,
        preexisting=frozenset(_read_json(run_dir / PREEXISTING_FILE)),
        converged=bool(stored.get("converged", True)),
        quiesce_s=float(stored.get("quiesce_s") or 0.0), load_end=stored.get("load_end"),
    )


def analyze(run_dir: Path) -> tuple[StoredRun, Judgement]:
    """Judge the run in ``run_dir`` again from its files (see the module docstring)."""
    from drills.catalog import parse_drill
    from drills.verdict import judge

    run = load_run(run_dir)
    spec = parse_drill(run.drill_text, source=str(Path(run_dir) / DRILL_FILE))
    judgement = judge(
        spec, requests=run.requests, history=run.history, faults=run.faults, final=run.final,
        t0=float(run.journal.get("load_started_at") or 0.0), preexisting=run.preexisting,
        converged=run.converged, quiesce_s=run.quiesce_s, load_end=run.load_end,
        classes=tuple(run.journal.get("classes") or ()),
    )
    return run, judgement
