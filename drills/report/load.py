"""Read a run directory back: the `Journal` from ``journal.json``, the request record, and
`regenerate` to rewrite every report from them (``drill report RUN_DIR``).

`journal_from_dict` is the inverse of `Journal.to_dict`: ``journal_from_dict(d).to_dict() == d``
for every journal the engine writes (numbers keep their JSON type, so a rewritten journal and
the reports rendered from it are identical). Malformed input raises `SpecError` naming the file
and the offending field; nothing here writes except `regenerate`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from drills.checks.frame import RequestFrame
from drills.errors import EnvironmentError_, SpecError
from drills.journal import JOURNAL_FILE, Journal, Objective, PhaseRecord
from drills.model import CheckResult, FaultRecord, Request, read_jsonl
from drills.report.html import write_html
from drills.report.junit import write_junit
from drills.report.markdown import write_markdown

REQUESTS_FILE = "requests.jsonl"
HISTORY_FILE = "history.jsonl"
MARKDOWN_FILE = "report.md"
JUNIT_FILE = "junit.xml"
HTML_FILE = "report.html"

V = TypeVar("V")


class _Bad(ValueError):
    """A field of the journal has the wrong shape (internal; becomes a `SpecError`)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def _get(d: Mapping[str, Any], key: str, where: str, *, default: Any = ...) -> Any:
    if not isinstance(d, Mapping):
        raise _Bad(where, f"expected an object, got {type(d).__name__}")
    if key not in d:
        if default is ...:
            raise _Bad(f"{where}.{key}".lstrip("."), "missing")
        return default
    return d[key]


