"""Where drills come from: built-in drills by name, drill files by path, ``--set`` overrides.

This is the edge where text becomes a `DrillSpec`: YAML is parsed here (safe loader, duplicate
keys refused), overrides are applied to the raw mapping, the drill's target is resolved
(`drills.targets.target_info`, from the ``stack`` section), relative paths in the file are
resolved against the file's directory, and pydantic's errors are translated into one
`SpecError` naming the source (file path, or ``--set`` when an override caused it), the dotted
field (``timeline.faults[0].power_down``) and what was expected. Nothing raw leaves this module.

What the spec cannot know about the target - its classes, its knobs' model, its bug names,
whether it has a final-read contract - is given to validation here, as its context
(`drills.spec.TARGET_CONTEXT`: a `drills.spec.TargetInfo`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from drills import targets
from drills.duration import format_duration
from drills.errors import SpecError, show_value
from drills.spec import TARGET_CONTEXT, DrillSpec, KnobsModel, TargetInfo, did_you_mean, unknown
from drills.spec import reference as _reference
from drills.spec.schema import Place, descend, expected, fields_of, literal_choices, walk

_SET = "--set"
_KEY = re.compile(r"^[A-Za-z_][\w-]*(\[\d+\])*(\.[A-Za-z_][\w-]*(\[\d+\])*)*$")
_PART = re.compile(r"([A-Za-z_][\w-]*)|\[(\d+)\]")
_REL = re.compile(r"\[(\d+)\]|([^.\[\]]+)")
_CONFIG = "stack.config."


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

    The target is resolved from the ``stack`` section (`resolve_target`) and checks what is its
    own (classes, knobs, bugs, data contract). Relative paths in the file (``load.locustfile``,
    ``stack.compose``, a ``stack.data.python`` file) are resolved against ``base_dir`` (the
    current directory when None, or for a path given by ``--set``) and must exist. Raises
    `SpecError` with ``source`` (or ``--set``), the field and what was expected.
    """
    raw = apply_overrides(read_yaml(text, source=source), list(sets))
    overridden = [_split_set(s)[0] for s in sets]
    info = resolve_target(raw.get("stack"), source=_SET if _under(
        "stack.target", overridden) else source)
    for key in overridden:
        if key.startswith(_CONFIG):
            _check_knob(key, info)
    try:
        spec = DrillSpec.model_validate(raw, context={TARGET_CONTEXT: info})
    except ValidationError as exc:
        raise _translate(exc, source, overridden, config=info.config) from None
    return _resolve_paths(spec, overridden, base_dir=base_dir, source=source).with_provenance(
        source=source, text=text, overrides=tuple(sets))


def resolve_target(stack: object, *, source: str) -> TargetInfo:
    """The `TargetInfo` of a drill's raw ``stack`` section (`drills.targets.target_info`).

    A section that is not a mapping, or a ``target`` that is not text, is left to validation
    to name (the default target is resolved meanwhile). Raises `SpecError` (field
    ``stack.target``, from ``source``) for an unknown target."""
    given: dict[str, Any] = dict(stack) if isinstance(stack, dict) else {}
    if not isinstance(given.get("target"), str | None):
        del given["target"]
    try:
        return targets.target_info(given)
    except SpecError as exc:
        raise SpecError(exc.message, source=source, field=exc.field or "stack.target") from None


def _under(field: str, overridden: Sequence[str]) -> bool:
    """Was ``field`` set by an override (of it, or of a section holding it)?"""
    return any(field == k or field.startswith((k + ".", k + "[")) for k in overridden)


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


