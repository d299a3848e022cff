"""Images with no registry (drills.stack.images, app_context, debian_base), and ClipStream's
compose file that runs them.

Without Docker: the compose file's wiring (every link through Toxiproxy, loopback-only ports,
zones, volumes, healthchecks) checked against ClipStream's topology, the proxy labels, what the
app image is made of when read from an installed distribution (fake ones on ``sys.path``), its
build context (deterministic, no bytecode), the launchers and the import check, wheel selection
flags, and the wheelhouse's sdist fallback on a local package index (no network).

With Docker (``@pytest.mark.docker``, skipped with the reason where no engine answers): a build
from nothing through the offline path (debootstrap -> docker import -> pip download -> build with
``--network none``) under a namespace of its own, a second build that must be all cache, the
images run, failures carry their log tail, and the compose stack comes up healthy through its
proxies. Starts: debootstrap (needs root and the Debian mirror), pip (PyPI), containers.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest
import yaml

import drills.targets.clipstream
from drills.errors import SpecError, StackError
from drills.stack.app_context import (
    DOCKERFILES,
    AppSource,
    installed_distribution,
    launcher,
    left_out_modules,
    write_context,
)
from drills.stack.debian_base import DebianBase, TargetPython, fetch_wheelhouse
from drills.stack.images import (
    BuildReport,
    app_image,
    build_images,
    choose_toxiproxy_image,
    compose_command,
    compose_proxies,
    default_cache_dir,
    docker_build,
    remove_images,
)

COMPOSE = Path(drills.targets.clipstream.__file__).parent / "docker-compose.yml"
TOPOLOGY = drills.targets.clipstream.TOPOLOGY
URL = re.compile(r"^(?:(?P<name>[\w-]+)=)?http://(?P<host>[\w.-]+):(?P<port>\d+)$")


# ---------------------------------------------------------------------------------------------
# The compose file, checked against ClipStream's topology (no Docker needed)


def _flag(command: list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command[:-1]) if arg == flag]


def _dial_targets(node: str, command: list[str]) -> list[tuple[str, str]]:
    """(target node, URL) for every peer URL in a node's command line."""
    out = [("coordinator", u) for u in _flag(command, "--coordinator-url")]
    for spec in _flag(command, "--store"):
        out.append((spec.split("=", 1)[0], spec.split("=", 1)[1]))
    for url in _flag(command, "--peer-url"):
        out.append((next(s for s in ("store-east", "store-west") if s != node), url))
    return out


def compose_problems(doc: dict[str, Any]) -> list[str]:
    """Everything in a parsed docker-compose.yml that breaks the contract; [] when it holds."""
    problems: list[str] = []
    services = doc.get("services", {})
    nodes = set(TOPOLOGY.nodes)
    if set(services) != nodes | {"toxiproxy"}:
        problems.append(f"services {sorted(services)} != {sorted(nodes | {'toxiproxy'})}")
    proxies = {p.name: p for p in compose_proxies(services.get("toxiproxy", {}).get("labels", {}))}
    if {p.link for p in proxies.values()} != set(TOPOLOGY.links):
        problems.append(f"proxied links {sorted(p.link for p in proxies.values())}")
    listen_ports = [p.listen.rsplit(":", 1)[1] for p in proxies.values()]
    if len(set(listen_ports)) != len(listen_ports):
        problems.append(f"two proxies share a listen port: {listen_ports}")
    for name, svc in services.items():
        labels = svc.get("labels", {})
        for port in svc.get("ports", []):
            if not str(port).startswith("127.0.0.1:"):
                problems.append(f"{name}: port {port} is not published on 127.0.0.1 only")
        if "healthcheck" not in svc:
            problems.append(f"{name}: no healthcheck")
        if str(svc.get("restart", "no")) != "no":
            problems.append(f"{name}: restart {svc['restart']!r} would undo the harness's kills")
        if name not in nodes:
            continue
        if labels.get("drills.zone") != TOPOLOGY.zone_of(name):
            problems.append(f"{name}: drills.zone {labels.get('drills.zone')!r}")
        if str(labels.get("drills.target")) != "true":
            problems.append(f"{name}: drills.target is not 'true'")
        command = [str(a) for a in svc.get("command", [])]
        own_port = _flag(command, "--port")
        for target, url in _dial_targets(name, command):
            m = URL.match(f"x={url}")
            if not m or m["host"] != "toxiproxy":
                problems.append(f"{name}: dials {target} at {url}, not through toxiproxy")
                continue
            link = f"{name}->{target}"
            proxy = next((p for p in proxies.values() if p.link == link), None)
            if proxy is None or proxy.listen.rsplit(":", 1)[1] != m["port"]:
                problems.append(f"{name}: {url} is not the proxy of {link}")
        for proxy in proxies.values():
            if proxy.link.endswith(f"->{name}") and proxy.upstream != f"{name}:{own_port[0]}":
                problems.append(f"proxy {proxy.name} leads to {proxy.upstream}, {name} listens on "
                                f"{own_port}")  # fmt: skip
        if name != "api":
            mounts = [str(v) for v in svc.get("volumes", [])]
            named = [m.split(":")[0] for m in mounts if m.endswith(":/data")]
            if not named or named[0] not in (doc.get("volumes") or {}):
                problems.append(f"{name}: /data is not a named volume ({mounts})")
    return problems