def _typed(value: Any, types: tuple[type, ...], field: str, *, optional: bool = False) -> Any:
    """``value`` itself if it has one of ``types`` (never a bool posing as a number)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) and bool not in types:
        raise _Bad(field, f"expected {'/'.join(t.__name__ for t in types)}, got a boolean")
    if not isinstance(value, types):
        raise _Bad(field, f"expected {'/'.join(t.__name__ for t in types)}, "
                          f"got {type(value).__name__}")
    return value


NUM = (int, float)


def _items(d: Mapping[str, Any], key: str, build: Callable[[Any, str], V]) -> list[V]:
    raw = _get(d, key, "", default=[])
    if not isinstance(raw, list):
        raise _Bad(key, f"expected a list, got {type(raw).__name__}")
    return [build(item, f"{key}[{i}]") for i, item in enumerate(raw)]


def _phase(d: Any, at: str) -> PhaseRecord:
    return PhaseRecord(
        name=_typed(_get(d, "name", at), (str,), f"{at}.name"),
        started_at=_typed(_get(d, "started_at", at), NUM, f"{at}.started_at"),
        ended_at=_typed(_get(d, "ended_at", at, default=None), NUM, f"{at}.ended_at",
                        optional=True),
    )


def _fault(d: Any, at: str) -> FaultRecord:
    return FaultRecord(
        id=_typed(_get(d, "id", at), (str,), f"{at}.id"),
        kind=_typed(_get(d, "kind", at), (str,), f"{at}.kind"),
        target=_typed(_get(d, "target", at), (str,), f"{at}.target"),
        scheduled_at=_typed(_get(d, "scheduled_at", at), NUM, f"{at}.scheduled_at"),
        injected_at=_typed(_get(d, "injected_at", at), NUM, f"{at}.injected_at"),
        reverted_at=_typed(_get(d, "reverted_at", at, default=None), NUM, f"{at}.reverted_at",
                           optional=True),
        detail=_typed(_get(d, "detail", at, default={}), (dict,), f"{at}.detail"),
    )


def _objective(d: Any, at: str) -> Objective:
    return Objective(
        name=_typed(_get(d, "name", at), (str,), f"{at}.name"),
        target=_typed(_get(d, "target", at), (str,), f"{at}.target"),
        measured=_typed(_get(d, "measured", at), (str,), f"{at}.measured"),
        passed=_typed(_get(d, "passed", at), (bool,), f"{at}.passed", optional=True),
    )


def _check(d: Any, at: str) -> CheckResult:
    try:
        return CheckResult.from_dict(d)
    except SpecError as exc:
        raise _Bad(f"{at}.{exc.field}" if exc.field else at, exc.message) from exc


def _str_map(d: Mapping[str, Any], key: str, types: tuple[type, ...]) -> dict[str, Any]:
    raw = _typed(_get(d, key, "", default={}), (dict,), key)
    return {str(k): _typed(v, types, f"{key}.{k}") for k, v in raw.items()}


def _journal(d: Mapping[str, Any]) -> Journal:
    return Journal(
        drill=_typed(_get(d, "drill", ""), (str,), "drill"),
        description=_typed(_get(d, "description", "", default=""), (str,), "description"),
        provider=_typed(_get(d, "provider", "", default=""), (str,), "provider"),
        expect=_typed(_get(d, "expect", "", default="pass"), (str,), "expect"),
        spec=_typed(_get(d, "spec", "", default={}), (dict,), "spec"),
        started_at=_typed(_get(d, "started_at", ""), NUM, "started_at"),
        verdict=_typed(_get(d, "verdict", "", default="error"), (str,), "verdict"),
        as_expected=_typed(_get(d, "as_expected", "", default=None), (bool,), "as_expected",
                           optional=True),
        finished_at=_typed(_get(d, "finished_at", "", default=None), NUM, "finished_at",
                           optional=True),
        load_started_at=_typed(_get(d, "load_started_at", "", default=None), NUM,
                               "load_started_at", optional=True),
        phases=_items(d, "phases", _phase),
        faults=_items(d, "faults", _fault),
        baseline=_str_map(d, "baseline", NUM),
        objectives=_items(d, "objectives", _objective),
        metrics=_typed(_get(d, "metrics", "", default={}), (dict,), "metrics"),
        checks=_items(d, "checks", _check),
        error=_typed(_get(d, "error", "", default=None), (str,), "error", optional=True),
        environment=_str_map(d, "environment", (str,)),
        target=_typed(_get(d, "target", "", default=""), (str,), "target"),
        classes=tuple(_typed(c, (str,), f"classes[{i}]")
                      for i, c in enumerate(_typed(_get(d, "classes", "", default=[]),
                                                   (list,), "classes"))),
    )


def journal_from_dict(d: Mapping[str, Any], *, source: str = JOURNAL_FILE) -> Journal:
    """Rebuild a `Journal` (with its `PhaseRecord`, `FaultRecord`, `Objective` and
    `CheckResult` records) from `Journal.to_dict` output.

    Keys the engine may not have written yet (``finished_at``, ``checks``, ...) take the
    dataclass defaults; ``drill`` and ``started_at`` are required. Raises `SpecError` with
    ``source`` and the dotted field for a missing required key or a value of the wrong type.
    """
    try:
        return _journal(d)
    except _Bad as exc:
        raise SpecError(str(exc), source=source, field=exc.field) from exc


def load_journal(run_dir: Path) -> Journal:
    """Read ``run_dir/journal.json``. Raises `SpecError` (naming the path) if the directory
    has none, it is not JSON, or it is not a journal."""
    path = Path(run_dir) / JOURNAL_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SpecError(f"no {JOURNAL_FILE} here: not a run directory",
                        source=str(run_dir)) from exc
    except OSError as exc:
        raise SpecError(f"cannot read: {exc}", source=str(path)) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"not JSON: {exc}", source=str(path)) from exc
    if not isinstance(data, dict):
        raise SpecError(f"expected a JSON object, got {type(data).__name__}", source=str(path))
    return journal_from_dict(data, source=str(path))


def load_requests(run_dir: Path) -> list[Request] | None:
    """The request record ``run_dir/requests.jsonl`` sorted by start time, or None if the run
    has none (it ended before the load). Raises `SpecError` for a malformed line."""
    path = Path(run_dir) / REQUESTS_FILE
    if not path.exists():
        return None
    try:
        return sorted(read_jsonl(path, Request), key=lambda r: r.t)
    except OSError as exc:
        raise SpecError(f"cannot read: {exc}", source=str(path)) from exc


def load_frame(run_dir: Path) -> RequestFrame | None:
    """`load_requests` as columns (`RequestFrame`): what the reports plot, in bounded
    memory. Raises `SpecError` for a malformed line."""
    from drills.runstore import read_frame

    path = Path(run_dir) / REQUESTS_FILE
    return read_frame([path]) if path.exists() else None


def regenerate(run_dir: Path) -> list[Path]:
    """Rewrite ``report.md``, ``junit.xml`` and ``report.html`` of ``run_dir`` from its
    ``journal.json`` and ``requests.jsonl`` (``drill report RUN_DIR``); return their paths.

    ``journal.json`` itself is only read, never rewritten: it is the record, the reports are
    renderings of it. Raises `SpecError` for a directory that is not a run directory, and
    `EnvironmentError_` if a report cannot be written.
    """
    run_dir = Path(run_dir)
    journal = load_journal(run_dir)
    requests = load_frame(run_dir)
    md, junit, html = run_dir / MARKDOWN_FILE, run_dir / JUNIT_FILE, run_dir / HTML_FILE
    try:
        write_markdown(md, journal)
        write_junit(junit, [journal])
        write_html(html, journal, requests)
    except OSError as exc:
        raise EnvironmentError_(f"cannot write the reports into {run_dir}: {exc}") from exc
    return [md, junit, html]