def apply_overrides(raw: dict[str, Any], sets: list[str], *,
                    config: type[BaseModel] | None = None) -> dict[str, Any]:
    """A copy of ``raw`` with every ``KEY=VALUE`` applied (``raw`` itself is left untouched).

    KEY is a dotted path with list indices (``timeline.faults[0].for``), checked against the
    drill schema (``stack.config`` keys against ``config``, the target's knobs, when given;
    `parse_drill` checks them once the target is known); VALUE is parsed as YAML (``5`` int,
    ``5s`` text, ``[a, b]`` a list); an empty value or ``null`` removes the key so its default
    applies. Missing mappings on the way are created; list items must exist. Raises
    `SpecError` (source ``--set``, field KEY).
    """
    out = copy.deepcopy(raw)
    for item in sets:
        key, text = _split_set(item)
        parts = _check_key(key, config=config)
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


def _check_key(key: str, *, config: type[BaseModel] | None = None) -> list[str | int]:
    """KEY's parts, each checked against the schema (unknown names get a "did you mean");
    a key of a free mapping (``load.classes.<name>``, a knob without ``config``) is any name."""
    parts: list[str | int] = [m[1] if m[1] else int(m[2]) for m in _PART.finditer(key)]
    place = Place(DrillSpec)
    for n, part in enumerate(parts):
        where = _dotted(parts[:n]) or "the drill"
        if isinstance(part, int):
            if not place.listed:
                raise SpecError(f"{where} is not a list", source=_SET, field=key)
            place = Place(place.model)
            continue
        if place.listed:
            raise SpecError(f"{where} is a list: give an index, e.g. {where}[0]", source=_SET,
                            field=key)
        if place.keyed:
            if place.values is Any:  # a knob of unknown type: checked once the target is known
                return parts
            place = descend(place.values, config)
            continue
        fields = fields_of(place.model) if place.model else {}
        if part not in fields:
            if not fields:
                raise SpecError(f"{where} takes no sub-fields (it is a single value)",
                                source=_SET, field=key)
            raise SpecError(unknown("field", part, list(fields), where=where), source=_SET,
                            field=key)
        place = descend(fields[part].annotation, config)
    return parts


def _check_knob(key: str, info: TargetInfo) -> None:
    """A ``stack.config.<knob>`` override checked against the target's own knobs."""
    if info.config is None:
        raise SpecError(f"the {info.name} target takes no knobs: leave stack.config out",
                        source=_SET, field=key)
    _check_key(key, config=info.config)


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


def _resolve_paths(spec: DrillSpec, overridden: Sequence[str], *, base_dir: Path | None,
                   source: str) -> DrillSpec:
    """``spec`` with its file fields made absolute (each checked to exist): the locustfile,
    the compose file, and the file of a ``stack.data.python`` reference (``file.py:func``)."""
    def resolve(field: str, value: str | None) -> str | None:
        if value is None:
            return None
        by_set = _under(field, overridden)
        return _resolve_path(value, field, base_dir=None if by_set else base_dir,
                             source=_SET if by_set else source)

    stack, load = spec.stack, spec.load
    data = stack.data
    if data is not None and data.python is not None:
        file, _, func = data.python.rpartition(":")
        if file.endswith(".py"):
            data = data.model_copy(update={"python": f"{resolve('stack.data.python', file)}"
                                                     f":{func}"})
    stack = stack.model_copy(update={"compose": resolve("stack.compose", stack.compose),
                                     "data": data})
    load = load.model_copy(update={"locustfile": resolve("load.locustfile", load.locustfile)})
    return spec.model_copy(update={"stack": stack, "load": load})


def _resolve_path(value: str, field: str, *, base_dir: Path | None, source: str) -> str:
    """``value`` as an absolute path (relative to ``base_dir``, else the current directory),
    checked to be a file."""
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    if not path.is_file():
        raise SpecError(f"no such file: {path}", source=source, field=field)
    return str(path.resolve())