def _compose_doc() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_honours_the_contract() -> None:
    assert compose_problems(_compose_doc()) == []


def _set(doc: dict[str, Any], path: str, value: object) -> None:
    *parents, last = path.split("/")
    for key in parents:
        doc = doc[key]
    doc[last] = value


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("services/api/ports", ["7000:7000"], "not published on 127.0.0.1"),
        ("services/store-east/command",
         ["store", "--name", "store-east", "--port", "7101", "--peer-url", "http://store-west:7102"],
         "not through toxiproxy"),
        ("services/api/command",
         ["api", "--port", "7000", "--coordinator-url", "http://toxiproxy:8600",
          "--store", "store-east=http://toxiproxy:8602", "--store", "store-west=http://toxiproxy:8602"],
         "is not the proxy of api->store-east"),
        ("services/toxiproxy/labels/drills.proxy.api_to_store-east",
         "listen=0.0.0.0:8601,upstream=store-east:9999", "leads to store-east:9999"),
        ("services/toxiproxy/labels/drills.proxy.api_to_store-west",
         "listen=0.0.0.0:8601,upstream=store-west:7102", "share a listen port"),
        ("services/store-west/labels/drills.zone", "dc-east", "drills.zone 'dc-east'"),
        ("services/coordinator/labels/drills.target", "false", "drills.target"),
        ("services/store-east/volumes", ["/tmp/east:/data"], "not a named volume"),
        ("services/api/restart", "always", "would undo"),
    ],
)  # fmt: skip
def test_compose_contract_check_catches_each_breach(path: str, value: object,
                                                    expected: str) -> None:
    doc = _compose_doc()
    _set(doc, path, value)
    problems = compose_problems(doc)
    assert any(expected in p for p in problems), problems


def test_compose_contract_check_catches_a_missing_link_and_healthcheck() -> None:
    doc = _compose_doc()
    del doc["services"]["toxiproxy"]["labels"]["drills.proxy.store-west_to_store-east"]
    del doc["services"]["coordinator"]["healthcheck"]
    problems = compose_problems(doc)
    assert any(p.startswith("proxied links") for p in problems)
    assert "coordinator: no healthcheck" in problems
    assert any("is not the proxy of store-west->store-east" in p for p in problems)


def test_compose_proxies_parse_labels_and_refuse_malformed_ones() -> None:
    labels = {"drills.zone": "x", "drills.proxy.a_to_b": "listen=0.0.0.0:1,upstream=b:2"}
    (proxy,) = compose_proxies(labels)
    got = (proxy.name, proxy.link, proxy.listen, proxy.upstream)
    assert got == ("a_to_b", "a->b", "0.0.0.0:1", "b:2")
    for bad in ("0.0.0.0:1 b:2", "listen=0.0.0.0:1", "listen=,upstream=b:2"):
        with pytest.raises(StackError, match="expected listen"):
            compose_proxies({"drills.proxy.a_to_b": bad})


def test_compose_command_is_detected_or_refused(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    if not (shutil.which("docker-compose") or shutil.which("docker")):
        pytest.skip("neither docker nor docker-compose is installed")
    cmd = compose_command()
    assert cmd in (("docker", "compose"), ("docker-compose",))
    assert subprocess.run([*cmd, "version"], capture_output=True, check=False).returncode == 0
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match="neither"):
        compose_command()


# ---------------------------------------------------------------------------------------------
# Wheel selection and the wheelhouse (local package index only: no network)


def test_build_refuses_a_namespace_docker_would_refuse_before_touching_anything() -> None:
    for bad in ("Drills", "drills/x", "", "-x"):
        with pytest.raises(SpecError, match="namespace"):
            build_images(namespace=bad, cache_dir=Path("/nonexistent"), log=lambda _: None)


