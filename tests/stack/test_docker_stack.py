"""The docker provider (drills.stack.docker, docker_nodes, docker_compose, docker_images).

Without Docker: which engines count as local, project names, the opt-in label check, container
states, Docker's timestamps, the effective stop time, Compose command lines for both flavours.

With Docker (``@pytest.mark.docker``, also slow; skipped with the reason where no engine
answers): the images are built with `build_images` (cheap when warm), then ONE ClipStream stack
is brought up for the whole module with ``drill stack up --provider docker`` and taken down at
the end with ``drill stack down`` (which must leave no container, network or volume behind).
On it: a zone power-down really SIGKILLs (exit 137, only signal 9, not a line written) and the
store's acknowledged data is on its volume after it; containers without ``drills.target=true``
are never touched; freeze and partition act; ``drill rollback`` restores a zone a dead harness
left down; re-entering a running stack reuses it and leaves it running.
Starts: docker-compose, five containers, and throwaway containers from the ClipStream image.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from drills.errors import StackError
from drills.faults import KINDS, Injector
from drills.ledger import Entry, Ledger
from drills.stack.base import Stack
from drills.stack.docker import DockerStack
from drills.stack.docker_compose import (
    ALLOW_REMOTE_ENV,
    DEFAULT_DOCKER_HOST,
    PROJECT_LABEL,
    SERVICE_LABEL,
    Compose,
    allow_remote_from_env,
    check_docker_host,
    is_port_clash,
    leftovers,
    project_name,
    remote_problem,
    sweep_project,
)
from drills.stack.docker_nodes import (
    Nodes,
    effective_stop,
    node_state,
    parse_docker_time,
    target_problem,
)
from drills.stack.images import BuildReport
from drills.targets.clipstream import TOPOLOGY, ClipStream

DRILL = [sys.executable, "-m", "drills.cli"]


# ---------------------------------------------------------------------------------------------
# Without Docker


@pytest.mark.parametrize("host", [None, "", "unix:///var/run/docker.sock", "unix:///tmp/d.sock",
                                  "npipe:////./pipe/docker_engine", "tcp://127.0.0.1:2375",
                                  "tcp://localhost:2376", "tcp://[::1]:2375", "127.0.0.1:2375",
                                  "https://127.0.0.1:2376"])  # fmt: skip
def test_local_engines_are_accepted(host: str | None) -> None:
    assert remote_problem(host) is None
    assert check_docker_host(host, allow_remote=False) == (host or DEFAULT_DOCKER_HOST)


@pytest.mark.parametrize("host", ["tcp://10.0.0.5:2375", "tcp://docker.example.com:2376",
                                  "ssh://drill@192.0.2.10", "tcp://0.0.0.0:2375",
                                  "https://203.0.113.7:2376", "fd://"])  # fmt: skip
def test_remote_engines_are_refused_unless_allowed(host: str) -> None:
    assert remote_problem(host)
    with pytest.raises(StackError, match=r"refusing a remote Docker Engine.*--allow-remote-docker"):
        check_docker_host(host, allow_remote=False)
    assert check_docker_host(host, allow_remote=True) == host


def test_allow_remote_comes_from_the_environment_the_cli_sets() -> None:
    assert allow_remote_from_env({ALLOW_REMOTE_ENV: "1"})
    assert allow_remote_from_env({ALLOW_REMOTE_ENV: "true"})
    assert not allow_remote_from_env({ALLOW_REMOTE_ENV: "0"})
    assert not allow_remote_from_env({})


def test_project_name_is_stable_per_work_dir_and_distinct_between_them(tmp_path: Path) -> None:
    a, b = tmp_path / "run-a" / "stack", tmp_path / "run-b" / "stack"
    assert project_name(a) == project_name(tmp_path / "run-a" / ".." / "run-a" / "stack")
    assert project_name(a) != project_name(b)
    assert project_name(a).startswith("drills-") and project_name(a).islower()


def _labels(**extra: str) -> dict[str, str]:
    return {PROJECT_LABEL: "drills-p", SERVICE_LABEL: "store-east", "drills.target": "true",
            **extra}


def test_only_an_opted_in_container_of_the_project_and_service_may_be_touched() -> None:
    assert target_problem(_labels(), project="drills-p", node="store-east") is None
    no_label = _labels()
    del no_label["drills.target"]
    refusals = {
        "no label": no_label,
        "opted out": _labels(**{"drills.target": "false"}),
        "TRUE is not true": _labels(**{"drills.target": "TRUE"}),
        "other project": _labels(**{PROJECT_LABEL: "someone-else"}),
        "other service": _labels(**{SERVICE_LABEL: "store-west"}),
    }
    for why, labels in refusals.items():
        assert target_problem(labels, project="drills-p", node="store-east"), why


def test_container_states_and_docker_times() -> None:
    assert [node_state(s) for s in ("running", "restarting", "paused", "exited", "created",
                                    "dead", "removing")] == [
        "running", "running", "paused", "stopped", "stopped", "stopped", "stopped"]  # fmt: skip
    assert parse_docker_time("2024-05-01T10:00:00.123456789Z") == pytest.approx(
        1714557600.123456789, abs=1e-6)
    assert parse_docker_time("2024-05-01T12:00:00.5+02:00") == pytest.approx(1714557600.5)
    assert parse_docker_time("0001-01-01T00:00:00Z") is None  # Docker's "never"
    assert parse_docker_time("yesterday") is None
    assert parse_docker_time(None) is None


def test_effective_stop_is_the_engine_time_only_when_it_is_plausible() -> None:
    assert effective_stop(100.0, 100.5, 100.2) == 100.2
    assert effective_stop(100.0, 100.5, None) == 100.5
    assert effective_stop(100.0, 100.5, 90.0) == 100.5  # another clock (a remote engine)
    assert effective_stop(100.0, 100.5, 101.0) == 100.5  # after it was seen stopped: no


def test_compose_command_lines_for_both_flavours(tmp_path: Path) -> None:
    file = tmp_path / "docker-compose.yml"
    for command in (("docker", "compose"), ("docker-compose",)):
        compose = Compose(command=command, file=file, project="drills-x",
                          docker_host=DEFAULT_DOCKER_HOST)
        assert compose.argv("up", "-d") == [*command, "-p", "drills-x", "--project-directory",
                                             str(tmp_path), "-f", str(file), "up", "-d"]


def test_compose_failure_is_a_stack_error_with_the_output(tmp_path: Path) -> None:
    script = tmp_path / "fake-compose"
    script.write_text("#!/bin/sh\necho \"Bind for 127.0.0.1:7000 failed: port is already "
                      "allocated\" >&2\nexit 1\n")
    script.chmod(0o755)
    compose = Compose(command=(str(script),), file=tmp_path / "c.yml", project="drills-x",
                      docker_host=DEFAULT_DOCKER_HOST, log=tmp_path / "compose.log")
    with pytest.raises(StackError, match="failed") as err:
        compose.up()
    assert is_port_clash(str(err.value))
    assert "port is already allocated" in (tmp_path / "compose.log").read_text()
    assert not is_port_clash("no such image: drills/clipstream:latest")


def test_attach_without_docker_state_is_a_stack_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="no readable docker stack state"):
        DockerStack.attach(tmp_path)
    (tmp_path / "stack.json").write_text(json.dumps({"provider": "local"}))
    with pytest.raises(StackError, match="no readable docker stack state"):
        DockerStack.attach(tmp_path)


# ---------------------------------------------------------------------------------------------
# With Docker: one stack for the module


needs_docker = pytest.mark.docker  # skipped with the reason without an engine (conftest)


def docker_slow(test: Any) -> Any:
    """Needs the engine and the module's stack (skipped with the reason where there is none)."""
    for mark in (pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)):
        test = mark(test)
    return test


