"""Choosing and opening a stack provider, and finding stacks left behind by a dead harness."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from drills.errors import SpecError, StackError
from drills.ledger import Ledger
from drills.spec import DrillSpec
from drills.stack.base import Stack, Topology
from drills.stack.local import STATE_FILE, LocalStack
from drills.stack.process import alive, labelled
from drills.targets import for_spec
from drills.targets.base import Target

PROVIDERS = ("local", "docker")


@contextlib.contextmanager
def open_stack(spec: DrillSpec, *, provider: str, work_dir: Path, keep: bool,
               target: Target | None = None) -> Iterator[Stack]:
    """Start the drill's target with ``provider`` and tear it down on exit (unless ``keep``)."""
    target = target or for_spec(spec, provider)
    config = dict(spec.stack.config)
    if provider == "local":
        with LocalStack(work_dir=work_dir, plan=target.local_plan(config),
                        topology=target.topology, ready=target.ready, keep=keep) as stack:
            yield stack
    elif provider == "docker":
        from drills.stack.docker import DockerStack  # the Docker SDK only when asked for

        with DockerStack(work_dir=work_dir, plan=target.compose_plan(config),
                         topology=target.topology, ready=target.ready, keep=keep) as docker:
            yield docker
    else:
        raise SpecError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}",
                        field="stack.provider")


def topology_for(spec: DrillSpec, provider: str) -> Topology:
    """The topology a drill's stack will have, known before starting it (so that a bad target
    is refused before any process or container starts): the target's."""
    return for_spec(spec, provider).topology


def attach(work_dir: Path) -> Stack:
    """Find the stack a run started, from the state it wrote in ``work_dir``."""
    try:
        provider = json.loads((Path(work_dir) / STATE_FILE).read_text())["provider"]
    except (OSError, ValueError, KeyError) as exc:
        raise StackError(f"{work_dir}: no stack state found ({exc})") from exc
    if provider == "docker":
        from drills.stack.docker import DockerStack

        return DockerStack.attach(work_dir)
    return LocalStack.attach(work_dir)


def owner_alive(work_dir: Path) -> bool:
    """True while the harness that started the stack in ``work_dir`` still runs."""
    try:
        pid = int(json.loads((Path(work_dir) / STATE_FILE).read_text()).get("owner_pid") or 0)
    except (OSError, ValueError):
        return False
    return alive(pid)


def _left_running(work_dir: Path) -> bool:
    """A stack that ``stack.json`` says is local and whose labelled processes still run, or
    one of any provider that the state says is up and was not kept on purpose."""
    try:
        state = json.loads((work_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return False
    if state.get("keep"):
        return False
    if state.get("provider", "local") == "local":
        return bool(labelled(str(Path(work_dir).resolve())))
    return bool(state.get("up"))


def stale_stacks(runs_root: Path, *, exclude: Path) -> Iterator[tuple[Path, Stack]]:
    """Run directories under ``runs_root`` whose harness is gone and that left something
    behind - faults in force (their ledger) or a stack still running that was not kept on
    purpose (``--keep``) - each with its stack re-attached (stacks that cannot be found are
    skipped). Whether a fault was in force or not, a dead harness's stack is swept."""
    if not Path(runs_root).is_dir():
        return
    for state in sorted(Path(runs_root).glob("*/stack/" + STATE_FILE)):
        run_dir = state.parent.parent
        if run_dir.resolve() == Path(exclude).resolve() or owner_alive(run_dir / "stack"):
            continue
        if not Ledger(run_dir).pending() and not _left_running(run_dir / "stack"):
            continue
        with contextlib.suppress(StackError):
            yield run_dir, attach(run_dir / "stack")
