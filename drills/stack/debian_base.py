"""What our images are made of where no registry can be reached: a Python base image built from
Debian packages, and a wheelhouse for that image's Python.

**Base.** Equivalent to ``python:3.11-slim`` for our purpose (Debian bookworm, CPython 3.11 with
``venv``, CA certificates, tzdata): ``debootstrap --variant=minbase`` into a scratch directory,
trimmed (docs, man pages, apt lists), packed as a tar and handed to ``docker import``. Three
caches, outermost first: the image (skip everything), the rootfs tar (import only), the ``.deb``
files (debootstrap without downloading), all under the caller's cache directory.

**Wheelhouse.** Every dependency as a wheel for the Python *inside* the base (`probe_python` asks
it: version, glibc, machine), fetched on the host with ``pip download --only-binary=:all:`` for
that platform; a dependency that only ships an sdist is built into a wheel on the host, and must
come out pure Python. Cached by requirements + target.

Touches: the host's package manager (``apt-get install debootstrap`` when it is missing, as root),
the Debian mirror and PyPI (HTTP), the Docker Engine. Raises `StackError` with the log tail of the
step that failed. Scratch directories are removed only after every mount under them is gone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import docker
import docker.errors

from drills.errors import StackError

Log = Callable[[str], None]

DEFAULT_MIRROR = "http://deb.debian.org/debian"
#: What python:3.11-slim has that we rely on: CPython with venv/ensurepip, certificates, zoneinfo,
#: /etc/services and /etc/protocols.
PACKAGES: tuple[str, ...] = ("python3", "python3-venv", "ca-certificates", "tzdata", "netbase")
#: Trimmed from the rootfs before it is packed: nothing at run time reads them.
TRIM: tuple[str, ...] = (
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
    "var/cache/apt", "var/lib/apt/lists", "var/log", "tmp",
)
PROBE = ("import json, platform, sys; print(json.dumps({'version': '%d.%d' % sys.version_info[:2],"
         " 'glibc': platform.libc_ver()[1], 'machine': platform.machine()}))")
IMPORT_CHANGES: tuple[str, ...] = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)


@dataclass(frozen=True, slots=True)
class DebianBase:
    """What to bootstrap: suite, mirror, extra packages. ``key`` names its cached artefacts."""

    suite: str = "bookworm"
    mirror: str = DEFAULT_MIRROR
    packages: tuple[str, ...] = PACKAGES

    @property
    def key(self) -> str:
        raw = json.dumps(asdict(self), sort_keys=True).encode()
        return f"{self.suite}-{hashlib.sha256(raw).hexdigest()[:12]}"


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file ('' if it cannot be read)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def run_logged(argv: Sequence[str], *, what: str, log_file: Path, timeout: float) -> None:
    """Run ``argv`` with its output appended to ``log_file``; `StackError` with the tail if it
    fails, cannot start, or outlives ``timeout`` seconds (it is killed then)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            proc = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StackError(f"{what} failed: {exc}", logs=log_tail(log_file)) from exc
    if proc.returncode != 0:
        raise StackError(f"{what} failed (exit {proc.returncode}; full log: {log_file})",
                         logs=log_tail(log_file))