def drill(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DRILL, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd)


@pytest.fixture(scope="module")
def stack(images: BuildReport, client: docker.DockerClient,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerStack]:
    """``drill stack up --provider docker`` in ``<tmp>/run/stack``; ``drill stack down`` after,
    which must leave nothing of the project behind."""
    root = tmp_path_factory.mktemp("dockerstack")
    work = root / "run" / "stack"
    up = drill("stack", "up", "--provider", "docker", "--dir", str(work), cwd=root)
    project = project_name(work)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        attached = DockerStack.attach(work)
        yield attached
        attached.close()
    finally:
        down = drill("stack", "down", "--dir", str(work), cwd=root)
        left = leftovers(client, project)
        with contextlib.suppress(StackError):  # a failed test must not leave it running
            if left:
                DockerStack.attach(work).down()
    assert down.returncode == 0, down.stdout + down.stderr
    assert left == [], f"drill stack down left {left}"


def _container(client: docker.DockerClient, stack: DockerStack, node: str) -> Any:
    labels = [f"{PROJECT_LABEL}={stack.project}", f"{SERVICE_LABEL}={node}"]
    (found,) = client.containers.list(all=True, filters={"label": labels})
    return found


def _bystander(client: docker.DockerClient, images: BuildReport, labels: dict[str, str],
               script: str = "import time\nwhile True: time.sleep(0.1)") -> Any:
    """A throwaway container from the ClipStream image running ``script`` (no network)."""
    return client.containers.run(images.app_image, entrypoint=["python", "-u", "-c", script],
                                 labels=labels, network_mode="none", detach=True)


