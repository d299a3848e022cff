"""End to end on the docker provider: ``drill run DRILL --provider docker``.

Each drill test starts ClipStream as a Compose project (five containers: api, coordinator, two
stores, Toxiproxy), drives real Locust load through it, injects real faults (SIGKILL of a zone's
containers; a Toxiproxy blackhole) and reads the verdict from the run directory; afterwards the
project must be gone (or, with ``--keep``, still running until ``drill stack down``). About a
minute each (``@pytest.mark.docker`` and slow; skipped with the reason where no engine answers).

Without Docker: a non-local engine is refused before anything starts, and
``--allow-remote-docker`` reaches the provider (it then tries that engine: a loopback port
where nothing listens, so no traffic leaves the machine).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from drills.stack.docker_compose import ALLOW_REMOTE_ENV, leftovers, project_name

DRILL = [sys.executable, "-m", "drills.cli"]
#: "Remote" by the provider's rule (not loopback, not a socket), yet connecting to it reaches
#: this machine (Linux routes 0.0.0.0 to the local host) where nothing listens on port 9.
NOWHERE = "tcp://0.0.0.0:9"


def drill(*args: str, cwd: Path, env: dict[str, str] | None = None,
          timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``drill ARGS`` in ``cwd`` (its ``runs/`` is the tmp dir's, not the repository's)."""
    base = {k: v for k, v in os.environ.items() if k != ALLOW_REMOTE_ENV}
    return subprocess.run([*DRILL, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env={**base, "COLUMNS": "400", **(env or {})})


def assert_logs_kept(stack_dir: Path) -> None:
    """Taking the stack down kept every container's log, with the engine's timestamps (a
    store always logs its role)."""
    for service in ("api", "coordinator", "store-east", "store-west", "toxiproxy"):
        assert (stack_dir / "logs" / f"{service}.log").is_file(), service
    first = (stack_dir / "logs" / "store-east.log").read_text().splitlines()[0]
    assert re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z .*store-east", first), first


def journal(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "journal.json").read_text())


def test_a_remote_engine_is_refused_unless_allowed(tmp_path: Path) -> None:
    env = {"DOCKER_HOST": NOWHERE}
    refused = drill("run", "dc-east-power-loss", "--provider", "docker", "--out",
                    str(tmp_path / "a"), cwd=tmp_path, env=env)  # fmt: skip
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "refusing a remote Docker Engine" in refused.stdout
    assert journal(tmp_path / "a")["verdict"] == "error"
    assert not (tmp_path / "a" / "stack" / "stack.json").exists()  # nothing was started
    allowed = drill("run", "dc-east-power-loss", "--provider", "docker", "--out",
                    str(tmp_path / "b"), "--allow-remote-docker", cwd=tmp_path, env=env)
    assert allowed.returncode == 3, allowed.stdout + allowed.stderr
    assert "refusing" not in allowed.stdout
    assert f"no Docker Engine reachable at {NOWHERE}" in allowed.stdout
    stack_up = drill("stack", "up", "--provider", "docker", "--dir", str(tmp_path / "c"),
                     cwd=tmp_path, env=env)  # fmt: skip
    assert stack_up.returncode == 3 and "refusing a remote Docker Engine" in stack_up.stdout
    stack_up = drill("stack", "up", "--provider", "docker", "--dir", str(tmp_path / "c"),
                     "--allow-remote-docker", cwd=tmp_path, env=env)  # fmt: skip
    assert stack_up.returncode == 3 and "no Docker Engine reachable" in stack_up.stdout


# ---------------------------------------------------------------------------------------------
# With Docker




def docker_e2e(test: Any) -> Any:
    """Needs the engine (skipped with the reason where there is none); about a minute."""
    for mark in (pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)):
        test = mark(test)
    return test


