"""Bad input never gets a traceback: property-based fuzzing of drill files and ``--set`` values.

Whatever a drill file or an override holds, reading and validating it (everything `drill run`
checks before it starts anything, the topology included) either gives a `DrillSpec` or raises
`SpecError` (exit 2) naming what was wrong - never another exception. The drill files are a
valid drill with random parts replaced by random YAML values (huge and non-finite numbers,
deep nesting, wrong types, unknown keys); the overrides are random keys and values. Two valid
drills are broken: one of the default target (ClipStream) and one of a system of its own
(local nodes, links, placeholders, a data contract).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drills.catalog import parse_drill
from drills.cli import EXIT_INPUT, main
from drills.errors import SpecError
from drills.spec import DrillSpec, validate_targets
from drills.stack.open import topology_for

VALID: dict[str, Any] = {
    "drill": "fuzzed",
    "description": "A valid drill the fuzzer breaks one part of at a time.",
    "stack": {"provider": "local", "config": {"replication": "sync", "fsync": "always",
                                              "detection": "1.5s", "bugs": []}},
    "load": {"users": 20, "rate": 100, "retries": 2, "burst": {"multiplier": 2, "width": "2s"},
             "hot": {"keys": 4, "share": 0.5}},
    "timeline": {"baseline": "5s", "settle": "5s",
                 "faults": [{"at": "5s", "power_down": "dc-east", "for": "3s"},
                            {"at": "6s", "latency": "store-west->store-east", "ms": 50,
                             "direction": "upstream", "for": "2s"}],
                 "nemesis": {"seed": 3, "rounds": 2, "duration": ["1s", "2s"],
                             "interval": ["1s", "2s"], "faults": [{"power_down": "dc-west"}]}},
    "objectives": {"rto": {"upload": "10s"}, "lost_acked_writes": 0, "counters": "exact",
                   "zero_reads": "fresh", "exposure": {"min_writes_at_risk": 10}},
    "analysis": {"bucket": "250ms", "exposure_window": "1s"},
}
OWN: dict[str, Any] = {
    "drill": "fuzzed-own",
    "description": "A valid drill of a system of its own, broken one part at a time.",
    "stack": {"provider": "local", "entry": "api", "stores": ["kv-east", "kv-west"],
              "data": {"http": "/drills/state"},
              "nodes": [{"name": "kv-east", "zone": "dc-east", "ready": {"tcp": True},
                         "command": ["python", "kv.py", "--port", "{port}", "--peer",
                                     "{link:kv-east->kv-west}"], "env": {"DIR": "{data_dir}"}},
                        {"name": "kv-west", "zone": "dc-west", "ready": {"http": "/healthz"},
                         "command": ["python", "kv.py", "--port", "{port}"]},
                        {"name": "api", "zone": "edge",
                         "command": ["{python}", "api.py", "{addr:kv-east}"]}],
              "links": [{"name": "kv-east->kv-west", "upstream": "kv-west"},
                        {"name": "api->kv-east", "upstream": "kv-east"}]},
    "load": {"classes": {"GET /items": "read"}, "hot": {"keys": 2}},
    "timeline": {"baseline": "5s", "settle": "5s",
                 "faults": [{"at": "5s", "power_down": "dc-east", "for": "3s"},
                            {"at": "6s", "partition": "api->kv-east", "for": "1s"}]},
    "objectives": {"rto": {"read": "10s"}, "counters": "exact", "lost_acked_writes": 1},
    "guardrails": [{"op": "read", "below": 0.2}],
}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["5s", "-1s", "1e308", ".inf", "dc-north", "a->b", "api->store-east",
                     "no-fencing", "nope", "[a-z0-9-]+", "interval:0", "1h", "0"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into the valid drill (mapping keys and list indices)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(VALID)
OWN_PATHS = _paths(OWN)


def _replace(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    cur: Any = out
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return out


def judged(text: str, sets: list[str] | None = None) -> DrillSpec | None:
    """Everything `drill run` checks before it starts: parse, validate, topology. None means
    refused with a `SpecError`; any other exception fails the test."""
    try:
        spec = parse_drill(text, source="fuzz.yaml", sets=sets or [])
        validate_targets(spec, topology_for(spec, spec.stack.provider))
    except SpecError as exc:
        assert str(exc) and "Traceback" not in str(exc)
        return None
    return spec


def test_the_fuzzer_starts_from_valid_drills() -> None:
    assert judged(yaml.safe_dump(VALID)) is not None
    own = judged(yaml.safe_dump(OWN))
    assert own is not None and own.stack.target == "custom" and own.data_measured


def _broken(base: dict[str, Any], edits: list[tuple[Any, Any]]) -> str:
    data = base
    for path, value in edits:
        try:
            data = _replace(data, path, value)
        except (KeyError, IndexError, TypeError):  # an earlier edit removed the path
            continue
    return yaml.safe_dump(data, allow_unicode=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), values), min_size=1, max_size=3))
def test_any_broken_drill_file_is_a_spec_or_a_spec_error(edits: list[tuple[Any, Any]]) -> None:
    judged(_broken(VALID, edits))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(OWN_PATHS), values), min_size=1, max_size=3))
def test_any_broken_drill_of_your_own_system_is_a_spec_or_a_spec_error(
        edits: list[tuple[Any, Any]]) -> None:
    judged(_broken(OWN, edits))


keys = st.one_of(
    st.sampled_from(["load.users", "load.rate", "load.retries", "load.burst.multiplier",
                     "stack.config.bugs", "stack.config.fsync", "timeline.faults[0].for",
                     "timeline.faults[5].at", "timeline.nemesis.seed", "objectives.exposure",
                     "analysis.exposure_window", "timeline.faults[1].direction", "drill",
                     "stack.target", "stack.nodes", "stack.links", "stack.data", "stack.entry",
                     "stack.compose", "load.classes", "load.locustfile", "objectives.rto",
                     "stack.provider", "guardrails"]),
    st.text(max_size=20))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([VALID, OWN]),
       st.lists(st.tuples(keys, st.text(max_size=30) | values.map(yaml.safe_dump)),
                min_size=1, max_size=3))
def test_any_set_override_is_a_spec_or_a_spec_error(base: dict[str, Any],
                                                    overrides: list[tuple[str, str]]) -> None:
    judged(yaml.safe_dump(base), [f"{k}={v.strip()}" for k, v in overrides])


def test_deep_nesting_and_huge_integers_are_refused_by_validate(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("drill: x\ndescription: y\ntimeline:\n  baseline: " + "[" * 600 + "]" * 600)
    big = tmp_path / "big.yaml"
    big.write_text("drill: x\ndescription: y\nload: {users: " + "9" * 4400 + "}\n"
                   "timeline: {baseline: 5s}\n")
    assert main(["validate", str(deep)]) == EXIT_INPUT
    assert main(["validate", str(big)]) == EXIT_INPUT
    # refused before anything starts (no stack, no run directory)
    out = tmp_path / "never"
    assert main(["run", "dc-east-power-loss", "--out", str(out),
                 "--set", "load.users=" + "9" * 4400]) == EXIT_INPUT
    assert not out.exists()


def test_a_locustfile_that_is_not_python_is_refused_before_anything_starts(
        tmp_path: Path) -> None:
    bad = tmp_path / "pw.yaml"
    bad.write_text("drill: x\ndescription: y\nload: {locustfile: /etc/passwd}\n"
                   "timeline: {baseline: 5s}\n")
    assert main(["validate", str(bad)]) == EXIT_INPUT
    out = tmp_path / "never"
    assert main(["run", str(bad), "--out", str(out)]) == EXIT_INPUT
    assert not (out / "stack").exists()  # refused in prepare, before any process started