def sigkill_problems(client: docker.DockerClient, container: Any, *, since: float) -> list[str]:
    """Why ``container`` was NOT stopped by a bare SIGKILL at ``since`` (no graceful stop, no
    goodbye); [] when it was: exit code 137, only signal 9 delivered, no line written since."""
    container.reload()
    state = container.attrs["State"]
    problems = []
    if state["Running"]:
        problems.append("it is still running")
    if state["ExitCode"] != 137:
        problems.append(f"exit code {state['ExitCode']}, not 137 (128 + SIGKILL)")
    events = client.events(since=since - 0.5, until=time.time() + 0.5, decode=True,
                           filters={"container": container.id, "event": "kill"})
    signals = [e["Actor"]["Attributes"].get("signal") for e in events]
    if signals[:1] != ["9"]:
        problems.append(f"signals delivered: {signals} (a graceful stop sends 15 first)")
    written = container.logs(since=since).decode(errors="replace").strip()
    if written:
        problems.append(f"it wrote while stopping: {written!r}")
    return problems


def _wait_log(container: Any, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in container.logs().decode(errors="replace"):
        assert time.monotonic() < deadline, f"{container.name} never logged {text!r}"
        time.sleep(0.2)


GRACEFUL = """import signal, sys, time
def bye(*_):
    print("graceful shutdown: buffers flushed", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


@docker_slow
def test_sigkill_evidence_tells_a_power_cut_from_a_graceful_stop(client, images) -> None:
    stopped = _bystander(client, images, {"drills.test": "sigkill-evidence"}, GRACEFUL)
    killed = _bystander(client, images, {"drills.test": "sigkill-evidence"}, GRACEFUL)
    try:
        for c in (stopped, killed):
            _wait_log(c, "ready")
        t = time.time()
        stopped.stop(timeout=10)
        problems = sigkill_problems(client, stopped, since=t)
        assert any("exit code 0" in p for p in problems), problems
        assert any("'15'" in p for p in problems), problems
        assert any("graceful shutdown" in p for p in problems), problems
        t = time.time()
        killed.kill(signal="SIGKILL")
        killed.wait(timeout=30)
        assert sigkill_problems(client, killed, since=t) == []
    finally:
        for c in (stopped, killed):
            c.remove(force=True)


@docker_slow
def test_stack_up_records_its_state_and_labels(stack: DockerStack, client) -> None:
    state = json.loads((stack.work_dir / "stack.json").read_text())
    assert state["provider"] == "docker" and state["project"] == stack.project
    assert state["images"]["toxiproxy"] and state["images"]["toxiproxy_reason"]
    assert sorted(state["links"]) == sorted(TOPOLOGY.links)
    assert isinstance(stack, Stack)
    for node in TOPOLOGY.nodes:
        container = _container(client, stack, node)
        assert container.labels["drills.target"] == "true"
        assert container.labels["drills.zone"] == TOPOLOGY.zone_of(node)
        assert state["direct"][node].startswith("127.0.0.1:")
        for bindings in container.attrs["HostConfig"]["PortBindings"].values():
            assert all(b["HostIp"] == "127.0.0.1" for b in bindings), bindings
        assert stack.status(node) == "running"
    health = httpx.get(f"http://{stack.address('api')}/healthz", timeout=5)
    assert health.status_code == 200 and health.json()["primary"]
    status = drill("stack", "status", "--dir", str(stack.work_dir), cwd=stack.work_dir.parent)
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("running") == len(TOPOLOGY.nodes) and "primary" in status.stdout


FRESH_CONNECTIONS = """import http.client, sys
failed = []
for link, port in (arg.split("=") for arg in sys.argv[1:]):
    for _ in range(10):
        try:
            conn = http.client.HTTPConnection("toxiproxy", int(port), timeout=5)
            conn.request("GET", "/healthz")  # the client speaks first, at once
            status = conn.getresponse().status
            conn.close()
        except Exception as exc:
            status = type(exc).__name__
        if status != 200:
            failed.append(f"{link}: {status}")
print(len(failed), failed[:5])
"""


@docker_slow
def test_every_link_carries_fresh_connections(stack: DockerStack, client) -> None:
    """From inside the stack's network, 10 new connections through each link's proxy, each
    sending its request at once, all answered (a proxy that drops early data fails this)."""
    stack.wait_healthy(120)
    args = [f"{n}={stack.link(n).listen.rsplit(':', 1)[1]}" for n in TOPOLOGY.links]
    done = _container(client, stack, "api").exec_run(["python", "-c", FRESH_CONNECTIONS, *args])
    assert done.exit_code == 0, done.output
    assert done.output.decode().startswith("0 "), done.output.decode()


def _upload(api: str, marker: bytes) -> str:
    video = f"v-docker-{uuid.uuid4().hex[:12]}"
    resp = httpx.post(f"{api}/videos", params={"title": "power cut", "client_id": video},
                      content=marker, timeout=30,
                      headers={"content-type": "application/octet-stream"})  # fmt: skip
    assert resp.status_code == 201, resp.text
    return video


def _on_volume(client: docker.DockerClient, images: BuildReport, volume: str,
               marker: bytes) -> bool:
    """Whether any file on ``volume`` holds ``marker`` (read by a throwaway container)."""
    script = ("import pathlib, sys\nm = sys.argv[1].encode()\n"
              "print(any(m in p.read_bytes() for p in pathlib.Path('/data').rglob('*') "
              "if p.is_file()))")
    out = client.containers.run(images.app_image, [marker.decode()],
                                entrypoint=["python", "-c", script], network_mode="none",
                                volumes={volume: {"bind": "/data", "mode": "ro"}}, remove=True)
    return bytes(out).decode().strip() == "True"


@docker_slow
def test_power_down_sigkills_the_zone_and_its_store_keeps_acked_data(stack, client, images):
    stack.wait_healthy(90)
    marker = f"power-cut-survivor-{uuid.uuid4().hex}".encode()
    # acknowledged: fsync always, sync replication
    video = _upload(f"http://{stack.address('api')}", marker)
    east = _container(client, stack, "store-east")
    volume = next(m["Name"] for m in east.attrs["Mounts"] if m["Destination"] == "/data")
    outsider = _bystander(client, images, {"drills.zone": "dc-east", "drills.target": "true",
                                           "drills.test": "outsider"})  # fmt: skip
    try:
        t = time.time()
        undo = KINDS["power_down"].inject(stack, "dc-east", {})
        assert undo["nodes"] == ["store-east"]
        assert t <= undo["stopped_at"]["store-east"] <= time.time()
        assert stack.status("store-east") == "stopped"
        assert sigkill_problems(client, east, since=t) == []
        assert set(stack.kill(["store-east"])) == {"store-east"}  # killing the dead: a no-op
        outsider.reload()
        assert outsider.status == "running"  # same zone label, not of the project: untouched
        assert _on_volume(client, images, volume, marker)  # on disk with the container dead
        assert not _on_volume(client, images, volume, b"never-written-" + uuid.uuid4().bytes.hex()
                              .encode())  # fmt: skip
        KINDS["power_down"].revert(stack, "dc-east", {}, undo)
        stack.wait_healthy(120)
        served = httpx.get(f"http://{stack.address('store-east')}/videos/{video}", timeout=10)
        assert served.status_code == 200, served.text
    finally:
        outsider.remove(force=True)
        with contextlib.suppress(StackError):
            stack.start(["store-east"])


@docker_slow
def test_a_container_without_the_opt_in_label_is_never_touched(stack, client, images) -> None:
    stack.wait_healthy(120)
    west = _container(client, stack, "store-west")
    impostor = _bystander(client, images, {PROJECT_LABEL: stack.project,
                                           SERVICE_LABEL: "store-west", "drills.zone": "dc-west",
                                           "drills.test": "impostor"})  # fmt: skip
    try:
        attempts = {
            "kill": lambda: stack.kill(["store-west"]),
            "power_down": lambda: KINDS["power_down"].inject(stack, "dc-west", {}),
            "start": lambda: stack.start(["store-west"]),
            "pause": lambda: stack.pause("store-west"),
            "freeze": lambda: KINDS["freeze"].inject(stack, "store-west", {}),
            "resume": lambda: stack.resume("store-west"),
            "status": lambda: stack.status("store-west"),
        }
        for verb, attempt in attempts.items():
            with pytest.raises(StackError, match="refusing to touch container") as err:
                attempt()
            assert "drills.target=true" in str(err.value), verb
        for container in (impostor, west):
            container.reload()
            assert container.status == "running", container.name
        toxiproxy = Nodes(client, stack.project)
        with pytest.raises(StackError, match=r"not labelled drills\.target=true"):
            toxiproxy.kill(["toxiproxy"])  # the toxiproxy service is labelled drills.target=false
        with pytest.raises(StackError, match="unknown node"):
            stack.kill(["toxiproxy"])
    finally:
        impostor.remove(force=True)
    assert stack.status("store-west") == "running"


@docker_slow
def test_freeze_and_partition_act_through_the_stack(stack, client) -> None:
    stack.wait_healthy(120)
    try:
        KINDS["freeze"].inject(stack, "coordinator", {})
        KINDS["freeze"].inject(stack, "coordinator", {})  # idempotent
        assert stack.status("coordinator") == "paused"
        assert _container(client, stack, "coordinator").status == "paused"
    finally:
        KINDS["freeze"].revert(stack, "coordinator", {}, {})
    assert stack.status("coordinator") == "running"
    link = stack.link("api->store-east")
    undo = KINDS["partition"].inject(stack, "api->store-east", {"mode": "down"})
    try:
        assert link.refresh().enabled is False
    finally:
        KINDS["partition"].revert(stack, "api->store-east", {"mode": "down"}, undo)
    assert link.refresh().enabled is True
    with pytest.raises(StackError, match="unknown link"):
        stack.link("api->nowhere")


@docker_slow
def test_rollback_restores_a_zone_a_dead_harness_left_down(stack: DockerStack) -> None:
    stack.wait_healthy(120)
    run_dir = stack.work_dir.parent
    entry = Entry(id="f-left", kind="power_down", target="dc-west", params={})
    Injector(stack, Ledger(run_dir)).inject(entry, scheduled_at=0.0)  # and the harness "dies"
    assert stack.status("store-west") == "stopped"
    proc = drill("rollback", str(run_dir), cwd=run_dir.parent, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert Ledger(run_dir).pending() == []
    assert stack.status("store-west") == "running"
    stack.wait_healthy(120)


@docker_slow
def test_entering_a_running_stack_reuses_it_as_it_is_and_leaves_it_running(stack, client):
    stack.wait_healthy(120)
    before = {n: _container(client, stack, n).id for n in TOPOLOGY.nodes}
    target = ClipStream()
    with DockerStack(work_dir=stack.work_dir, plan=target.compose_plan({}), topology=TOPOLOGY,
                     ready=target.ready, keep=False) as again:
        assert again.found_up and again.address("api") == stack.address("api")
        assert httpx.get(f"{target.entry_url(again)}/healthz", timeout=5).status_code == 200
    assert {n: _container(client, stack, n).id for n in TOPOLOGY.nodes} == before
    assert all(stack.status(n) == "running" for n in TOPOLOGY.nodes)


@docker_slow
def test_sweeping_a_project_leaves_a_lookalike_container_alone(client, images) -> None:
    """A container that carries a run's Compose project label but not ``drills.target`` was not
    created by the run: sweeping the project (and ``compose down``, which no longer removes
    orphans) must leave it."""
    project = f"drills-lookalike-{uuid.uuid4().hex[:8]}"
    ours = client.containers.create(images.app_image, ["true"], labels={
        PROJECT_LABEL: project, SERVICE_LABEL: "api", "drills.target": "true"})
    lookalike = client.containers.create(images.app_image, ["true"], labels={
        PROJECT_LABEL: project, SERVICE_LABEL: "someone-elses"})
    try:
        assert sweep_project(client, project) == []
        assert leftovers(client, project) == [f"container {lookalike.name}"]
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            ours.remove(force=True)
        lookalike.remove(force=True)
