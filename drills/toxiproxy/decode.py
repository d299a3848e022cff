"""Request bodies decoded the way Toxiproxy's Go server decodes them, and its API error type.

Go's ``encoding/json`` decides what a body means, so clients that rely on its leniency keep
working: only the first JSON value is read (trailing bytes are ignored), unknown fields are
ignored, field names match case-insensitively (the last matching key wins), ``null`` leaves a
field unchanged, and a value of the wrong JSON type is a 400 ``bad request body: ...``.
Integers must be JSON integers (``1.0`` and ``1e3`` are refused for an int64, as in Go).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from drills.errors import ProxyError
from drills.toxiproxy.toxics import STAGES, Attributes, ToxicSpec

Kind = Literal["str", "bool", "int", "float"]

_INT64 = (-(2**63), 2**63 - 1)
_GO_TYPES: Mapping[Kind, str] = {
    "str": "string",
    "bool": "bool",
    "int": "int64",
    "float": "float32",
}


class ApiError(ProxyError):
    """An API failure with the exact message and HTTP status Toxiproxy would answer."""

    def __init__(self, message: str, status: int):
        self.message = message
        super().__init__(message, status=status)


def bad_body(reason: str) -> ApiError:
    """The 400 Toxiproxy answers when a body cannot be decoded (``bad request body: <reason>``)."""
    return ApiError(f"bad request body: {reason}", 400)


def missing_field(what: str) -> ApiError:
    """The 400 for an absent required field (``missing required field: <what>``)."""
    return ApiError(f"missing required field: {what}", 400)


def _reject_constant(name: str) -> float:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


class _Number(float):
    """A JSON float that remembers its literal, which Go quotes in decode errors."""

    text: str

    def __new__(cls, text: str) -> _Number:
        number = super().__new__(cls, text)
        number.text = text
        return number


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_Number)


def read_json(body: bytes) -> object:
    """The first JSON value of ``body``; raises `ApiError` 400 (``EOF`` when there is none)."""
    text = body.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if not text:
        raise bad_body("EOF")
    try:
        value, _end = _DECODER.raw_decode(text)
    except ValueError as exc:
        reason = str(exc)
        if isinstance(exc, json.JSONDecodeError):
            reason = "unexpected EOF" if exc.pos >= len(text) else exc.msg
        raise bad_body(reason) from None
    return value


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def type_error(value: object, where: str, go_type: str) -> ApiError:
    """Go's ``UnmarshalTypeError`` as a 400: ``cannot unmarshal <kind> into Go <where> of type``."""
    kind = _json_kind(value)
    if kind == "number" and go_type.startswith("int"):
        kind = f"number {getattr(value, 'text', value)}"
    return bad_body(f"json: cannot unmarshal {kind} into Go {where} of type {go_type}")


def _coerce(value: object, kind: Kind, where: str, go_type: str) -> object:
    """``value`` checked against a Go field type; raises the decode error Go would give."""
    ok = False
    if kind == "str":
        ok = isinstance(value, str)
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not _INT64[0] <= value <= _INT64[1]:  # type: ignore[operator]
            ok = False
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok:
            value = float(value)  # type: ignore[arg-type]  # plain float, not _Number
            ok = math.isfinite(value)
    if not ok:
        raise type_error(value, where, go_type)
    return value


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a Go struct: JSON name and kind."""

    name: str
    kind: Kind
    go_type: str = ""  # the Go type named in errors, if not the kind's usual one


def decode_struct(
    value: object, fields: Sequence[Field], *, struct: str, go_value: str, path: str = ""
) -> dict[str, object]:
    """The known fields present (and not null) in a JSON object, matched as Go matches them.

    ``value`` ``None`` (JSON ``null``) decodes to nothing; anything but an object raises 400
    naming ``go_value`` (the Go type decoded into). Field errors read ``Go struct field
    {struct}.{path}{name}``. Returns each field's canonical name mapped to its checked value;
    absent fields are absent, so callers apply their own defaults.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise type_error(value, "value", go_value)
    exact = {f.name: f for f in fields}
    folded = {f.name.lower(): f for f in fields}
    out: dict[str, object] = {}
    for key, item in value.items():
        field = exact.get(key) or folded.get(key.lower())
        if field is None or item is None:
            continue
        where = f"struct field {struct}.{path}{field.name}"
        out[field.name] = _coerce(item, field.kind, where, field.go_type or _GO_TYPES[field.kind])
    return out