def ensure_debootstrap(*, log: Log, log_file: Path) -> str:
    """The path of ``debootstrap``, installing it with apt-get first if it is missing.

    Installing needs root (CI runs as root); otherwise `StackError` says what to install.
    """
    found = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if found:
        return found
    if os.geteuid() != 0:
        raise StackError("debootstrap is missing and only root can install it: "
                         "run `sudo apt-get install debootstrap` and build again")
    log("debootstrap is missing: installing it with apt-get")
    env_argv = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
    install = [*env_argv, "install", "-y", "--no-install-recommends", "debootstrap"]
    try:
        run_logged(install, what="apt-get install debootstrap", log_file=log_file, timeout=600)
    except StackError:  # stale or missing package lists: refresh once and retry
        run_logged([*env_argv, "update"], what="apt-get update", log_file=log_file, timeout=600)
        run_logged(install, what="apt-get install debootstrap", log_file=log_file, timeout=600)
    found = shutil.which("debootstrap", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not found:
        raise StackError("apt-get installed debootstrap but it is not on the PATH",
                         logs=log_tail(log_file))
    return found


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root`` (deepest first), from /proc/self/mounts."""
    prefix = str(root.resolve())
    found: list[str] = []
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        for line in fh:
            point = line.split()[1].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def remove_tree(root: Path) -> None:
    """Remove a bootstrap directory, never following into something still mounted in it."""
    if not root.exists():
        return
    for point in _mounts_under(root):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    left = _mounts_under(root)
    if left:
        raise StackError(f"not removing {root}: still mounted there: {', '.join(left)}")
    shutil.rmtree(root)


def _trim(rootfs: Path, base: DebianBase) -> None:
    """Remove what no container reads, and leave apt pointed at the mirror."""
    for rel in TRIM:
        target = rootfs / rel
        if target.is_dir() and not target.is_symlink():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    (rootfs / "etc/apt/sources.list").write_text(f"deb {base.mirror} {base.suite} main\n")
    for name in ("etc/hostname", "etc/resolv.conf"):  # the engine provides both at run time
        path = rootfs / name
        if path.exists() or path.is_symlink():
            path.unlink()


def build_rootfs_tar(base: DebianBase, *, cache_dir: Path, log: Log) -> Path:
    """The rootfs of ``base`` as a tar under ``cache_dir/rootfs`` (built by debootstrap if absent).

    The tar appears atomically (written beside, then renamed), so a crash leaves no half tar.
    """
    tar = cache_dir / "rootfs" / f"{base.key}.tar"
    if tar.exists():
        log(f"rootfs {tar.name}: cached")
        return tar
    log_file = cache_dir / "logs" / f"debootstrap-{base.key}.log"
    log_file.unlink(missing_ok=True)
    debootstrap = ensure_debootstrap(log=log, log_file=log_file)
    debs = cache_dir / "debs" / base.suite
    debs.mkdir(parents=True, exist_ok=True)
    tar.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bootstrap-", dir=tar.parent))
    try:
        rootfs = scratch / "rootfs"
        log(f"debootstrap {base.suite} from {base.mirror} (+{','.join(base.packages)})")
        run_logged([debootstrap, "--variant=minbase", f"--include={','.join(base.packages)}",
                    f"--cache-dir={debs.resolve()}", "--components=main", base.suite,
                    str(rootfs), base.mirror],
                   what="debootstrap", log_file=log_file, timeout=1800)
        for point in _mounts_under(rootfs):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
        _trim(rootfs, base)
        partial = scratch / "rootfs.tar"
        run_logged(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(partial),
                    "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "."],
                   what="packing the rootfs", log_file=log_file, timeout=600)
        os.replace(partial, tar)
    finally:
        remove_tree(scratch)
    return tar


def import_rootfs(client: docker.DockerClient, tar: Path, *, tag: str,
                  labels: dict[str, str]) -> str:
    """``docker import`` the tar as ``tag`` (with PATH, LANG, CMD and ``labels``); its image id."""
    repository, _, version = tag.rpartition(":")
    changes = [*IMPORT_CHANGES, *(f"LABEL {k}={json.dumps(v)}" for k, v in labels.items())]
    try:
        client.api.import_image_from_file(str(tar), repository=repository, tag=version,
                                          changes=changes)
        return str(client.images.get(tag).id)
    except docker.errors.DockerException as exc:
        raise StackError(f"docker import of {tar} as {tag} failed: {exc}") from exc


def ensure_debian_base(client: docker.DockerClient, base: DebianBase, *, tag: str,
                       cache_dir: Path, labels: dict[str, str], log: Log) -> str:
    """Make sure image ``tag`` exists, building it from Debian packages if it does not.

    Returns how it was obtained: ``"image"`` (already there), ``"rootfs-cache"`` (imported from
    the cached tar) or ``"debootstrap"`` (bootstrapped now).
    """
    try:
        client.images.get(tag)
        log(f"base {tag}: present")
        return "image"
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.DockerException as exc:
        raise StackError(f"cannot inspect image {tag}: {exc}") from exc
    cached = (cache_dir / "rootfs" / f"{base.key}.tar").exists()
    tar = build_rootfs_tar(base, cache_dir=cache_dir, log=log)
    log(f"docker import {tar.name} as {tag}")
    import_rootfs(client, tar, tag=tag, labels=labels)
    return "rootfs-cache" if cached else "debootstrap"


@dataclass(frozen=True, slots=True)
class TargetPython:
    """The Python inside an image, as far as wheels care: ``3.11``, glibc ``2.36``, ``x86_64``."""

    version: str
    glibc: str
    machine: str

    def pip_args(self) -> list[str]:
        """``pip download`` flags selecting wheels this interpreter can install."""
        if not re.fullmatch(r"2\.\d+", self.glibc):
            raise StackError(f"cannot pick wheels for a libc other than glibc 2.x: {self.glibc!r}")
        minor = int(self.glibc.split(".")[1])
        platforms = [f"manylinux_2_{m}_{self.machine}" for m in range(minor, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        platforms += [f"{name}_{self.machine}" for m, name in legacy.items() if m <= minor]
        abi = "cp" + self.version.replace(".", "")
        return [*(f"--platform={p}" for p in platforms), f"--python-version={self.version}",
                "--implementation=cp", f"--abi={abi}", "--abi=abi3", "--abi=none"]


def probe_python(client: docker.DockerClient, image: str, *, cache_dir: Path) -> TargetPython:
    """Ask ``image``'s ``python3`` what it is (in a container without network); cached by id."""
    image_id = client.images.get(image).id.split(":")[-1]
    memo = cache_dir / "probe" / f"{image_id}.json"
    try:
        return TargetPython(**json.loads(memo.read_text()))
    except (OSError, ValueError, TypeError):
        pass
    try:
        out = client.containers.run(image, entrypoint=["python3", "-c", PROBE],
                                    network_mode="none", remove=True)
        target = TargetPython(**json.loads(out))
    except (docker.errors.DockerException, ValueError, TypeError) as exc:
        raise StackError(f"cannot run python3 in base image {image}: {exc}") from exc
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps(asdict(target)))
    return target