def test_pip_args_select_every_manylinux_up_to_the_image_glibc() -> None:
    args = TargetPython(version="3.11", glibc="2.36", machine="x86_64").pip_args()
    platforms = {a.split("=", 1)[1] for a in args if a.startswith("--platform=")}
    assert {"manylinux_2_36_x86_64", "manylinux_2_17_x86_64", "manylinux_2_5_x86_64",
            "manylinux2014_x86_64", "manylinux1_x86_64"} <= platforms  # fmt: skip
    assert "manylinux_2_37_x86_64" not in platforms
    assert {"--python-version=3.11", "--abi=cp311", "--implementation=cp"} <= set(args)
    old = TargetPython(version="3.9", glibc="2.12", machine="aarch64").pip_args()
    assert "--platform=manylinux2010_aarch64" in old
    assert "--platform=manylinux2014_aarch64" not in old
    with pytest.raises(StackError, match="glibc"):
        TargetPython(version="3.11", glibc="", machine="x86_64").pip_args()  # musl: no glibc


def _fake_dist(site: Path, *, record: bool = True, installer: bool = True,
               src: Path | None = None) -> Path:
    """A distribution ``fakeapp`` 1.0 in ``site`` whose package ``fakepkg`` lives in ``src``
    (default ``site``); ``record=False`` leaves the package out of RECORD (an editable install)."""
    src = src or site
    pkg = src / "fakepkg"
    files = {
        "__init__.py": "VALUE = 1\n",
        "cli.py": "def main():\n    return 3\n\n\nclass Tool:\n    @staticmethod\n"
                  "    def run():\n        return 4\n",
        "sub/__init__.py": "",
        "sub/mod.py": "X = 2\n",
        "data.yaml": "a: 1\n",
        "__pycache__/cli.cpython-311.pyc": "junk",
    }  # fmt: skip
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    (pkg / "run.sh").write_text("#!/bin/sh\n")
    (pkg / "run.sh").chmod(0o775)
    info = site / "fakeapp-1.0.dist-info"
    info.mkdir(parents=True)
    requires = ["docker>=7", "Foo.Bar>=1", "pytest>=8", 'hypothesis>=6; extra == "test"',
                "Matplotlib>=3"]  # fmt: skip
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeapp\nVersion: 1.0\n"
                                   + "".join(f"Requires-Dist: {r}\n" for r in requires))
    (info / "top_level.txt").write_text("fakepkg\n")
    (info / "entry_points.txt").write_text(
        "[console_scripts]\nfake-run = fakepkg.cli:main\nfake-tool = fakepkg.cli:Tool.run [x]\n\n"
        "[pytest11]\nfake = fakepkg\n")  # fmt: skip
    if installer:
        (info / "INSTALLER").write_text("pip\n")
    listed = [f"fakepkg/{rel}" for rel in files] if record else ["__editable__.fakeapp.pth"]
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in listed))
    return pkg


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


def test_app_source_is_read_from_the_installed_distribution(site: Path) -> None:
    pkg = _fake_dist(site)
    source = AppSource.installed("fakeapp", exclude=("pytest", "matplotlib"))
    assert source.packages == {"fakepkg": pkg}
    assert source.scripts == {"fake-run": "fakepkg.cli:main", "fake-tool": "fakepkg.cli:Tool.run"}
    assert source.requirements == ("docker>=7", "Foo.Bar>=1")  # no extras, no harness-only
    assert {"pytest", "_pytest", "matplotlib"} <= set(source.left_out)


