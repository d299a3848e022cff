"""Container images for the ``docker`` provider, built with no registry: ``drill stack build``.

Four images, all labelled ``drills.namespace=<namespace>`` and ``drills.image=<role>``:

- base: ``python:3.11-slim`` when it is present or can be pulled; otherwise
  ``<ns>/debian-base:bookworm``, bootstrapped from Debian packages.
- ``<ns>/wheelhouse:<key>``: every runtime dependency of the installed distribution (less
  `drills.stack.app_context.HARNESS_ONLY`) as a wheel for the *base's* Python, fetched on the
  host (``pip download``), as a ``FROM scratch`` image that the app build ``COPY --from``-s.
  Base and wheelhouse are made by `drills.stack.debian_base`.
- ``<ns>/app:latest`` (`app_image`; ``dockerfiles/app.Dockerfile``): the installed distribution's
  packages and console scripts (`drills.stack.app_context`: read from what is installed, so a
  plain ``pip install`` builds it, no source tree needed), built with ``--network none`` from the
  base and the wheelhouse. Its build stage is kept as ``<ns>/app:build``: the cache of the
  dependency layer.
- ``<ns>/toxiproxy:latest`` (``dockerfiles/toxiproxy.Dockerfile``): our Toxiproxy-compatible
  server behind the official image's interface (``/toxiproxy``, ``/toxiproxy-cli list``).

Caches: the images themselves (Docker's layer cache: a second build with no change is all cache,
a package change reruns only the package layers), the rootfs tar, the ``.deb`` files and the
wheelhouse under `default_cache_dir`. Images a rebuild replaced are removed; `remove_images`
removes a whole namespace.

Also here, for the provider that runs Compose files: which compose command exists
(`compose_command`), which Toxiproxy image to run (`choose_toxiproxy_image`) and the proxies a
compose file declares in its labels (`compose_proxies`). Every failure is a `StackError` carrying
the tail of the step's log; full logs are kept under ``<cache>/logs``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import docker
import docker.errors

from drills.errors import SpecError, StackError
from drills.stack.app_context import DOCKERFILES, AppSource, write_context
from drills.stack.debian_base import (
    DebianBase,
    TargetPython,
    ensure_debian_base,
    fetch_wheelhouse,
    log_tail,
    probe_python,
)

Log = Callable[[str], None]

DEFAULT_BASE = "python:3.11-slim"
OFFICIAL_TOXIPROXY = "ghcr.io/shopify/toxiproxy:2.9.0"


def default_cache_dir() -> Path:
    """``$DRILLS_CACHE_DIR``, else ``$XDG_CACHE_HOME/drills``, else ``~/.cache/drills``."""
    if os.environ.get("DRILLS_CACHE_DIR"):
        return Path(os.environ["DRILLS_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "drills"


def app_image(namespace: str = "drills") -> str:
    """The tag of our app image in ``namespace`` (what `build_images` builds)."""
    return f"{namespace}/app:latest"


@dataclass(frozen=True, slots=True)
class Step:
    """One build step: what, how long, and how it went (``cached``, ``built``, ``pulled``...)."""

    name: str
    seconds: float
    outcome: str


@dataclass(frozen=True, slots=True)
class ToxiproxyImage:
    """The Toxiproxy image a compose stack runs, and why (``official`` if Shopify's)."""

    image: str
    official: bool
    reason: str


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What ``build_images`` produced. ``compose_env()`` is what docker-compose needs to run it."""

    base_image: str
    base_source: str  # "present" | "pulled" | "image" | "rootfs-cache" | "debootstrap"
    app_image: str
    toxiproxy_image: str
    wheels_image: str
    target: TargetPython
    toxiproxy: ToxiproxyImage
    seconds: float
    steps: tuple[Step, ...] = field(default=())

    def compose_env(self) -> dict[str, str]:
        return {"DRILLS_IMAGE": self.app_image, "TOXIPROXY_IMAGE": self.toxiproxy.image}

    def __str__(self) -> str:
        t = self.target
        lines = [f"images built in {self.seconds:.1f} s",
                 f"  base       {self.base_image} ({self.base_source}; Python {t.version}, "
                 f"glibc {t.glibc}, {t.machine})",
                 f"  wheels     {self.wheels_image}", f"  app        {self.app_image}",
                 f"  toxiproxy  {self.toxiproxy.image} ({self.toxiproxy.reason})"]
        lines += [f"  step {s.name:<12} {s.seconds:6.1f} s  {s.outcome}" for s in self.steps]
        return "\n".join(lines)


@contextmanager
def docker_client(timeout: float = 900.0) -> Iterator[docker.DockerClient]:
    """A Docker SDK client that has answered a ping; closed on exit."""
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as exc:
        raise StackError(f"no Docker Engine reachable: {exc}") from exc
    try:
        yield client
    finally:
        client.close()


def _image_id(client: docker.DockerClient, name: str) -> str | None:
    """The id of image ``name``, None if there is none."""
    try:
        return str(client.images.get(name).id)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.DockerException as exc:
        raise StackError(f"cannot inspect image {name}: {exc}") from exc


def try_pull(client: docker.DockerClient, name: str) -> str | None:
    """Pull ``name``; None on success, else the engine's reason (no registry is not an error)."""
    repository, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "")
    try:
        client.images.pull(repository, tag=tag or "latest")
        return None
    except docker.errors.DockerException as exc:  # the engine's own words: "dial tcp: ..."
        return str(getattr(exc, "explanation", None) or exc).splitlines()[0][:300]


