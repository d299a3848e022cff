"""What the app image holds, read from the INSTALLED distribution, and its build context.

The app image (``<ns>/app:latest``) carries the Python packages of the installed ``drills``
distribution (its top-level packages, whatever they are), its console scripts and its runtime
dependencies. Everything comes from ``importlib.metadata`` and the package directories on disk,
never from a source tree, so an editable install and a plain ``pip install`` build the same
image:

- packages: the distribution's ``top_level.txt`` (else the top level of its ``RECORD``),
  located where the distribution installed them (else where Python imports them from: an
  editable install);
- console scripts: its ``console_scripts`` entry points, written as small launchers for the
  image's venv;
- requirements: ``requires()`` less extras and less `HARNESS_ONLY`, which no container runs.

`write_context` packs all of it, with the Dockerfile and the build-time import check, into a tar
whose bytes depend only on the files' contents (owner, mode and mtime normalised): an unchanged
package is a cache hit in Docker's layer cache wherever it was installed. Raises `StackError`
when the distribution or one of its packages cannot be found.
"""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import io
import json
import re
import shutil
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from drills.errors import StackError

DISTRIBUTION = "drills"
#: Dependencies of the harness that no container runs (the load generator, plots, the test
#: runner): left out of the image, which would otherwise carry numpy, gevent, zmq... The build
#: imports every module of the image's packages: one that fails for lack of these (or of what only
#: they need) is harness-only and skipped; any other failure fails the build, not a drill.
HARNESS_ONLY: tuple[str, ...] = ("pytest", "locust", "matplotlib")
#: Modules that must import in the image whatever they need: the servers it runs.
SERVERS: tuple[str, ...] = ("drills.toxiproxy",)
DOCKERFILES = Path(__file__).resolve().parent / "dockerfiles"
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def canonical(requirement: str) -> str:
    """The normalised project name of a requirement string (``Foo.Bar>=1`` -> ``foo-bar``)."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", name.group(1)).lower() if name else requirement


def _extras(requirement: str) -> set[str]:
    found = re.match(r"\s*[A-Za-z0-9][A-Za-z0-9._-]*\s*\[([^\]]*)\]", requirement)
    return {canonical(e) for e in found.group(1).split(",") if e.strip()} if found else set()


def installed_distribution(name: str = DISTRIBUTION) -> metadata.Distribution:
    """The installed distribution ``name``: one an installer recorded (a source tree's stale
    ``*.egg-info`` on the path, seen when running from a checkout, comes last)."""
    found = list(metadata.distributions(name=name))
    if not found:
        raise StackError(f"distribution {name!r} is not installed: pip install it first")
    recorded = [d for d in found if d.read_text("INSTALLER") is not None]
    return (recorded or found)[0]


def runtime_requirements(dist: metadata.Distribution, *, exclude: Sequence[str] = ()
                         ) -> tuple[str, ...]:  # fmt: skip
    """``dist``'s requirements without extras' and without ``exclude`` (names, any spelling)."""
    dropped = {canonical(name) for name in exclude}
    return tuple(r for r in dist.requires or ()
                 if not _EXTRA.search(r) and canonical(r) not in dropped)  # fmt: skip


def _top_modules(dist: metadata.Distribution) -> list[str]:
    """Top-level import names of ``dist``: top_level.txt, else the first parts of RECORD."""
    listed = (dist.read_text("top_level.txt") or "").split()
    if listed:
        return listed
    names: dict[str, None] = {}
    for file in dist.files or ():
        top = file.parts[0]
        if len(file.parts) == 1 and not top.endswith(".py"):
            continue
        top = top.removesuffix(".py")
        if top.isidentifier() and not top.startswith("__"):
            names[top] = None
    return list(names)


def _closure(requirements: Iterable[str]) -> set[str]:
    """Installed distributions ``requirements`` need, transitively (host metadata; markers other
    than extras are ignored: this over-approximates, which only narrows what is left out)."""
    seen: set[str] = set()
    todo = [(canonical(r), _extras(r)) for r in requirements]
    while todo:
        name, extras = todo.pop()
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            reqs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for req in reqs:
            extra = _EXTRA.search(req)
            if extra is None or canonical(extra.group(1)) in extras:
                todo.append((canonical(req), _extras(req)))
    return {key.split("[", 1)[0] for key in seen}


def left_out_modules(requirements: Sequence[str], exclude: Sequence[str]) -> tuple[str, ...]:
    """Top-level modules of what ``exclude`` needs and ``requirements`` do not."""
    names: set[str] = set()
    for name in _closure(exclude) - _closure(requirements):
        try:
            names.update(_top_modules(metadata.distribution(name)))
        except metadata.PackageNotFoundError:
            continue
    names.update(canonical(n).replace("-", "_") for n in exclude)
    return tuple(sorted(names))


def _locate(dist: metadata.Distribution, top: str) -> Path:
    """Where package or module ``top`` of ``dist`` lives: where ``dist`` installed it, else
    (editable install) where Python imports it from."""
    for rel in (top, f"{top}.py"):
        if any(f.parts[0] == rel for f in dist.files or ()):
            path = Path(str(dist.locate_file(rel)))
            if path.exists():
                return path
    spec = importlib.util.find_spec(top)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    if spec is not None and spec.origin and spec.origin.endswith(".py"):
        return Path(spec.origin)
    raise StackError(f"cannot find package {top!r} of distribution {dist.metadata['Name']!r}")


@dataclass(frozen=True, slots=True)
class AppSource:
    """What the app image is made of: ``packages`` (top-level name -> package directory or
    module file), ``scripts`` (console script -> ``module:attr``), ``requirements`` (for the
    wheelhouse), ``left_out`` (modules of the distributions left out, for the import check)."""

    distribution: str
    packages: Mapping[str, Path]
    scripts: Mapping[str, str]
    requirements: tuple[str, ...]
    left_out: tuple[str, ...]

    @classmethod
    def installed(cls, name: str = DISTRIBUTION, *,
                  exclude: Sequence[str] = HARNESS_ONLY) -> AppSource:  # fmt: skip
        """Read from the installed distribution ``name`` (see the module docstring)."""
        dist = installed_distribution(name)
        requirements = runtime_requirements(dist, exclude=exclude)
        return cls(
            distribution=name,
            packages={top: _locate(dist, top) for top in _top_modules(dist)},
            scripts={ep.name: ep.value.split("[")[0].strip() for ep in dist.entry_points
                     if ep.group == "console_scripts"},
            requirements=requirements,
            left_out=left_out_modules(requirements, exclude),
        )  # fmt: skip

    def snapshot(self, dest: Path) -> AppSource:
        """The same, with every package copied under ``dest`` (frozen against later edits)."""
        moved: dict[str, Path] = {}
        for top, path in self.packages.items():
            target = dest / path.name
            if path.is_dir():
                shutil.copytree(path, target, ignore=_SKIP)
            else:
                shutil.copy2(path, target)
            moved[top] = target
        return replace(self, packages=moved)


def launcher(target: str) -> str:
    """A console script for the image's venv calling ``module:attr`` (as pip would write it)."""
    module, _, attr = target.partition(":")
    shebang = "#!/opt/venv/bin/python\n"
    if not attr:
        return f"{shebang}import runpy\nrunpy.run_module({module!r}, run_name='__main__')\n"
    return (f"{shebang}import sys\nfrom {module} import {attr.split('.')[0]}\n\n"
            f"if __name__ == '__main__':\n    sys.exit({attr}())\n")


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Owner, mtime and mode that do not depend on the machine (None: leave the file out)."""
    parts = info.name.split("/")
    if "__pycache__" in parts or info.name.endswith((".pyc", ".pyo")):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def write_context(source: AppSource, fileobj: IO[bytes]) -> None:
    """The app image's build context, as a tar into ``fileobj``: ``Dockerfile``, ``app/`` (the
    packages and ``bin/`` launchers: /opt/app) and ``check/`` (the import check)."""
    spec = {"packages": sorted(source.packages), "scripts": dict(sorted(source.scripts.items())),
            "left_out": list(source.left_out),
            "required": sorted({*SERVERS, *(t.partition(":")[0] for t in source.scripts.values())})}
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "Dockerfile", (DOCKERFILES / "app.Dockerfile").read_bytes())
        for top, path in sorted(source.packages.items()):
            if not path.exists():
                raise StackError(f"package {top} is gone from {path}")
            arcname = f"app/{top}" if path.is_dir() else f"app/{top}.py"
            tar.add(path, arcname=arcname, filter=_normalise)
        for name, target in sorted(source.scripts.items()):
            _add_bytes(tar, f"app/bin/{name}", launcher(target).encode(), mode=0o755)
        _add_bytes(tar, "check/check_app.py", (DOCKERFILES / "check_app.py").read_bytes())
        _add_bytes(tar, "check/app.json", json.dumps(spec, indent=1).encode())