def test_an_editable_install_is_found_where_python_imports_it_from(
        site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    checkout = tmp_path / "checkout"
    monkeypatch.syspath_prepend(str(checkout))
    pkg = _fake_dist(site, record=False, src=checkout)
    assert AppSource.installed("fakeapp", exclude=()).packages == {"fakepkg": pkg}


def test_an_installed_distribution_wins_over_a_stale_egg_info_on_the_path(
        site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    _fake_dist(site)
    checkout = tmp_path / "checkout"
    (checkout / "fakeapp.egg-info").mkdir(parents=True)
    (checkout / "fakeapp.egg-info" / "PKG-INFO").write_text(
        "Metadata-Version: 2.1\nName: fakeapp\nVersion: 0.9\n")  # fmt: skip
    monkeypatch.syspath_prepend(str(checkout))  # ahead of site, as the cwd is
    assert installed_distribution("fakeapp").version == "1.0"
    with pytest.raises(StackError, match="not installed"):
        installed_distribution("no-such-distribution-here")


def test_left_out_modules_are_what_only_the_harness_needs() -> None:
    left = set(left_out_modules(("docker>=7.0",), ("pytest",)))
    assert {"pytest", "_pytest", "pluggy"} <= left
    assert not {"docker", "requests", "urllib3"} & left  # the image needs those


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_build_context_holds_packages_launchers_and_check_and_is_deterministic(site: Path
                                                                              ) -> None:
    pkg = _fake_dist(site)
    source = AppSource.installed("fakeapp", exclude=("pytest", "matplotlib"))
    first = io.BytesIO()
    write_context(source, first)
    os.utime(pkg / "cli.py", (1, 1))  # a touched file, same content: the same context
    (pkg / "run.sh").chmod(0o700)
    again = io.BytesIO()
    write_context(source, again)
    assert first.getvalue() == again.getvalue()
    members = _members(first.getvalue())
    assert {"Dockerfile", "app/fakepkg/__init__.py", "app/fakepkg/sub/mod.py",
            "app/fakepkg/data.yaml", "app/bin/fake-run", "app/bin/fake-tool",
            "check/check_app.py", "check/app.json"} <= set(members)  # fmt: skip
    assert not [n for n in members if "__pycache__" in n or n.endswith(".pyc")]
    assert {(m.uid, m.gid, m.mtime) for m in members.values()} == {(0, 0, 0)}
    assert members["app/bin/fake-run"].mode == members["app/fakepkg/run.sh"].mode == 0o755
    assert members["app/fakepkg/cli.py"].mode == 0o644
    with tarfile.open(fileobj=io.BytesIO(first.getvalue())) as tar:
        dockerfile = tar.extractfile("Dockerfile").read()  # type: ignore[union-attr]
        spec = json.loads(tar.extractfile("check/app.json").read())  # type: ignore[union-attr]
    assert dockerfile == (DOCKERFILES / "app.Dockerfile").read_bytes()
    assert not re.search(rb"^ENTRYPOINT", dockerfile, re.M)  # whoever runs it names the command
    assert spec["packages"] == ["fakepkg"]
    assert {"drills.toxiproxy", "fakepkg.cli"} <= set(spec["required"])


def test_launchers_call_the_entry_point_and_exit_with_its_value(site: Path,
                                                                tmp_path: Path) -> None:
    _fake_dist(site)
    for target, code in (("fakepkg.cli:main", 3), ("fakepkg.cli:Tool.run", 4)):
        text = launcher(target)
        assert text.startswith("#!/opt/venv/bin/python\n")
        script = tmp_path / "launcher.py"
        script.write_text(text)
        done = subprocess.run([sys.executable, str(script)], env={**os.environ,
                              "PYTHONPATH": str(site)}, check=False)  # fmt: skip
        assert done.returncode == code


def _check(site: Path, tmp_path: Path, **spec: object) -> subprocess.CompletedProcess[str]:
    full = {"packages": ["fakepkg"], "scripts": {"fake-run": "fakepkg.cli:main"},
            "left_out": ["leftoutmod"], "required": [], **spec}  # fmt: skip
    path = tmp_path / "app.json"
    path.write_text(json.dumps(full))
    return subprocess.run([sys.executable, str(DOCKERFILES / "check_app.py"), str(path)],
                          env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True,
                          text=True, check=False)  # fmt: skip


def test_import_check_skips_only_modules_needing_what_was_left_out(site: Path,
                                                                   tmp_path: Path) -> None:
    pkg = _fake_dist(site)
    (pkg / "harness.py").write_text("import leftoutmod\n")
    (pkg / "__main__.py").write_text("raise SystemExit('never imported')\n")
    done = _check(site, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "imported 4 modules" in done.stdout and "fakepkg.harness (leftoutmod)" in done.stdout
    needed = _check(site, tmp_path, required=["fakepkg.harness"])  # what the image runs
    assert needed.returncode == 1 and "FAILED fakepkg.harness" in needed.stderr
    (pkg / "sub" / "broken.py").write_text("import nosuchmodule_anywhere\n")
    broken = _check(site, tmp_path, scripts={"x": "fakepkg.cli:absent"})
    assert broken.returncode == 1
    assert "FAILED fakepkg.sub.broken" in broken.stderr and "nosuchmodule_anywhere" in broken.stderr
    assert "FAILED script x (fakepkg.cli:absent)" in broken.stderr


def test_app_image_tag_is_per_namespace() -> None:
    assert app_image() == "drills/app:latest"
    assert app_image("drillstest1") == "drillstest1/app:latest"

BACKEND = '''
import base64, hashlib, os, zipfile
TAG = {tag!r}
def _rec(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{{name}},sha256={{digest}},{{len(data)}}"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = f"{name}-1.0-{{TAG}}.whl"
    meta = "Metadata-Version: 2.1\\nName: {name}\\nVersion: 1.0\\n"
    wheel = f"Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: {{TAG}}\\n"
    files = {{"{name}/__init__.py": b"VALUE = 1\\n",
             "{name}-1.0.dist-info/METADATA": meta.encode(),
             "{name}-1.0.dist-info/WHEEL": wheel.encode()}}
    records = [_rec(n, d) for n, d in files.items()] + ["{name}-1.0.dist-info/RECORD,,"]
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
        zf.writestr("{name}-1.0.dist-info/RECORD", "\\n".join(records) + "\\n")
    return name
'''


def _sdist(index: Path, name: str, tag: str) -> None:
    """A source-only package ``name`` 1.0 whose in-tree build backend makes a ``tag`` wheel."""
    files = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\n'
                          'backend-path = ["."]\n',
        "backend.py": BACKEND.format(tag=tag, name=name),
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
    }  # fmt: skip
    with tarfile.open(index / f"{name}-1.0.tar.gz", "w:gz") as tar:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-1.0/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


TARGET = TargetPython(version="3.11", glibc="2.36", machine="x86_64")


def test_wheelhouse_builds_a_pure_sdist_into_a_wheel_and_caches_it(tmp_path: Path) -> None:
    index = tmp_path / "index"
    index.mkdir()
    _sdist(index, "tinypure", "py3-none-any")
    lines: list[str] = []
    args = ("--no-index", "--find-links", str(index))
    house = fetch_wheelhouse(["tinypure==1.0"], TARGET, cache_dir=tmp_path / "cache",
                             log=lines.append, pip_args=args)  # fmt: skip
    assert sorted(p.name for p in house.iterdir()) == ["requirements.txt",
                                                       "tinypure-1.0-py3-none-any.whl"]  # fmt: skip
    assert (house / "requirements.txt").read_text() == "tinypure==1.0\n"
    assert any("building one from its sdist" in line for line in lines)
    assert [p.name for p in (tmp_path / "cache" / "wheelhouse").iterdir()] == [house.name]
    lines.clear()
    again = fetch_wheelhouse(["tinypure==1.0"], TARGET, cache_dir=tmp_path / "cache",
                             log=lines.append, pip_args=args)  # fmt: skip
    assert again == house and lines == [f"wheelhouse {house.name}: cached"]


def test_wheelhouse_refuses_an_sdist_that_is_not_pure_python(tmp_path: Path) -> None:
    index = tmp_path / "index"
    index.mkdir()
    _sdist(index, "tinynative", "cp311-cp311-linux_x86_64")
    with pytest.raises(StackError, match="not pure Python") as err:
        fetch_wheelhouse(["tinynative==1.0"], TARGET, cache_dir=tmp_path / "cache",
                         log=lambda _: None, pip_args=("--no-index", "--find-links", str(index)))
    assert err.value.logs  # the pip log tail travels with the error
    assert not list((tmp_path / "cache" / "wheelhouse").iterdir())  # no half wheelhouse left


def test_wheelhouse_reports_an_unresolvable_requirement_with_pip_output(tmp_path: Path) -> None:
    index = tmp_path / "index"
    index.mkdir()
    with pytest.raises(StackError, match="pip") as err:
        fetch_wheelhouse(["absentpkg==1.0"], TARGET, cache_dir=tmp_path / "cache",
                         log=lambda _: None, pip_args=("--no-index", "--find-links", str(index)))
    assert "absentpkg" in (err.value.logs or "")
    assert not list((tmp_path / "cache" / "wheelhouse").iterdir())


# ---------------------------------------------------------------------------------------------
# Docker: build from nothing, offline path


needs_docker = pytest.mark.docker  # skipped with the reason without an engine (conftest)


def _snapshot(dest: Path) -> AppSource:
    """What the image is built from: the installed distribution, its packages frozen (other
    people edit the tree while tests run)."""
    dest.mkdir()
    return AppSource.installed().snapshot(dest)


def _seed_debs(cache: Path) -> None:
    """Reuse downloaded .debs (debootstrap still runs in full); the network is not under test."""
    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shared = default_cache_dir() / "debs"
    if shared.is_dir():
        shutil.copytree(shared, cache / "debs", copy_function=link_or_copy, dirs_exist_ok=True)


class Built:
    """One build from nothing under a fresh namespace, shared by the docker tests."""

    def __init__(self, source: AppSource, cache: Path, namespace: str,
                 client: docker.DockerClient) -> None:
        self.source, self.cache, self.namespace, self.client = source, cache, namespace, client
        self.lines: list[str] = []
        self.cold: BuildReport | None = None

    def build(self) -> BuildReport:
        return build_images(offline=True, namespace=self.namespace, cache_dir=self.cache,
                            source=self.source, log=self.lines.append)  # fmt: skip

    def ours(self) -> list[Any]:
        label = f"drills.namespace={self.namespace}"
        return self.client.images.list(all=True, filters={"label": label})

    @property
    def report(self) -> BuildReport:
        assert self.cold is not None
        return self.cold


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    base = tmp_path_factory.mktemp("images")
    cache = base / "cache"
    cache.mkdir()
    _seed_debs(cache)
    client = docker.from_env(timeout=900)
    state = Built(_snapshot(base / "project"), cache, f"drillstest{uuid.uuid4().hex[:8]}", client)
    try:
        assert state.ours() == []  # from nothing: no image of this namespace exists
        state.cold = state.build()
        yield state
    finally:
        remove_images(client, state.namespace)
        left = state.ours()
        client.close()
        assert left == [], f"images left behind: {left}"


def docker_slow(test: Any) -> Any:
    """A test that needs the engine and the shared build (skipped with the reason otherwise)."""
    for mark in (pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1800)):
        test = mark(test)
    return test


def _image_id(client: docker.DockerClient, name: str) -> str:
    return str(client.images.get(name).id)


@docker_slow
def test_cold_build_goes_through_debootstrap_and_a_wheelhouse(built: Built) -> None:
    report, ns = built.report, built.namespace
    assert report.base_image == f"{ns}/debian-base:bookworm"
    assert report.base_source == "debootstrap"
    assert (report.target.version, report.target.machine) == ("3.11", "x86_64")
    assert [s.outcome for s in report.steps[1:]] == ["built", "built", "built"]
    assert report.toxiproxy.official is False and report.toxiproxy.image == f"{ns}/toxiproxy:latest"
    assert report.app_image == app_image(ns)
    assert report.compose_env() == {"DRILLS_IMAGE": f"{ns}/app:latest",
                                    "TOXIPROXY_IMAGE": f"{ns}/toxiproxy:latest"}  # fmt: skip
    for tag, role in ((report.base_image, "base"), (report.wheels_image, "wheelhouse"),
                      (report.app_image, "app"), (report.toxiproxy_image, "toxiproxy")):
        labels = built.client.images.get(tag).labels
        assert (labels["drills.namespace"], labels["drills.image"]) == (ns, role)
    assert any(line.startswith("debootstrap bookworm") for line in built.lines)
    print(f"\ncold build:\n{report}")


@docker_slow
def test_second_build_is_all_cache_and_yields_the_same_images(built: Built) -> None:
    cold = built.report
    ids = {t: _image_id(built.client, t) for t in (cold.app_image, cold.toxiproxy_image)}
    warm = built.build()
    assert warm.base_source == "image"
    assert [s.outcome for s in warm.steps[1:]] == ["cached", "cached", "cached"]
    assert {t: _image_id(built.client, t) for t in ids} == ids
    print(f"\nwarm build:\n{warm}")


def _last_build_log(cache: Path, tag: str) -> str:
    text = (cache / "logs" / "build-app.log").read_text()
    return text[text.rindex(f"--- build {tag}\n"):]


@docker_slow
def test_source_change_rebuilds_only_the_packages_and_leaves_no_stale_images(built: Built
                                                                             ) -> None:
    before = sorted(tuple(i.tags) for i in built.ours())
    old_app = _image_id(built.client, built.report.app_image)
    with (built.source.packages["drills"] / "__init__.py").open("a") as fh:
        fh.write("# a source change\n")
    report = built.build()
    assert [s.outcome for s in report.steps] == [f"{report.base_image} (image)", "cached",
                                                 "built", "built"]  # fmt: skip
    assert _image_id(built.client, report.app_image) != old_app
    last = _last_build_log(built.cache, report.app_image)
    for instruction in ("RUN python3 -m venv", "COPY --from=build /opt/venv"):
        output = last[last.index(f" : {instruction}"):].split("\nStep ")[0]
        assert "Using cache" in output, output  # the dependency layers survived the change
    stage = built.client.containers.run(f"{built.namespace}/app:build", network_mode="none",
                                        entrypoint=["ls", "/wheels/requirements.txt", "/opt/check"],
                                        remove=True).decode()  # fmt: skip
    assert "requirements.txt" in stage  # :build is the build stage, kept as the next cache
    probe = ["python", "-c", "import drills, pathlib; print(pathlib.Path(drills.__file__)"
             ".read_text().splitlines()[-1])"]  # fmt: skip
    out = built.client.containers.run(report.app_image, entrypoint=probe, network_mode="none",
                                      remove=True).decode()  # fmt: skip
    assert out.strip() == "# a source change"
    assert sorted(tuple(i.tags) for i in built.ours()) == before  # replaced images are gone
    print(f"\nrebuild after a source change:\n{report}")


@docker_slow
def test_app_image_runs_every_role_without_network_or_compilers(built: Built) -> None:
    run = built.client.containers.run
    app = built.report.app_image
    assert not built.client.images.get(app).attrs["Config"].get("Entrypoint")  # caller's choice
    for script in built.source.scripts:  # every console script of the distribution, launched
        usage = run(app, [script, "--help"], network_mode="none", remove=True).decode()
        assert usage.startswith(f"usage: {script}"), usage
    usage = run(app, ["clipstream", "--help"], network_mode="none", remove=True).decode()
    assert all(role in usage for role in ("store", "coordinator", "api"))
    probe = ("import importlib.util as u, shutil, drills, clipstream, fastapi, uvicorn, httpx; "
             "print(shutil.which('gcc'), shutil.which('cc'), shutil.which('drill'), "
             "*(u.find_spec(m) is None for m in ('matplotlib', 'locust', 'pytest')))")  # fmt: skip
    out = run(app, entrypoint=["python", "-c", probe], network_mode="none", remove=True).decode()
    assert out.split() == ["None", "None", "/opt/app/bin/drill", "True", "True", "True"]
    listing = run(app, entrypoint=["sh", "-c", "ls -d /wheels /opt/check 2>&1; true"],
                  network_mode="none", remove=True).decode()  # fmt: skip
    assert "No such file" in listing and "/wheels\n" not in listing  # build stage stays behind


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float, logs: Any) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            resp = httpx.get(url, timeout=2)
            if resp.status_code == 200:
                return resp
            last = resp.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{url} never answered 200 ({last}); logs:\n{logs()}")


