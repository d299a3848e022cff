"""Where drills come from: built-in drills by name, drill files by path, ``--set`` overrides.

This is the edge where text becomes a `DrillSpec`: YAML is parsed here (safe loader, duplicate
keys refused), overrides are applied to the raw mapping, relative paths in the file are resolved
against the file's directory, and pydantic's errors are translated into one `SpecError` naming
the source (file path, or ``--set`` when an override caused it), the dotted field
(``timeline.faults[0].power_down``) and what was expected. Nothing raw leaves this module.

The target's names that the spec cannot know (ClipStream's bug names, `BUGS`) are given to
validation here, as its context (`drills.spec.BUGS_CONTEXT`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticUndefined

from drills import spec
from drills.duration import format_duration
from drills.errors import SpecError, show_value
from drills.spec import BUGS_CONTEXT, DrillSpec, StackConfig, did_you_mean, unknown
from drills.stack.clipstream import BUGS

_SET = "--set"
_KEY = re.compile(r"^[A-Za-z_][\w-]*(\[\d+\])*(\.[A-Za-z_][\w-]*(\[\d+\])*)*$")
_PART = re.compile(r"([A-Za-z_][\w-]*)|\[(\d+)\]")
_CONTEXT = {BUGS_CONTEXT: tuple(BUGS)}


class BuiltinDrill(NamedTuple):
    """A drill shipped in ``drills/builtin/``: its name (file stem), description and file."""

    name: str
    description: str
    path: Path


def builtin_dir() -> Path:
    """The directory holding the built-in drill files."""
    return Path(str(resources.files("drills").joinpath("builtin")))


def builtin_drills() -> list[BuiltinDrill]:
    """Every built-in drill, sorted by name (the description is read from each file)."""
    found = []
    for path in sorted(builtin_dir().glob("*.yaml")):
        raw = read_yaml(path.read_text(encoding="utf-8"), source=str(path))
        found.append(BuiltinDrill(path.stem, str(raw.get("description", "")).strip(), path))
    return found


def find_drill(name_or_path: str | Path) -> Path:
    """The file of a drill: a path (a `Path`, or text ending .yaml/.yml or holding a /) or the
    name of a built-in. Raises `SpecError` for a missing file or an unknown name (listing the
    built-ins, with a "did you mean")."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise SpecError("no such drill file", source=text)
        return path
    names = sorted(p.stem for p in builtin_dir().glob("*.yaml"))
    if text not in names:
        raise SpecError(unknown("drill", text, names, listing="built-ins") +
                        "; or give a path to a .yaml file", source=text)
    return builtin_dir() / f"{text}.yaml"


def load_drill(name_or_path: str | Path, sets: Sequence[str] = ()) -> DrillSpec:
    """Find, read, override and validate a drill (see `find_drill`, `parse_drill`).

    Raises `SpecError` for anything wrong with the name, the file or the overrides.
    """
    path = find_drill(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read the drill file: {exc}", source=str(path)) from exc
    return parse_drill(text, source=str(path), sets=sets, base_dir=path.parent)


def parse_drill(text: str, *, source: str = "<string>", sets: Sequence[str] = (),
                base_dir: Path | None = None) -> DrillSpec:
    """Validate drill ``text`` (YAML) with ``sets`` (``KEY=VALUE``) applied on top.

    Relative paths in the file (``load.locustfile``, ``stack.compose``) are resolved against
    ``base_dir`` (the current directory when None, or for a path given by ``--set``) and must
    exist. Raises `SpecError` with ``source`` (or ``--set``), the field and what was expected.
    """
    raw = apply_overrides(read_yaml(text, source=source), list(sets))
    overridden = [_split_set(s)[0] for s in sets]
    try:
        spec = DrillSpec.model_validate(raw, context=_CONTEXT)
    except ValidationError as exc:
        raise _translate(exc, source, overridden) from None
    files = {}
    for field in ("load.locustfile", "stack.compose"):
        by_set = field in overridden
        files[field] = _resolve_path(spec, field, base_dir=None if by_set else base_dir,
                                     source=_SET if by_set else source)
    spec = spec.model_copy(update={
        "load": spec.load.model_copy(update={"locustfile": files["load.locustfile"]}),
        "stack": spec.stack.model_copy(update={"compose": files["stack.compose"]}),
    })
    return spec.with_provenance(source=source, text=text, overrides=tuple(sets))


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys and non-text keys (``on:`` is a bool)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None, None, f"keys must be text, got {key!r} (quote it: YAML reads "
                    f"on/off/yes/no as booleans)", key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str, *, source: str) -> dict[str, Any]:
    """Parse a drill file's YAML into its top-level mapping (safe loader).

    Raises `SpecError` naming line and column for a syntax error, a duplicate or non-text key,
    and for a document that is empty or not a mapping.
    """
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: safe
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise SpecError(f"YAML syntax error at {where}{problem}", source=source) from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", source=source) from exc
    except (RecursionError, ValueError) as exc:  # 500-deep nesting, a 4,300-digit integer
        raise SpecError(f"YAML the harness will not read: {_beyond(exc)}", source=source) \
            from None
    if not isinstance(data, dict):
        got = "an empty document" if data is None else f"{type(data).__name__} {data!r:.40}"
        raise SpecError(f"expected a mapping at the top level (drill:, description:, "
                        f"timeline:, ...), got {got}", source=source)
    return data


