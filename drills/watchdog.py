"""The dead-man switch: faults expire on their own when the harness dies.

A drill's faults are reverted by the harness that injected them; a harness killed with SIGKILL
reverts nothing, and until someone runs ``drill rollback`` a zone stays dark and a link stays
cut - in CI, possibly until the machine is recycled. So every run starts a small watchdog
process beside it (`start`), in a session of its own so that it outlives the harness:

    python -m drills.watchdog RUN_DIR --owner PID --until T --grace S

It polls the harness (``PID``). While the harness lives, it does nothing. When the harness is
gone: if the run's ledger lists no fault in force, it exits (a normal end, or a crash after
every revert); otherwise it waits until the last fault was scheduled to end (wall clock: the
``until`` of ``RUN_DIR/deadman.json``, written by the engine once the load started and the
schedule's clock is known; ``T`` before that) plus ``S`` seconds of grace (the drill may have
meant the fault to last), then reverts every fault the ledger lists as in force, exactly as
``drill rollback`` does: the powered-down zone starts again, the cut links heal. It leaves the
stack running (``drill rollback`` or the next run stops it, and sweeps the watchdog with it: it
carries the stack's label) and writes what it did to ``RUN_DIR/watchdog.log``. It gives up
after a day, so that no process of a run lives forever.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from drills.ledger import Ledger
from drills.stack.process import alive

LOG_FILE = "watchdog.log"
DEADMAN_FILE = "deadman.json"
POLL_S = 0.2
#: How long the watchdog lives at most (then it exits whatever happened).
LIFETIME_S = 86_400.0
#: Seconds past the last scheduled fault end before a dead harness's faults are reverted.
DEFAULT_GRACE_S = 5.0


def start(run_dir: Path, *, owner: int, until: float, grace: float = DEFAULT_GRACE_S,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start the watchdog of ``run_dir`` for harness ``owner`` (its own session: it outlives the
    harness). ``until`` is the wall-clock time the last fault was scheduled to end."""
    log = open(Path(run_dir) / LOG_FILE, "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "drills.watchdog", str(run_dir), "--owner", str(owner),
             "--until", repr(until), "--grace", repr(grace)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, **(env or {})})
    finally:
        log.close()


def watch(run_dir: Path, *, owner: int, until: float, grace: float,
          revert: Callable[[Path], list[str]],
          clock: Callable[[], float] = time.time,
          sleep: Callable[[float], None] = time.sleep,
          is_alive: Callable[[int], bool] = alive) -> list[str]:
    """Wait for ``owner`` to die, then (if faults are in force) until ``until + grace``, then
    ``revert(run_dir)``. Returns what was done (lines for the log). Pure apart from the
    injected ``revert``, clock, sleep and liveness check."""
    started = clock()
    while is_alive(owner):
        if clock() - started > LIFETIME_S:
            return ["gave up: the harness outlived the watchdog's lifetime"]
        sleep(POLL_S)
    if not Ledger(run_dir).pending():
        return [f"harness {owner} ended with no fault in force: nothing to do"]
    deadline = scheduled_end(run_dir, default=until) + grace
    lines = [f"harness {owner} died with faults in force; reverting them at "
             f"{time.strftime('%H:%M:%S', time.localtime(deadline))} (fault end + {grace:g} s)"]
    while clock() < deadline:
        sleep(min(POLL_S, max(0.0, deadline - clock())))
    return lines + revert(run_dir)


def write_deadline(run_dir: Path, until: float) -> None:
    """Record (atomically) when the run's last fault is scheduled to end (wall clock)."""
    path = Path(run_dir) / DEADMAN_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"until": until}))
    tmp.replace(path)


def scheduled_end(run_dir: Path, *, default: float) -> float:
    """The recorded end of the last fault, or ``default`` when none was recorded."""
    try:
        return float(json.loads((Path(run_dir) / DEADMAN_FILE).read_text())["until"])
    except (OSError, ValueError, KeyError, TypeError):
        return default


def rollback_run(run_dir: Path) -> list[str]:
    """Revert the faults ``run_dir``'s ledger lists as in force, on its re-attached stack."""
    from drills.errors import DrillsError
    from drills.faults import rollback
    from drills.stack.open import attach

    try:
        stack = attach(Path(run_dir) / "stack")
        done, failures = rollback(stack, Ledger(run_dir))
    except DrillsError as exc:
        return [f"could not roll back: {exc}"]
    return ([f"reverted {fid}" for fid in done]
            + [f"could not revert {f.id} ({f.kind} {f.target}): {f.reason}" for f in failures])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m drills.watchdog", description=__doc__)
    p.add_argument("run_dir", type=Path, help="the run directory (its ledger and stack/)")
    p.add_argument("--owner", type=int, required=True, help="pid of the harness to watch")
    p.add_argument("--until", type=float, required=True,
                   help="wall-clock time (Unix s) the last fault was scheduled to end")
    p.add_argument("--grace", type=float, default=DEFAULT_GRACE_S,
                   help="seconds past that end before reverting")
    args = p.parse_args(argv)
    lines = watch(args.run_dir, owner=args.owner, until=args.until, grace=args.grace,
                  revert=rollback_run)
    with contextlib.suppress(OSError):
        for line in lines:
            print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