@docker_slow
def test_our_toxiproxy_image_serves_the_api_and_the_cli_healthcheck(built: Built) -> None:
    container = built.client.containers.run(
        built.report.toxiproxy_image, detach=True, ports={"8474/tcp": ("127.0.0.1", None)},
        labels={"drills.namespace": built.namespace},
    )  # fmt: skip
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8474/tcp"][0]["HostPort"]
        logs = lambda: container.logs(tail=30).decode(errors="replace")  # noqa: E731
        assert "version" in _wait_http(f"http://127.0.0.1:{port}/version", 60, logs).json()
        assert container.exec_run(["/toxiproxy-cli", "list"]).exit_code == 0
        assert container.exec_run(["/toxiproxy-cli", "create"]).exit_code != 0
    finally:
        container.remove(force=True)
    with pytest.raises(docker.errors.ContainerError) as err:  # no server: the healthcheck fails
        built.client.containers.run(built.report.toxiproxy_image, network_mode="none",
                                    entrypoint=["/toxiproxy-cli", "list"], remove=True)  # fmt: skip
    assert err.value.exit_status != 0


@docker_slow
def test_toxiproxy_choice_prefers_the_official_image_only_when_it_exists(built: Built) -> None:
    ns = built.namespace
    refused = choose_toxiproxy_image(built.client, namespace=ns, official="127.0.0.1:9/tp:0")
    assert not refused.official and refused.image == f"{ns}/toxiproxy:latest"
    assert "127.0.0.1:9/tp:0" in refused.reason
    fake = f"{ns}-official/toxiproxy"
    built.client.images.get(built.report.toxiproxy_image).tag(fake, "1")
    try:
        present = choose_toxiproxy_image(built.client, namespace=ns, official=f"{fake}:1")
        assert present.official and present.image == f"{fake}:1"
    finally:
        built.client.images.remove(f"{fake}:1")