def _beyond(exc: RecursionError | ValueError) -> str:
    """What a parse that hit a Python limit was given, in words."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return f"a number too large ({str(exc).split(':')[0]})"


def apply_overrides(raw: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """A copy of ``raw`` with every ``KEY=VALUE`` applied (``raw`` itself is left untouched).

    KEY is a dotted path with list indices (``timeline.faults[0].for``), checked against the
    drill schema; VALUE is parsed as YAML (``5`` int, ``5s`` text, ``[a, b]`` a list); an empty
    value or ``null`` removes the key so its default applies. Missing mappings on the way are
    created; list items must exist. Raises `SpecError` (source ``--set``, field KEY).
    """
    out = copy.deepcopy(raw)
    for item in sets:
        key, text = _split_set(item)
        parts = _check_key(key)
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise SpecError(f"cannot parse the value {text!r} as YAML: {exc}", source=_SET,
                            field=key) from exc
        except (RecursionError, ValueError) as exc:
            raise SpecError(f"cannot parse the value {show_value(text)} as YAML: "
                            f"{_beyond(exc)}", source=_SET, field=key) from None
        _assign(out, parts, value, key)
    return out


def _split_set(item: str) -> tuple[str, str]:
    key, eq, value = item.partition("=")
    if not eq or not _KEY.match(key.strip()):
        raise SpecError(f"expected KEY=VALUE with KEY like load.users or "
                        f"timeline.faults[0].for, got {item!r}", source=_SET)
    return key.strip(), value


def _check_key(key: str) -> list[str | int]:
    """KEY's parts, each checked against the schema (unknown names get a "did you mean")."""
    parts: list[str | int] = [m[1] if m[1] else int(m[2]) for m in _PART.finditer(key)]
    model: type[BaseModel] | None = DrillSpec
    listed = False
    for n, part in enumerate(parts):
        where = _dotted(parts[:n]) or "the drill"
        if isinstance(part, int):
            if not listed:
                raise SpecError(f"{where} is not a list", source=_SET, field=key)
            listed = False
            continue
        if listed:
            raise SpecError(f"{where} is a list: give an index, e.g. {where}[0]", source=_SET,
                            field=key)
        fields = _fields(model) if model else {}
        if part not in fields:
            if not fields:
                raise SpecError(f"{where} takes no sub-fields (it is a single value)",
                                source=_SET, field=key)
            raise SpecError(unknown("field", part, list(fields), where=where), source=_SET,
                            field=key)
        annotation = fields[part].annotation
        model, listed = _inner_model(annotation), _is_sequence(annotation)
    return parts


def _assign(data: dict[str, Any], parts: list[str | int], value: Any, key: str) -> None:
    cur: Any = data
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        where = _dotted(parts[:n]) or "the drill"
        if isinstance(part, int):
            if not isinstance(cur, list) or part >= len(cur):
                size = len(cur) if isinstance(cur, list) else 0
                raise SpecError(f"index {part} is out of range: {where} has {size} item(s)",
                                source=_SET, field=key)
        elif not isinstance(cur, dict):
            raise SpecError(f"cannot set {key}: {where} is {type(cur).__name__} in the drill, "
                            f"not a mapping", source=_SET, field=key)
        if last:
            if value is None and isinstance(part, str):
                cur.pop(part, None)
            else:
                cur[part] = value
            return
        if isinstance(part, str) and cur.get(part) is None:
            cur[part] = {} if isinstance(parts[n + 1], str) else []
        cur = cur[part]


