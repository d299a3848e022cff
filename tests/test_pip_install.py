"""``pip install`` of the project as a user does it (a copy of the checkout, NOT editable), then
the images built by the INSTALLED package from a directory outside any checkout: what
``drill stack build`` does, offline and under a namespace of its own; then, as a new user would,
``drill init`` and a drill of a system nobody here wrote (examples/redis-sentinel) on docker,
to a verdict with RTO and lost-write figures: its lagging-replica drill, which catches the
acknowledged writes Redis's asynchronous replication loses in a failover (the example's other
drill, a plain power cut, is validated here; its passing run is measured in the example's README).

Starts: a venv under tmp, ``pip install`` (the user's pip cache, and PyPI or the configured index
for what it lacks), the Docker builds (removed afterwards). The Debian rootfs and wheelhouse
caches under ``~/.cache/drills`` are reused, so only the venv, the install and the app image's
layers are made from scratch.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from drills.stack.images import app_image, remove_images

ROOT = Path(__file__).resolve().parents[1]

#: Run by the installed Python, from outside the checkout: the build ``drill stack build`` runs,
#: offline (no base image is pulled), under the test's namespace; prints where drills came from.
BUILD = """
import sys, drills
from drills.stack.app_context import AppSource
from drills.stack.images import build_images
print("drills from", drills.__file__)
print("packages", *sorted(str(p) for p in AppSource.installed().packages.values()))
print(build_images(offline=True, namespace=sys.argv[1]))
"""


def checkout_copy(dest: Path) -> Path:
    """The files a clone of the checkout holds (tracked and untracked, less what git ignores),
    copied to ``dest``: installing from it leaves no build/ or egg-info in the checkout."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "-co", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode()  # fmt: skip
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_symlink() or src.is_file():  # a tracked file deleted in the work tree: skip
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel, follow_symlinks=False)
    return dest


def _env() -> dict[str, str]:
    """The user's environment without this test run's virtualenv and import path (and without
    the Redis example's WAIT switch: its drill runs with asynchronous replication)."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTEST_ADDOPTS", "REDIS_WAIT_REPLICAS"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def run(argv: list[str], *, cwd: Path, timeout: float) -> str:
    done = subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip
    assert done.returncode == 0, f"{argv[:4]} exit {done.returncode}:\n{done.stdout[-3000:]}\n" \
                                 f"{done.stderr[-3000:]}"  # fmt: skip
    return done.stdout


def pip_install(source: Path, venv: Path) -> Path:
    """A fresh venv with ``source`` installed into it the way a user does; its python."""
    run([sys.executable, "-m", "venv", str(venv)], cwd=source.parent, timeout=120)
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", str(source)], cwd=source.parent,
        timeout=900)  # fmt: skip
    return python


@contextlib.contextmanager
def namespace_images() -> Iterator[tuple[str, docker.DockerClient]]:
    """A fresh image namespace, every image of it removed on exit (checked)."""
    namespace = f"drillspip{uuid.uuid4().hex[:8]}"
    client = docker.from_env(timeout=900)
    try:
        yield namespace, client
    finally:
        remove_images(client, namespace)
        left = client.images.list(all=True, filters={"label": f"drills.namespace={namespace}"})
        client.close()
        assert left == [], f"images left behind: {left}"


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_images_build_from_a_plain_pip_install_outside_the_checkout(tmp_path: Path) -> None:
    started = time.monotonic()
    python = pip_install(checkout_copy(tmp_path / "src"), tmp_path / "venv")
    installed = time.monotonic()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with namespace_images() as (ns, client):
        out = run([str(python), "-c", BUILD, ns], cwd=elsewhere, timeout=1200)
        site = str(tmp_path / "venv" / "lib")
        assert f"drills from {site}" in out, out  # the installed copy, not the checkout
        packages = out.split("packages ", 1)[1].splitlines()[0].split()
        assert packages and all(p.startswith(site) for p in packages), out
        for tag, role in ((app_image(ns), "app"), (f"{ns}/toxiproxy:latest", "toxiproxy")):
            assert client.images.get(tag).labels["drills.image"] == role
        usage = client.containers.run(app_image(ns), ["drill", "--help"], network_mode="none",
                                      remove=True).decode()  # fmt: skip
        assert usage.startswith("usage: drill")
    built = time.monotonic()
    drill = str(python.parent / "drill")
    run([drill, "init", "mine"], cwd=elsewhere, timeout=60)
    assert "ok" in run([drill, "validate", "mine/drill.yaml"], cwd=elsewhere, timeout=60)
    run([str(python), "-m", "pip", "install", "--quiet", "redis>=5"], cwd=elsewhere, timeout=300)
    examples = tmp_path / "src" / "examples" / "redis-sentinel"
    for name in ("drill.yaml", "lagging-replica.yaml"):  # both example drills are valid
        assert "ok" in run([drill, "validate", str(examples / name)], cwd=elsewhere, timeout=60)
    # The lagging-replica drill: a primary power cut while the replicas lag; asynchronous
    # replication loses acknowledged writes (131-236 in 5 of 5 runs measured:
    # examples/redis-sentinel/README.md) and the drill says so, as it expects (`expect: fail`).
    run([drill, "run", str(examples / "lagging-replica.yaml"), "--out", "run"],
        cwd=elsewhere, timeout=900)
    journal = json.loads((elsewhere / "run" / "journal.json").read_text())
    measured = {o["name"]: o for o in journal["objectives"]}
    assert journal["target"] == "custom", journal["error"]
    assert journal["verdict"] == "fail" and journal["as_expected"] is True, journal["objectives"]
    assert measured["rto.write"]["passed"] and measured["rto.write"]["measured"].endswith("s")
    assert not measured["lost_acked_writes"]["passed"]
    assert re.fullmatch(r"\d+ lost \(\d+ key writes, \d+ increments\) of \d+ at risk",
                        measured["lost_acked_writes"]["measured"]), measured["lost_acked_writes"]
    assert journal["metrics"]["lost_acked_writes"] > 0 and journal["metrics"]["lost_increments"] > 0
    # the replicas did replicate through the link, and no Sentinel pointed them around it
    logs = elsewhere / "run" / "stack" / "logs"
    for replica in ("redis-west", "redis-north"):
        assert "Connecting to MASTER toxiproxy:16379" in (logs / f"{replica}.log").read_text()
    for sentinel in ("sentinel-east", "sentinel-west", "sentinel-north"):
        assert "+fix-slave-config" not in (logs / f"{sentinel}.log").read_text()
    print(f"\npip install {installed - started:.0f} s, build {built - installed:.0f} s, "
          f"init + redis lagging-replica drill {time.monotonic() - built:.0f} s\n{out}")