def parse_stack_config(sets: Sequence[str], target: TargetInfo | None = None) -> KnobsModel:
    """Knobs from ``KEY=VALUE`` strings (``fsync=never`` or ``stack.config.fsync=never``),
    validated like a drill's ``stack.config`` by ``target``'s model (default: the default
    target's). Raises `SpecError` (source ``--set``)."""
    info = target if target is not None else resolve_target({}, source=_SET)
    full = [s.strip() if s.strip().startswith(_CONFIG) else _CONFIG + s.strip() for s in sets]
    for item in full:
        _check_knob(_split_set(item)[0], info)
    raw = apply_overrides({}, full, config=info.config).get("stack", {}).get("config", {})
    try:
        return (info.config or KnobsModel).model_validate(raw, context={TARGET_CONTEXT: info})
    except ValidationError as exc:
        raise _translate(exc, _SET, [], prefix=("stack", "config"),
                         config=info.config) from None


def _translate(exc: ValidationError, source: str, overridden: list[str], *,
               prefix: tuple[str, ...] = (), config: type[BaseModel] | None = None) -> SpecError:
    """One `SpecError` for a pydantic error: the first problem, then any others as "also".

    ``prefix`` is where the validated model sits inside a drill (errors are named from the top);
    ``config`` is the target's knobs model (``stack.config``'s fields)."""
    problems = [_problem({**err, "loc": (*prefix, *err["loc"])}, config)
                for err in exc.errors(include_url=False)]
    field, message = problems[0]
    for other_field, other in problems[1:]:
        message += f"\n  also {other_field or '(top level)'}: {other}"
    return SpecError(message, source=_SET if _under(field, overridden) else source,
                     field=field or None)


def _problem(err: ErrorDetails, config: type[BaseModel] | None) -> tuple[str, str]:
    """(dotted field, message saying what was expected) for one pydantic error."""
    loc, kind, ctx = tuple(err["loc"]), err["type"], err.get("ctx") or {}
    if kind == "drill_spec":
        return _dotted([*loc, *_parse_rel(ctx["path"])]), ctx["message"]
    if kind == "extra_forbidden":
        parent = walk(loc[:-1], DrillSpec, config=config)[0].model
        allowed = list(fields_of(parent)) if parent else []
        return _dotted(loc), unknown("field", str(loc[-1]), allowed)
    field = walk(loc, DrillSpec, config=config)[1]
    if kind == "value_error":
        return _dotted(loc), str(ctx.get("error", err["msg"]))
    if kind == "missing":
        doc = f" ({field.description})" if field and field.description else ""
        return _dotted(loc), f"required field missing: expected {expected(field)}{doc}"
    if kind == "literal_error":
        choices = [str(c) for c in literal_choices(field)]
        got = err["input"]
        hint = did_you_mean(got, choices) if isinstance(got, str) else ""
        return _dotted(loc), f"expected one of {', '.join(choices)}; got {show_value(got)}{hint}"
    if kind == "string_too_short" or (kind == "too_short" and ctx.get("min_length") == 1):
        return _dotted(loc), "must not be empty"
    got = _shown(err["input"], expected(field))
    if loc and isinstance(loc[-1], int):  # one item of a list of plain values
        return _dotted(loc), f"expected {expected(field)}; item {loc[-1]} is {got}"
    return _dotted(loc), f"expected {expected(field)}, got {got}"


def _shown(value: Any, typ: str) -> str:
    """The value as the message quotes it; a duration field's parsed seconds as a duration."""
    if isinstance(value, float) and "duration" in typ and value >= 0:
        try:
            return format_duration(value)
        except ValueError:
            pass
    return show_value(value)


def _parse_rel(path: str) -> list[str | int]:
    """A model's relative error path (``nodes[2].name``, ``rto.GET /items``) as its parts."""
    return [m[2] if m[2] is not None else int(m[1]) for m in _REL.finditer(path)]


def _dotted(parts: Sequence[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def reference_markdown(target: TargetInfo | None = None) -> str:
    """The drill-file reference (Markdown): one table per section, from the models' own docs,
    with ``target``'s knobs, bugs and classes (default: the default target's)."""
    info = target if target is not None else resolve_target({}, source="reference")
    return _reference.reference_markdown(info)