def _resolve_path(spec: DrillSpec, field: str, *, base_dir: Path | None,
                  source: str) -> str | None:
    """The value of a file field, made absolute and checked to exist when it is a path (text
    ending .py/.yml/.yaml or holding a /); a name such as ``clipstream`` passes through."""
    section, key = field.split(".")
    value = getattr(getattr(spec, section), key)
    if value is None or not (value.endswith((".py", ".yml", ".yaml")) or "/" in value):
        return value
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    if not path.is_file():
        raise SpecError(f"no such file: {path}", source=source, field=field)
    return str(path.resolve())


def parse_stack_config(sets: Sequence[str]) -> StackConfig:
    """Stack knobs from ``KEY=VALUE`` strings (``fsync=never`` or ``stack.config.fsync=never``),
    validated like a drill's ``stack.config``. Raises `SpecError` (source ``--set``)."""
    prefix = "stack.config."
    full = [s.strip() if s.strip().startswith(prefix) else prefix + s.strip() for s in sets]
    raw = apply_overrides({}, full).get("stack", {}).get("config", {})
    try:
        return StackConfig.model_validate(raw, context=_CONTEXT)
    except ValidationError as exc:
        raise _translate(exc, _SET, [], prefix=("stack", "config")) from None


def _translate(exc: ValidationError, source: str, overridden: list[str], *,
               prefix: tuple[str, ...] = ()) -> SpecError:
    """One `SpecError` for a pydantic error: the first problem, then any others as "also".

    ``prefix`` is where the validated model sits inside a drill (errors are named from the top).
    """
    problems = [_problem({**err, "loc": (*prefix, *err["loc"])})
                for err in exc.errors(include_url=False)]
    field, message = problems[0]
    for other_field, other in problems[1:]:
        message += f"\n  also {other_field or '(top level)'}: {other}"
    under = any(field == p or field.startswith((p + ".", p + "[")) for p in overridden)
    return SpecError(message, source=_SET if under else source, field=field or None)


def _problem(err: ErrorDetails) -> tuple[str, str]:
    """(dotted field, message saying what was expected) for one pydantic error."""
    loc, kind, ctx = tuple(err["loc"]), err["type"], err.get("ctx") or {}
    if kind == "drill_spec":
        return _dotted([*loc, *_parse_rel(ctx["path"])]), ctx["message"]
    if kind == "extra_forbidden":
        parent = _walk(loc[:-1])[0]
        allowed = list(_fields(parent)) if parent else []
        key = str(loc[-1])
        return _dotted(loc), unknown("field", key, allowed)
    field = _walk(loc)[1]
    if kind == "value_error":
        return _dotted(loc), str(ctx.get("error", err["msg"]))
    if kind == "missing":
        doc = f" ({field.description})" if field and field.description else ""
        return _dotted(loc), f"required field missing: expected {_expected(field)}{doc}"
    if kind == "literal_error":
        choices = [str(c) for c in _literal_choices(field)]
        got = err["input"]
        hint = did_you_mean(got, choices) if isinstance(got, str) else ""
        return _dotted(loc), f"expected one of {', '.join(choices)}; got {show_value(got)}{hint}"
    if kind == "string_too_short":
        return _dotted(loc), "must not be empty"
    got = _shown(err["input"], field)
    if loc and isinstance(loc[-1], int):  # one item of a list of plain values
        return _dotted(loc), f"expected {_expected(field)}; item {loc[-1]} is {got}"
    return _dotted(loc), f"expected {_expected(field)}, got {got}"


def _shown(value: Any, field: FieldInfo | None) -> str:
    """The value as the message quotes it; a duration field's parsed seconds as a duration."""
    if isinstance(value, float) and "duration" in _expected(field) and value >= 0:
        try:
            return format_duration(value)
        except ValueError:
            pass
    return show_value(value)