def find_key(value: Mapping[str, object], name: str) -> object:
    """The value of ``name`` in a JSON object matched case-insensitively (last match wins)."""
    found: object = None
    for key, item in value.items():
        if key == name or key.lower() == name:
            found = item
    return found


# -- the two body shapes with rules beyond field types ----------------------------------------
PROXY = "toxiproxy.Proxy"
WRAPPER = "toxics.ToxicWrapper"
POPULATE = '[]struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }'
PROXY_FIELDS = (
    Field("name", "str"),
    Field("listen", "str"),
    Field("upstream", "str"),
    Field("enabled", "bool"),
)
_TOXIC_FIELDS = (
    Field("name", "str"),
    Field("type", "str"),
    Field("stream", "str"),
    Field("toxicity", "float"),
)


def _attributes(spec_type: type[Attributes], value: object, base: Attributes) -> Attributes:
    raw = find_key(value, "attributes") if isinstance(value, dict) else None
    fields = [
        Field(f.name, "int", f.metadata.get("go", "int64")) for f in dataclasses.fields(spec_type)
    ]
    given = decode_struct(
        raw,
        fields,
        struct=spec_type.go_name,
        path="attributes.",
        go_value=f"toxics.{spec_type.go_name}",
    )
    return dataclasses.replace(base, **given)


def parse_toxic(body: bytes, exists: Callable[[str], bool]) -> ToxicSpec:
    """A new toxic from a ``POST /proxies/{p}/toxics`` body, checked in Toxiproxy's order.

    Bad JSON or a field of the wrong type 400; ``stream`` not up/downstream 400; unknown
    ``type`` 400; a name ``exists`` already 409; an attribute of the wrong type 400.
    Defaults: stream ``downstream``, toxicity 1.0, name ``<type>_<stream>``.
    """
    value = read_json(body)
    got = decode_struct(value, _TOXIC_FIELDS, struct="ToxicWrapper", go_value=WRAPPER)
    if isinstance(value, dict) and not isinstance(find_key(value, "attributes"), dict | None):
        where = "struct field ToxicWrapper.attributes"
        raise type_error(find_key(value, "attributes"), where, "toxics.NoopToxic")
    stream = str(got.get("stream", "downstream"))
    if stream.lower() not in ("upstream", "downstream"):
        raise ApiError("stream was invalid, can be either upstream or downstream", 400)
    kind = str(got.get("type", ""))
    name = str(got.get("name") or f"{kind}_{stream}")
    stage = STAGES.get(kind)
    if stage is None:
        raise ApiError("invalid toxic type", 400)
    if exists(name):
        raise ApiError("toxic already exists", 409)
    attrs = _attributes(stage.attrs_type, value, stage.attrs_type())
    toxicity = float(got.get("toxicity", 1.0))  # type: ignore[arg-type]
    return ToxicSpec(
        name=name,
        type=kind,
        stream=stream,
        upstream=stream.lower() == "upstream",
        toxicity=toxicity,
        attributes=attrs,
    )


def merge_toxic(spec: ToxicSpec, body: bytes) -> ToxicSpec:
    """``spec`` updated by a toxic update body: ``attributes`` merged, ``toxicity`` replaced;
    every other field is ignored, as in Toxiproxy."""
    value = read_json(body)
    got = decode_struct(value, (Field("toxicity", "float"),), struct="", go_value="struct")
    raw = find_key(value, "attributes") if isinstance(value, dict) else None
    if not isinstance(raw, dict | None):
        go_type = f"toxics.{spec.attributes.go_name}"
        raise type_error(raw, "struct field .attributes", go_type)
    attrs = _attributes(type(spec.attributes), value, spec.attributes)
    toxicity = float(got.get("toxicity", spec.toxicity))  # type: ignore[arg-type]
    return dataclasses.replace(spec, attributes=attrs, toxicity=toxicity)