@docker_slow
def test_failed_build_step_raises_with_the_build_log_tail(built: Built, tmp_path: Path) -> None:
    ctx = io.BytesIO()
    with tarfile.open(fileobj=ctx, mode="w") as tar:
        data = f"FROM {built.report.base_image}\nRUN echo marker-7f3 && exit 3\n".encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    ctx.seek(0)
    tag = f"{built.namespace}/broken:1"
    with pytest.raises(StackError, match=r"docker build of .* failed") as err:
        docker_build(built.client, tag=tag, fileobj=ctx, log=lambda _: None,
                     log_file=tmp_path / "build.log")  # fmt: skip
    assert "marker-7f3" in (err.value.logs or "")
    with pytest.raises(docker.errors.ImageNotFound):
        built.client.images.get(tag)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(600)
@needs_docker
def test_debootstrap_failure_raises_with_its_log_and_leaves_nothing(tmp_path: Path) -> None:
    ns = f"drillstest{uuid.uuid4().hex[:8]}"
    bad = DebianBase(mirror="http://127.0.0.1:9/debian")  # loopback, nothing listens
    with pytest.raises(StackError, match="debootstrap failed") as err:
        build_images(offline=True, namespace=ns, cache_dir=tmp_path, debian=bad,
                     log=lambda _: None)  # fmt: skip
    assert "127.0.0.1:9" in (err.value.logs or "")
    assert list((tmp_path / "rootfs").iterdir()) == []  # no tar, no scratch rootfs
    with contextlib.closing(docker.from_env()) as client:
        assert client.images.list(all=True, filters={"label": f"drills.namespace={ns}"}) == []