_NO_MATCH = re.compile(r"No matching distribution found for (\S+)")


def _pip(args: Sequence[str], *, what: str, log_file: Path) -> None:
    run_logged([sys.executable, "-m", "pip", *args], what=what, log_file=log_file, timeout=1800)


def _download(reqs: Sequence[str], dest: Path, target: TargetPython, *, pip_args: Sequence[str],
              log_file: Path, log: Log) -> None:
    """pip download binary wheels for ``target``; a requirement with only an sdist is built into a
    wheel on the host, which must come out pure Python (``*-none-any.whl``)."""
    built: set[str] = set()
    while True:
        start = log_file.stat().st_size if log_file.exists() else 0
        try:
            _pip(["download", "--dest", str(dest), "--only-binary=:all:", *target.pip_args(),
                  "--find-links", str(dest), *pip_args, *reqs],
                 what="pip download (wheelhouse)", log_file=log_file)
            return
        except StackError:
            with log_file.open(errors="replace") as fh:
                fh.seek(start)
                missing = _NO_MATCH.findall(fh.read())
            if not missing or missing[-1] in built or len(built) >= 8:
                raise
        req = missing[-1]
        log(f"{req}: no wheel for Python {target.version}; building one from its sdist")
        before = set(dest.glob("*.whl"))
        _pip(["wheel", "--no-deps", "--no-binary=:all:", "--wheel-dir", str(dest), *pip_args, req],
             what=f"pip wheel {req}", log_file=log_file)
        for wheel in set(dest.glob("*.whl")) - before:
            if not wheel.name.endswith("-none-any.whl"):
                wheel.unlink()
                raise StackError(f"{req} has no wheel for {target} and is not pure Python "
                                 f"(built {wheel.name})", logs=log_tail(log_file))
        built.add(req)


def fetch_wheelhouse(reqs: Sequence[str], target: TargetPython, *, cache_dir: Path, log: Log,
                     pip_args: Sequence[str] = ()) -> Path:
    """A directory holding wheels for ``reqs`` (and what they need) and ``requirements.txt``.

    Nothing is built in the image (its packages are copied, dependencies installed from wheels),
    so no build requirement goes in: an sdist-only dependency is built on the host.

    Cached under ``cache_dir/wheelhouse/<key>`` (key: requirements, target, ``pip_args``); built
    in a scratch directory and renamed into place, so a cached wheelhouse is always complete.
    """
    key_src = json.dumps([sorted(reqs), asdict(target), list(pip_args)])
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    house = cache_dir / "wheelhouse" / key
    if (house / "requirements.txt").is_file():
        log(f"wheelhouse {key}: cached")
        return house
    house.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{key}.partial-", dir=house.parent))
    scratch.chmod(0o755)
    log(f"wheelhouse {key}: pip download for Python {target.version} ({target.machine}, "
        f"glibc {target.glibc})")
    try:
        _download(reqs, scratch, target, pip_args=pip_args,
                  log_file=cache_dir / "logs" / f"wheelhouse-{key}.log", log=log)
        (scratch / "requirements.txt").write_text("".join(f"{r}\n" for r in reqs))
        try:
            scratch.rename(house)
        except OSError:  # another build finished the same wheelhouse first
            if not (house / "requirements.txt").is_file():
                raise
    finally:
        if scratch.exists():
            subprocess.run(["rm", "-rf", str(scratch)], check=False)
    return house
