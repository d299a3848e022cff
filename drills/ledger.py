"""The fault ledger: an fsync'd, append-only JSON-lines file listing every fault *before* it is
injected and again when it is reverted.

A harness killed with SIGKILL leaves the ledger behind; `pending` tells which faults are still in
force, and ``drill rollback`` (or the next ``drill run``) reverts them. Appending is the only
operation; a torn last line (killed mid-write) is ignored.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LEDGER_FILE = "ledger.jsonl"


@dataclass(frozen=True, slots=True)
class Entry:
    """One fault as the ledger knows it: what was asked, and what inject() reported for undo."""

    id: str
    kind: str
    target: str
    params: Mapping[str, Any]
    undo: Mapping[str, Any] = field(default_factory=dict)


class Ledger:
    """The ledger of one run directory. Every write is flushed and fsync'd before returning."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LEDGER_FILE

    def _append(self, record: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({**record, "time": time.time()}, separators=(",", ":")) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def intend(self, entry: Entry) -> None:
        """Record that ``entry`` is about to be injected (call *before* injecting)."""
        self._append({"event": "inject", "id": entry.id, "kind": entry.kind,
                      "target": entry.target, "params": dict(entry.params)})

    def injected(self, fault_id: str, undo: Mapping[str, Any]) -> None:
        """Record what the injection did, for a precise undo (e.g. the toxic names it added)."""
        self._append({"event": "injected", "id": fault_id, "undo": dict(undo)})

    def reverted(self, fault_id: str) -> None:
        self._append({"event": "reverted", "id": fault_id})

    def pending(self) -> list[Entry]:
        """Faults recorded as injected (or about to be) and not reverted, in injection order."""
        if not self.path.exists():
            return []
        open_: dict[str, Entry] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # torn tail
            fid = rec.get("id")
            if rec.get("event") == "inject":
                open_[fid] = Entry(fid, rec["kind"], rec["target"], rec.get("params", {}))
            elif rec.get("event") == "injected" and fid in open_:
                e = open_[fid]
                open_[fid] = Entry(e.id, e.kind, e.target, e.params, rec.get("undo", {}))
            elif rec.get("event") == "reverted":
                open_.pop(fid, None)
        return list(open_.values())