@dataclass(frozen=True, slots=True)
class BuildResult:
    """One ``docker build``: the image, whether every step came from the cache, and the last
    image of each stage before the final one (``stages[-1]``: the stage the final one copies)."""

    image_id: str
    cached: bool
    stages: tuple[str, ...]


_IMAGE_LINE = re.compile(r"^ ---> ([0-9a-f]{12})$")


def docker_build(client: docker.DockerClient, *, tag: str, log: Log, log_file: Path,
                 path: Path | None = None, fileobj: object = None, dockerfile: str = "Dockerfile",
                 buildargs: Mapping[str, str] | None = None,
                 labels: Mapping[str, str] | None = None) -> BuildResult:
    """Build ``tag`` with the classic builder and no network (the context is sent once).

    The build log goes to ``log_file``; steps that do not come from cache go to ``log``.
    `StackError` with the tail of the log on any build error.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cached, t0, step, hit = True, time.monotonic(), "", False
    stages: list[str] = []
    last = ""
    with log_file.open("a", encoding="utf-8") as out:
        out.write(f"--- build {tag}\n")
        try:
            for chunk in client.api.build(
                path=None if path is None else str(path), fileobj=fileobj,
                custom_context=fileobj is not None, dockerfile=dockerfile, tag=tag,
                buildargs=dict(buildargs or {}), labels=dict(labels or {}),
                network_mode="none", rm=True, forcerm=True, pull=False, decode=True,
            ):
                text = chunk.get("stream", "")
                out.write(text)
                for line in text.splitlines():  # log only the steps that do not come from cache
                    if line.startswith("Step "):
                        step, hit = line, False
                        if " : FROM " in line and last:
                            stages.append(last)
                    elif m := _IMAGE_LINE.match(line):
                        last = m.group(1)
                    elif line.startswith(" ---> Using cache"):
                        hit = True
                    elif line.startswith(" ---> ") and step and not hit and " : FROM " not in step:
                        log(f"  {tag} +{time.monotonic() - t0:5.1f}s {step[:100]}")
                        step, cached = "", False
                if "error" in chunk:
                    out.write(f"ERROR: {chunk['error']}\n")
                    out.flush()
                    raise StackError(f"docker build of {tag} failed: {chunk['error'].strip()}",
                                     logs=log_tail(log_file))
        except docker.errors.DockerException as exc:
            out.write(f"ERROR: {exc}\n")
            out.flush()
            tail = log_tail(log_file)
            raise StackError(f"docker build of {tag} failed: {exc}", logs=tail) from exc
    try:
        return BuildResult(str(client.images.get(tag).id), cached, tuple(stages))
    except docker.errors.DockerException as exc:
        raise StackError(f"docker build of {tag} left no image: {exc}") from exc


def build_wheels_image(client: docker.DockerClient, house: Path, *, tag: str,
                       labels: Mapping[str, str], log: Log, log_file: Path) -> str:
    """``FROM scratch`` + the wheelhouse at /wheels (``dockerfiles/wheelhouse.Dockerfile``),
    unless ``tag`` exists already (the tag names the wheelhouse's cache key)."""
    ours = client.images.list(filters={"label": f"drills.namespace={labels['drills.namespace']}"})
    stale = [i for i in ours if i.labels.get("drills.image") == "wheelhouse" and tag not in i.tags]
    for image in stale:  # wheelhouses of older requirements: nothing builds from them any more
        with contextlib.suppress(docker.errors.DockerException):
            client.images.remove(image.id, force=True)
    if _image_id(client, tag):
        log(f"{tag}: present")
        return "cached"
    with tempfile.TemporaryFile() as ctx:
        with tarfile.open(fileobj=ctx, mode="w") as tar:
            tar.add(DOCKERFILES / "wheelhouse.Dockerfile", arcname="Dockerfile")
            for item in sorted(house.iterdir()):
                tar.add(item, arcname=item.name)
        ctx.seek(0)
        docker_build(client, tag=tag, fileobj=ctx, labels=labels, log=log, log_file=log_file)
    return "built"


def _drop_if_dangling(client: docker.DockerClient, old_id: str) -> None:
    """Remove an image a rebuild replaced, if nothing tags it any more (ignored when in use)."""
    try:
        if not client.images.get(old_id).tags:
            client.images.remove(old_id)
    except docker.errors.DockerException:
        pass


def resolve_base(client: docker.DockerClient, base_image: str | None, *, offline: bool,
                 namespace: str, cache_dir: Path, debian: DebianBase,
                 log: Log) -> tuple[str, str]:
    """(base image, how it was obtained). An explicit ``base_image`` must exist or be pullable;
    the default falls back to Debian packages when ``python:3.11-slim`` cannot be had."""
    wanted = base_image or DEFAULT_BASE
    if not offline or base_image:
        if _image_id(client, wanted):
            return wanted, "present"
        reason = try_pull(client, wanted)
        if reason is None:
            return wanted, "pulled"
        if base_image:
            raise StackError(f"base image {base_image} is absent and cannot be pulled: {reason}")
        log(f"{wanted} cannot be pulled ({reason}); building the base from Debian packages")
    tag = f"{namespace}/debian-base:{debian.suite}"
    how = ensure_debian_base(client, debian, tag=tag, cache_dir=cache_dir,
                             labels=_labels(namespace, "base"), log=log)
    return tag, how


def choose_toxiproxy_image(client: docker.DockerClient, *, namespace: str = "drills",
                           pull: bool = True, official: str | None = None) -> ToxiproxyImage:
    """Shopify's image (``$DRILLS_TOXIPROXY_OFFICIAL`` or `OFFICIAL_TOXIPROXY`) if present or
    pullable, else ours (``<ns>/toxiproxy:latest``, which `build_images` makes)."""
    name = official or os.environ.get("DRILLS_TOXIPROXY_OFFICIAL") or OFFICIAL_TOXIPROXY
    if _image_id(client, name):
        return ToxiproxyImage(name, True, "official image, present")
    reason = try_pull(client, name) if pull else "not pulling (offline)"
    if reason is None:
        return ToxiproxyImage(name, True, "official image, pulled")
    return ToxiproxyImage(f"{namespace}/toxiproxy:latest", False,
                          f"our compatible server: {name} unavailable: {reason}")


def _labels(namespace: str, role: str) -> dict[str, str]:
    """Labels of every image we build (each build-time label costs a build step: keep two)."""
    return {"drills.namespace": namespace, "drills.image": role}


def _toxiproxy_context(fileobj: IO[bytes]) -> None:
    with tarfile.open(fileobj=fileobj, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        data = (DOCKERFILES / "toxiproxy.Dockerfile").read_bytes()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _build_role(client: docker.DockerClient, role: str, context: Callable[[IO[bytes]], None], *,
                namespace: str, args: Mapping[str, str], logs: Path, log: Log, steps: list[Step],
                replaced: list[str]) -> str:
    """Build ``<namespace>/<role>:latest`` from the context ``context`` writes (a tar); the ids
    of images it replaced are appended to ``replaced``."""
    t0 = time.monotonic()
    tag = f"{namespace}/{role}:latest"
    olds = {name: _image_id(client, name) for name in (tag, f"{namespace}/{role}:build")}
    with tempfile.TemporaryFile() as ctx:
        context(ctx)
        ctx.seek(0)
        built = docker_build(client, fileobj=ctx, tag=tag, buildargs=args, log=log,
                             log_file=logs / f"build-{role}.log")
    if role == "app" and built.stages:
        # The build stage is tagged too (``:build``): it holds the dependency layers (the cache
        # of the next build), and a tag lets the stage a rebuild replaced be removed.
        client.images.get(built.stages[-1]).tag(f"{namespace}/{role}", "build")
    replaced.extend(old for name, old in olds.items() if old and old != _image_id(client, name))
    got = client.images.get(built.image_id).labels or {}
    if got.get("drills.namespace") != namespace or got.get("drills.image") != role:
        raise StackError(f"{role}.Dockerfile must label the image drills.namespace={namespace} "
                         f"and drills.image={role} (found {got})")  # fmt: skip
    steps.append(Step(role, round(time.monotonic() - t0, 2), "cached" if built.cached else "built"))
    return tag


def build_images(*, base_image: str | None = None, offline: bool = False,
                 namespace: str = "drills", cache_dir: Path | None = None,
                 debian: DebianBase | None = None, source: AppSource | None = None,
                 log: Log = print) -> BuildReport:
    """Build every image a Compose stack of ours runs, pulling nothing unless it can (see module).

    ``offline`` never pulls (the Debian path, and our Toxiproxy); ``namespace`` prefixes every
    tag (tests use their own); ``debian`` overrides suite/mirror/packages of the Debian base;
    ``source`` is what the app image holds (default: the installed ``drills`` distribution).
    Raises `SpecError` for a namespace Docker would refuse, `StackError` for everything else.
    """
    if not re.fullmatch(r"[a-z0-9]+(?:[._-][a-z0-9]+)*", namespace):
        raise SpecError(f"image namespace {namespace!r}: lowercase letters, digits, . _ - only")
    started = time.monotonic()
    app_source = source or AppSource.installed()
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    logs = cache / "logs"
    steps: list[Step] = []

    def step(name: str, t0: float, outcome: str) -> None:
        steps.append(Step(name, round(time.monotonic() - t0, 2), outcome))

    with docker_client() as client:
        t0 = time.monotonic()
        base, base_source = resolve_base(client, base_image, offline=offline, namespace=namespace,
                                         cache_dir=cache, debian=debian or DebianBase(),
                                         log=log)
        step("base", t0, f"{base} ({base_source})")
        t0 = time.monotonic()
        target = probe_python(client, base, cache_dir=cache)
        house = fetch_wheelhouse(app_source.requirements, target, cache_dir=cache, log=log)
        wheels = f"{namespace}/wheelhouse:{house.name[:12]}"
        outcome = build_wheels_image(client, house, tag=wheels, log=log,
                                     labels=_labels(namespace, "wheelhouse"),
                                     log_file=logs / "build-wheelhouse.log")
        step("wheelhouse", t0, outcome)
        app_args = {"BASE_IMAGE": base, "WHEELS_IMAGE": wheels, "DRILLS_NAMESPACE": namespace}
        replaced: list[str] = []
        app = _build_role(client, "app", lambda f: write_context(app_source, f), args=app_args,
                          namespace=namespace, logs=logs, log=log, steps=steps, replaced=replaced)
        ours = _build_role(client, "toxiproxy", _toxiproxy_context, args={"APP_IMAGE": app},
                           namespace=namespace, logs=logs, log=log, steps=steps, replaced=replaced)
        for old in reversed(replaced):  # children first: an image with children cannot go
            _drop_if_dangling(client, old)
        toxiproxy = choose_toxiproxy_image(client, namespace=namespace, pull=not offline)
    return BuildReport(base_image=base, base_source=base_source, app_image=app,
                       toxiproxy_image=ours, wheels_image=wheels, target=target,
                       toxiproxy=toxiproxy, seconds=round(time.monotonic() - started, 2),
                       steps=tuple(steps))


def remove_images(client: docker.DockerClient, namespace: str) -> int:
    """Remove every image built under ``namespace`` (and its dangling build stages); how many."""
    with contextlib.suppress(docker.errors.ImageNotFound):  # unlabelled if the base is not ours
        client.images.remove(f"{namespace}/app:build", force=True)
    flt = {"label": f"drills.namespace={namespace}"}
    order = {"toxiproxy": 0, "app": 1, "wheelhouse": 2, "base": 3}
    images = sorted(client.images.list(filters=flt),
                    key=lambda i: order.get(i.labels.get("drills.image", ""), 9))
    for image in images:
        try:
            client.images.remove(image.id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as exc:
            raise StackError(f"cannot remove image {image.tags or image.id}: {exc}") from exc
    pruned = client.images.prune(filters={**flt, "dangling": True}).get("ImagesDeleted") or []
    return len(images) + len(pruned)


def compose_command() -> tuple[str, ...]:
    """``("docker", "compose")`` if the plugin answers, else ``("docker-compose",)``."""
    for argv in (("docker", "compose"), ("docker-compose",)):
        try:
            done = subprocess.run([*argv, "version"], capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return argv
    raise StackError("neither `docker compose` nor `docker-compose` is installed")


@dataclass(frozen=True, slots=True)
class ComposeProxy:
    """A proxy the compose file declares: Toxiproxy ``name`` (``a_to_b``), ``link`` (``a->b``)."""

    name: str
    listen: str
    upstream: str

    @property
    def link(self) -> str:
        return self.name.replace("_to_", "->", 1)


def compose_proxies(labels: Mapping[str, str]) -> tuple[ComposeProxy, ...]:
    """Proxies from ``drills.proxy.<name>: listen=HOST:PORT,upstream=HOST:PORT`` labels (on the
    toxiproxy service of docker-compose.yml, or on its running container)."""
    found: list[ComposeProxy] = []
    for key, value in sorted(labels.items()):
        if not key.startswith("drills.proxy."):
            continue
        fields = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
        if set(fields) != {"listen", "upstream"} or not all(fields.values()):
            raise StackError(f"label {key}={value!r}: expected listen=HOST:PORT,upstream=HOST:PORT")
        name = key.removeprefix("drills.proxy.")
        found.append(ComposeProxy(name, fields["listen"], fields["upstream"]))
    return tuple(found)
