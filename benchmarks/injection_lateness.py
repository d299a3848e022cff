"""How late faults land: scheduled offset vs when the engine decided to inject (the ledger's
``inject`` line, fsync'd before the fault) and when it took effect (``injected_at``), on local
processes.

Runs a short drill of the key-value test service (tests/targets/kvapp) with a dozen staggered
link faults and two power-downs, ``--runs`` times, and prints per fault kind the lateness of the
decision and of the effect (ms): median, p95 and max. The engine sleeps until the next action
(at most 100 ms while it reads the load's records), so a decision should land within a few ms of
its schedule; the effect adds the fault's own work (a Toxiproxy call; SIGKILL and seeing the
process dead).

    python benchmarks/injection_lateness.py [--runs 3]

Uses time as recorded by the run (``time.time()`` in the ledger and journal); no timing is
asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drills.catalog import parse_drill  # noqa: E402
from drills.engine import RunOptions, run_drill  # noqa: E402

KV = ROOT / "tests" / "targets" / "kvapp"


def drill_text() -> str:
    raw = yaml.safe_load((KV / "drill.yaml").read_text())
    raw["drill"] = "injection-lateness"
    faults = [{"at": f"{4 + 0.7 * i:.1f}s", "for": "0.3s", "partition": "kv->mirror"}
              for i in range(12)]
    faults += [{"at": "14s", "for": "1s", "power_down": "dc-west"},
               {"at": "16s", "for": "1s", "power_down": "dc-east"}]
    raw["timeline"] = {"baseline": "4s", "faults": faults, "settle": "3s", "quiesce": "3s"}
    raw["analysis"] = {"hold": "2s"}
    raw["objectives"] = {"rto": {}, "recovery": "ignore", "lost_acked_writes": 0,
                         "counters": "ignore", "zero_reads": "ignore", "split_brain": "ignore"}
    return yaml.safe_dump(raw)


def lateness(run_dir: Path) -> list[tuple[str, float, float]]:
    """(kind, decision lateness ms, effect lateness ms) per fault of one run."""
    journal = json.loads((run_dir / "journal.json").read_text())
    t0 = journal["load_started_at"]
    intents = {}
    for line in (run_dir / "ledger.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event") == "inject":  # written just before the fault is injected
            intents[rec["id"]] = rec["time"]
    out = []
    for f in journal["faults"]:
        due = t0 + f["scheduled_at"]
        out.append((f["kind"], (intents[f["id"]] - due) * 1000, (f["injected_at"] - due) * 1000))
    return out


def summary(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"median {statistics.median(values):6.1f}  p95 {p95:6.1f}  max {values[-1]:6.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.runs):
            spec = parse_drill(drill_text(), source=str(KV / "lateness.yaml"), base_dir=KV)
            result = run_drill(spec, RunOptions(out=Path(tmp) / f"run{n}", runs_root=Path(tmp)))
            if result.error is not None:
                sys.exit(f"run {n}: {result.error}")
            rows += lateness(result.run_dir)
    for kind in sorted({k for k, _, _ in rows}):
        decided = [d for k, d, _ in rows if k == kind]
        took = [e for k, _, e in rows if k == kind]
        print(f"{kind:10s} n={len(decided):3d}  decided late (ms): {summary(decided)}")
        print(f"{'':10s}        in effect late (ms): {summary(took)}")


if __name__ == "__main__":
    main()