def _assert_passed(out: Path, proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The drill ran on containers and passed every objective: RTO per class, no lost write,
    true counters, no split brain, recovery by itself."""
    j = journal(out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert j["verdict"] == "pass" and j["provider"] == "docker"
    failed = {o["name"]: o["measured"] for o in j["objectives"] if not o["passed"]}
    assert not failed, failed
    assert j["metrics"]["lost_acked_writes"] == 0
    assert j["metrics"]["counters_out_of_bounds"] == 0
    assert j["metrics"]["split_brain"] is False
    print(f"{j['drill']} on docker: {j['verdict']}, rto_s {j['metrics']['rto_s']}")
    return j


@docker_e2e
@pytest.mark.usefixtures("images")
def test_dc_east_power_loss_passes_on_docker_and_keep_leaves_the_stack_up(tmp_path: Path,
                                                                          client) -> None:
    """The correct ClipStream passes the power cut on containers too (no false alarm there).
    storage-partition's link faults are the same Toxiproxy API on both providers: its passing
    run is shown on local processes (tests/test_engine_e2e.py); on containers a partition is
    shown by the Redis example's drill (tests/examples/test_redis_sentinel.py)."""
    out = tmp_path / "run"
    proc = drill("run", "dc-east-power-loss", "--provider", "docker", "--out", str(out),
                 "--keep", cwd=tmp_path)
    try:
        j = _assert_passed(out, proc)
        (power,) = j["faults"]
        assert power["kind"] == "power_down" and power["detail"]["nodes"] == ["store-east"]
        assert power["injected_at"] <= power["reverted_at"]
        assert j["metrics"]["primary_after"] == "store-west"  # it really failed over
        state = json.loads((out / "stack" / "stack.json").read_text())
        assert state["provider"] == "docker" and state["up"] is True
        project = project_name(out / "stack")
        running = client.containers.list(filters={"label": f"com.docker.compose.project="
                                                            f"{project}"})  # fmt: skip
        assert len(running) == 5, [c.name for c in running]  # --keep: still up
    finally:
        down = drill("stack", "down", "--dir", str(out / "stack"), cwd=tmp_path)
    assert down.returncode == 0, down.stdout + down.stderr
    state = json.loads((out / "stack" / "stack.json").read_text())
    assert state["up"] is False
    assert leftovers(client, project_name(out / "stack")) == []  # taken down by `stack down`
    assert_logs_kept(out / "stack")


# One detection drill on containers: its power cut and link latency are the docker provider's
# own fault mechanics. deposed-primary's catch (partitions only, through the same Toxiproxy
# API as every link fault) is shown on local processes by tests/test_selftest.py.
@docker_e2e
@pytest.mark.usefixtures("images")
@pytest.mark.parametrize(("drill_name", "bug"), [
    ("lagging-replica-primary-loss", "ack-before-replication"),
])
def test_the_drills_catch_planted_bugs_on_docker(tmp_path: Path, client, drill_name: str,
                                                 bug: str) -> None:
    """The detection-power drills catch the same bugs on containers as on local processes:
    a data-safety objective fails (not only an RTO), with the data put at risk reported."""
    out = tmp_path / "run"
    proc = drill("run", drill_name, "--provider", "docker", "--out", str(out),
                 "--set", f"stack.config.bugs=[{bug}]", cwd=tmp_path)
    j = journal(out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert j["provider"] == "docker" and j["spec"]["stack"]["config"]["bugs"] == [bug]
    missed = {o["name"] for o in j["objectives"] if o["passed"] is False}
    assert missed & {"lost_acked_writes", "counters", "zero_reads", "split_brain"}, missed
    assert j["metrics"]["writes_at_risk"] >= 60
    print(f"{drill_name} with {bug} on docker: missed {sorted(missed)}, "
          f"lost {j['metrics']['lost_acked_writes']} uploads + "
          f"{j['metrics']['lost_increments']} increments of {j['metrics']['writes_at_risk']} "
          f"at risk, split brain sources {j['metrics']['split_brain_sources']}")
    assert leftovers(client, project_name(out / "stack")) == []