def _expected(field: FieldInfo | None) -> str:
    extra = field.json_schema_extra if field else None
    typ = extra.get("type") if isinstance(extra, dict) else None
    return str(typ) if typ else "a valid value"


def _literal_choices(field: FieldInfo | None) -> list[Any]:
    choices: list[Any] = []
    for arg in _flatten(field.annotation if field else None):
        if get_origin(arg) is Literal:
            choices += list(get_args(arg))
    return choices


def _flatten(annotation: Any) -> Iterable[Any]:
    yield annotation
    if get_origin(annotation) is Literal:
        return
    for arg in get_args(annotation):
        yield from _flatten(arg)


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields keyed as the drill file spells them (by alias)."""
    return {fi.alias or name: fi for name, fi in model.model_fields.items()}


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    for arg in _flatten(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _is_sequence(annotation: Any) -> bool:
    return any(get_origin(a) in (tuple, list) for a in _flatten(annotation))


def _walk(loc: Sequence[str | int]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model reached at ``loc`` and the field named by its last text part."""
    model: type[BaseModel] | None = DrillSpec
    field: FieldInfo | None = None
    for part in loc:
        if isinstance(part, int):
            continue
        field = _fields(model).get(part) if model else None
        if field is None:
            return None, None
        model = _inner_model(field.annotation)
    return model, field


def _parse_rel(path: str) -> list[str | int]:
    return [m[1] if m[1] else int(m[2]) for m in _PART.finditer(path)]


def _dotted(parts: Sequence[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def reference_markdown() -> str:
    """The drill-file reference (Markdown): one table per section, from the models' own docs."""
    sections: list[tuple[str, type[BaseModel]]] = [
        ("Top level", spec.DrillSpec), ("stack", spec.StackSpec),
        ("stack.config", spec.StackConfig), ("load", spec.LoadSpec),
        ("load.burst", spec.BurstSpec), ("load.hot", spec.HotSpec),
        ("timeline", spec.Timeline), ("timeline.faults[]", spec.FaultSpec),
        ("timeline.nemesis", spec.NemesisSpec),
        ("timeline.nemesis.faults[]", spec.FaultTemplate),
        ("objectives", spec.Objectives), ("objectives.rto", spec.RtoObjectives),
        ("objectives.exposure", spec.ExposureObjective), ("analysis", spec.AnalysisSpec),
        ("guardrails[]", spec.Guardrail),
    ]
    lines = [
        "Durations: `500ms`, `10s`, `2m`, `1h`, or a bare number of seconds. Fault offsets "
        "(`at`) count from the start of the load; the load runs until the last fault window "
        "ends, plus `settle`. A fault with `repeat: n` and `every: p` has n windows "
        "[at + k*p, at + k*p + for). The drill's faults are the fixed `timeline.faults` "
        "followed by those `timeline.nemesis` generates (a fault's id is its index in that "
        "list); faults may overlap, except two that stop the same node (they could not be "
        "reverted) or two of one kind on one target. Objective names (for `fails_on`): "
        "`rto.<class>`, `lost_acked_writes`, `counters`, `zero_reads`, `split_brain`, "
        "`recovery`, `exposure`.", ""]
    for title, model in sections:
        lines += [f"### {title}", "", (model.__doc__ or "").strip().splitlines()[0], "",
                  "| key | type | default | meaning |", "|---|---|---|---|"]
        for key, field in _fields(model).items():
            cells = (f"`{key}`", _expected(field), _default(field), field.description or "")
            lines.append(_row(cells))
        lines.append("")
        if model is spec.StackConfig:
            lines += _bugs_table()
    return "\n".join(lines)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _bugs_table() -> list[str]:
    """The names ``stack.config.bugs`` accepts, from ClipStream's `BUGS`."""
    lines = ["#### stack.config.bugs", "", "The bugs ClipStream can plant (each off unless "
             "named).", "", "| bug | what goes wrong |", "|---|---|"]
    lines += [_row((f"`{name}`", what)) for name, what in BUGS.items()]
    return [*lines, ""]


def _default(field: FieldInfo) -> str:
    value = field.default
    if field.default_factory is not None:
        return "drawn at load"
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "-"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, float) and "duration" in _expected(field):
        return f"`{format_duration(value)}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{list(value) if isinstance(value, tuple) else value}`"
