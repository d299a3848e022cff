"""``drill init DIR``: a starter drill file, locustfile and Compose file for a new system.

The files are package data (``drills/templates/init``); nothing is overwritten unless
``force``. They validate as they are written (``drill validate DIR/drill.yaml``), so the first
edit starts from something that works.
"""

from __future__ import annotations

from pathlib import Path

from drills.errors import SpecError

TEMPLATES = Path(__file__).parent / "templates" / "init"
FILES = ("drill.yaml", "locustfile.py", "docker-compose.yml")


def write_starter(directory: Path, *, force: bool = False) -> list[Path]:
    """Write `FILES` into ``directory`` (created); `SpecError` naming the files that exist
    (and writing none) unless ``force``."""
    directory = Path(directory)
    targets = [directory / name for name in FILES]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        raise SpecError(f"{', '.join(existing)} exist(s): use --force to overwrite",
                        source=str(directory))
    directory.mkdir(parents=True, exist_ok=True)
    for name, path in zip(FILES, targets, strict=True):
        path.write_text((TEMPLATES / name).read_text(encoding="utf-8"), encoding="utf-8")
    return targets
