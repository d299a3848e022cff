"""Detection power and its cost: run ``drill selftest`` and report the matrix with its timing.

    python benchmarks/selftest_matrix.py [--runs N] [--provider local|docker] [--full]
                                         [--out DIR] [--drills A,B] [--bugs A,B]
    python benchmarks/selftest_matrix.py --from DIR/selftest.json   # summarise a past run

Runs the self-test (the correct ClipStream and every planted bug against the drills that
declare they catch it, N rounds), then prints, from ``selftest.json``:

- the detection matrix (drill x column: ``k/N passed`` for the correct ClipStream, ``k/N caught
  (objectives)`` for a bug);
- per drill, the seconds of one run (min / median / max over every cell of that drill) and the
  writes it put at risk (min / median / max);
- the wall time of the whole self-test (time.perf_counter around the command).

Exit code: the self-test's own (0 = no false alarm and every bug caught in every round).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def spread(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{min(values):.0f} / {statistics.median(values):.0f} / {max(values):.0f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--provider", choices=("local", "docker"), default="local")
    p.add_argument("--full", action="store_true")
    p.add_argument("--drills", default="")
    p.add_argument("--bugs", default="")
    p.add_argument("--out", type=Path,
                   default=Path("runs") / f"bench-selftest-{time.strftime('%Y%m%d-%H%M%S')}")
    p.add_argument("--from", dest="source", type=Path,
                   help="summarise this selftest.json instead of running the self-test")
    a = p.parse_args()
    if a.source is not None:
        data = json.loads(a.source.read_text())
        report(data, wall=(data.get("finished_at") or 0) - data["started_at"],
               provider=data.get("provider") or "local")
        return int(data["exit_code"])
    cmd = [sys.executable, "-m", "drills.cli", "selftest", "--runs", str(a.runs),
           "--provider", a.provider, "--out", str(a.out)]
    cmd += ["--full"] if a.full else []
    cmd += ["--drills", a.drills] if a.drills else []
    cmd += ["--bugs", a.bugs] if a.bugs else []
    t = time.perf_counter()
    proc = subprocess.run(cmd, env={**os.environ, "COLUMNS": "200"})
    wall = time.perf_counter() - t
    report(json.loads((a.out / "selftest.json").read_text()), wall=wall, provider=a.provider)
    print(f"exit {proc.returncode}")
    return proc.returncode


def report(data: dict[str, Any], *, wall: float, provider: str) -> None:
    """Print the matrix, per-drill timing and exposure, and the wall time."""
    cols = ["correct", *data["bugs"]]
    print(f"\ndetection matrix, {data['runs']} run(s) per cell, provider {provider}:")
    print("| drill | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for drill, row in data["matrix"].items():
        print(f"| {drill} | " + " | ".join(row.get(c, "—") for c in cols) + " |")
    print("\nper drill: seconds per run (min / median / max), writes at risk (min / median / max)")
    for drill in data["drills"]:
        cells = [c for c in data["cells"] if c["drill"] == drill]
        secs = [c["seconds"] for c in cells]
        risk = [c["writes_at_risk"] for c in cells if c["writes_at_risk"] is not None]
        print(f"  {drill}: {spread(secs)} s over {len(cells)} runs; at risk {spread(risk)}")
    print(f"\nwhole self-test: {wall:.0f} s wall")


if __name__ == "__main__":
    sys.exit(main())