@pytest.mark.docker
@pytest.mark.timeout(600)
@needs_docker
def test_an_explicit_base_that_cannot_be_had_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="cannot be pulled"):
        build_images(base_image="127.0.0.1:9/nothing/base:0", cache_dir=tmp_path,
                     namespace=f"drillstest{uuid.uuid4().hex[:8]}", log=lambda _: None)


# ---------------------------------------------------------------------------------------------
# Docker: the compose stack from the images just built


class Compose:
    """``docker-compose.yml`` brought up under its own project name and free loopback ports."""

    def __init__(self, built: Built) -> None:
        self.client = built.client
        self.project = f"{built.namespace}stack"
        self.ports = {v: _free_port() for v in ("DRILLS_API_PORT", "DRILLS_COORDINATOR_PORT",
                      "DRILLS_STORE_EAST_PORT", "DRILLS_STORE_WEST_PORT", "DRILLS_TOXIPROXY_PORT")}
        self.env = {**os.environ, **built.report.compose_env(),
                    **{k: str(v) for k, v in self.ports.items()}}  # fmt: skip
        self.argv = [*compose_command(), "-f", str(COMPOSE), "-p", self.project]

    def run(self, *args: str) -> str:
        done = subprocess.run([*self.argv, *args], env=self.env, capture_output=True, text=True,
                              timeout=300, check=False)  # fmt: skip
        assert done.returncode == 0, f"compose {args}: {done.stdout}\n{done.stderr}"
        return done.stdout

    def containers(self) -> dict[str, Any]:
        found = self.client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={self.project}"})
        return {c.labels["com.docker.compose.service"]: c for c in found}

    def logs(self) -> str:
        return "\n".join(f"--- {name}: {c.status}\n{c.logs(tail=15).decode(errors='replace')}"
                         for name, c in self.containers().items())  # fmt: skip

    def wait_healthy(self, services: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        health: dict[str, str] = {}
        while time.monotonic() < deadline:
            health = {}
            for name, c in self.containers().items():
                c.reload()
                health[name] = (c.attrs["State"].get("Health") or {}).get("Status", c.status)
            if all(health.get(s) == "healthy" for s in services):
                return
            time.sleep(1)
        raise AssertionError(f"not healthy after {timeout}s: {health}\n{self.logs()}")

    def url(self, port_var: str) -> str:
        return f"http://127.0.0.1:{self.ports[port_var]}"


@contextlib.contextmanager
def compose_stack(built: Built) -> Iterator[Compose]:
    stack = Compose(built)
    try:
        stack.run("up", "-d")
        yield stack
    finally:
        stack.run("down", "-v", "--remove-orphans", "--timeout", "5")


def _wait_video(url: str, video: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    dump: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            dump = httpx.get(f"{url}/dump", timeout=3).json()
            if video in {v["id"] for v in dump.get("videos", [])}:
                return dump
        time.sleep(0.5)
    raise AssertionError(f"{video} never reached {url}: {dump}")


@docker_slow
def test_compose_stack_comes_up_healthy_through_its_proxies(built: Built) -> None:
    with compose_stack(built) as stack:
        stack.wait_healthy({"toxiproxy"}, timeout=120)
        proxies = compose_proxies(stack.containers()["toxiproxy"].labels)
        body = [{"name": p.name, "listen": p.listen, "upstream": p.upstream} for p in proxies]
        toxiproxy = stack.url("DRILLS_TOXIPROXY_PORT")
        created = httpx.post(f"{toxiproxy}/populate", json=body, timeout=10)
        assert created.status_code == 201, created.text
        stack.wait_healthy(set(TOPOLOGY.nodes) | {"toxiproxy"}, timeout=180)
        for name, container in stack.containers().items():
            if name in TOPOLOGY.nodes:
                assert container.labels["drills.zone"] == TOPOLOGY.zone_of(name)
                assert container.labels["drills.target"] == "true"
        upload = httpx.post(f"{stack.url('DRILLS_API_PORT')}/videos",
                            params={"title": "t", "client_id": "v-compose-1"}, content=b"bytes",
                            headers={"content-type": "application/octet-stream"},
                            timeout=15)  # fmt: skip
        assert upload.status_code in (200, 201), upload.text
        west = stack.url("DRILLS_STORE_WEST_PORT")
        _wait_video(west, "v-compose-1", timeout=20)  # replicated store-east -> west via toxiproxy
        stack.containers()["store-west"].kill()  # SIGKILL: the named volume must keep the data
        stack.containers()["store-west"].start()
        stack.wait_healthy({"store-west"}, timeout=120)
        _wait_video(west, "v-compose-1", timeout=20)
