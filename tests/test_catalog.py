"""Where drills come from (drills.catalog): built-ins by name, files by path, the YAML edge
(syntax errors with line and column, duplicate keys), ``--set`` overrides, relative paths, the
target resolved from the stack section, the drill-file reference. Every built-in drill is loaded
and checked against ClipStream's topology.

Real files in a temporary directory; no processes, no network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from drills import catalog, spec
from drills.catalog import (
    apply_overrides,
    builtin_drills,
    find_drill,
    load_drill,
    parse_drill,
    parse_stack_config,
    read_yaml,
    reference_markdown,
    resolve_target,
)
from drills.errors import SpecError
from drills.spec import DrillSpec, TargetInfo, validate_targets
from drills.targets.clipstream import BUGS, CLASSES, TOPOLOGY, ClipStream, ClipStreamConfig

GOOD = """\
drill: t
description: a test drill
load: {users: 10, rate: 50}
timeline:
  baseline: 5s
  faults:
    - {at: 5s, power_down: dc-east, for: 3s}
"""

BUILTINS = {"dc-east-power-loss", "storage-partition", "replication-link-cut", "zone-flap",
            "slow-storage", "witness-loss", "lagging-replica-primary-loss",
            "isolated-replica-primary-loss", "deposed-primary", "both-dc-power-loss",
            "failback-under-load", "power-storm", "primary-power-blip"}


def write(tmp_path: Path, text: str, name: str = "d.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- the YAML edge


@pytest.mark.parametrize(
    ("text", "where"),
    [("drill: t\ntimeline: {baseline: 5s\n", "line 3, column 1"),
     ("drill: t\n  description: x\n", "line 2, column 14"),
     ("drill: t\nload: [1, 2\n", "line 3, column 1"),
     ("drill: 'unterminated\n", "line 2, column 1")],
)
def test_yaml_syntax_errors_name_line_and_column(text: str, where: str) -> None:
    with pytest.raises(SpecError) as info:
        read_yaml(text, source="bad.yaml")
    assert info.value.source == "bad.yaml" and info.value.field is None
    assert info.value.message.startswith(f"YAML syntax error at {where}: ")


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    text = "drill: t\nload: {users: 3}\ndescription: x\nload: {users: 5}\n"
    with pytest.raises(SpecError) as info:
        read_yaml(text, source="dup.yaml")
    assert info.value.message == ("YAML syntax error at line 4, column 1: duplicate key 'load' "
                                  "(first at line 2)")
    assert read_yaml(text.replace("load: {users: 5}", "rate: 5"), source="ok.yaml")["load"] == {
        "users": 3}


def test_duplicate_keys_are_refused_in_nested_mappings() -> None:
    with pytest.raises(SpecError, match="line 3, column 3: duplicate key 'users'"):
        read_yaml("load:\n  users: 3\n  users: 4\n", source="dup.yaml")


def test_yaml_merge_keys_still_work() -> None:
    raw = read_yaml("a: &x {users: 1, rate: 2}\nload:\n  <<: *x\n  rate: 3\n", source="m.yaml")
    assert raw["load"] == {"users": 1, "rate": 3}


def test_boolean_keys_are_refused() -> None:
    with pytest.raises(SpecError) as info:
        read_yaml("drill: t\non: 5\n", source="b.yaml")
    assert info.value.message == ("YAML syntax error at line 2, column 1: keys must be text, got "
                                  "True (quote it: YAML reads on/off/yes/no as booleans)")


@pytest.mark.parametrize(("text", "got"), [("", "an empty document"), ("# only a comment\n",
                                           "an empty document"), ("- a\n- b\n", "list ['a', 'b']"),
                                           ("42\n", "int 42")])
def test_top_level_must_be_a_mapping(text: str, got: str) -> None:
    with pytest.raises(SpecError) as info:
        read_yaml(text, source="x.yaml")
    assert info.value.message == ("expected a mapping at the top level (drill:, description:, "
                                  f"timeline:, ...), got {got}")


def test_yaml_tags_that_build_objects_are_refused() -> None:
    with pytest.raises(SpecError, match="YAML syntax error at line 1"):
        read_yaml("drill: !!python/object:os.system x\n", source="evil.yaml")


# ---------------------------------------------------------------- overrides


def test_overrides_set_typed_values_and_leave_the_input_alone() -> None:
    raw = read_yaml(GOOD, source="g.yaml")
    before = yaml.safe_dump(raw)
    out = apply_overrides(raw, ["load.users=7", "stack.config.fsync=never",
                                "timeline.faults[0].for=5s", "load.rate=12.5",
                                "objectives.rto.feed=2s"])
    assert yaml.safe_dump(raw) == before
    assert out["load"] == {"users": 7, "rate": 12.5}
    assert out["stack"] == {"config": {"fsync": "never"}}
    assert out["timeline"]["faults"][0]["for"] == "5s"
    assert out["objectives"] == {"rto": {"feed": "2s"}}


def test_overrides_flow_into_the_validated_spec() -> None:
    spec = parse_drill(GOOD, source="g.yaml", sets=["load.users=7", "timeline.faults[0].for=5s",
                                                    "stack.config.detection=2s"])
    assert spec.load.users == 7 and spec.timeline.faults[0].for_ == 5.0
    assert dict(spec.stack.config) == {"detection": 2.0}
    assert spec.overrides == ("load.users=7", "timeline.faults[0].for=5s",
                              "stack.config.detection=2s")
    assert spec.text == GOOD


def test_empty_or_null_override_restores_the_default() -> None:
    for value in ("", "null", "~"):
        spec = parse_drill(GOOD, source="g.yaml", sets=[f"load.users={value}"])
        assert spec.load.users == 20


def test_override_can_replace_a_whole_fault() -> None:
    spec = parse_drill(GOOD, source="g.yaml",
                       sets=["timeline.faults[0]={at: 6s, crash: api, for: 1s}"])
    assert spec.timeline.faults[0].describe() == "crash api at 6s for 1s"


@pytest.mark.parametrize(
    ("item", "field", "message"),
    [
        ("load.usres=3", "load.usres", "unknown field 'usres' in load; did you mean 'users'? "
         "(allowed: locustfile, classes, users, rate, timeout, retries, burst, hot, workers)"),
        ("lod.users=3", "lod.users", "unknown field 'lod' in the drill; did you mean 'load'? "
         "(allowed: drill, description, rehearses, passing_shows, expect, fails_on, catches, "
         "stack, load, timeline, objectives, analysis, guardrails)"),
        ("stack.config.fsyncc=never", "stack.config.fsyncc",
         "unknown field 'fsyncc' in stack.config; did you mean 'fsync'? (allowed: "
         + ", ".join(ClipStreamConfig.model_fields) + ")"),
        ("stack.nodes[0].nam=a", "stack.nodes[0].nam",
         "unknown field 'nam' in stack.nodes[0]; did you mean 'name'? (allowed: name, zone, "
         "command, env, ready)"),
        ("load.hot.videos=3", "load.hot.videos",
         "unknown field 'videos' in load.hot (allowed: keys, share)"),
        ("load.users.x=1", "load.users.x", "load.users takes no sub-fields (it is a single "
                                           "value)"),
        ("timeline.faults[3].for=1s", "timeline.faults[3].for",
         "index 3 is out of range: timeline.faults has 1 item(s)"),
        ("load[0]=1", "load[0]", "load is not a list"),
        ("timeline.faults.for=1s", "timeline.faults.for",
         "timeline.faults is a list: give an index, e.g. timeline.faults[0]"),
        ("timeline.faults[0].powerdown=dc-west", "timeline.faults[0].powerdown",
         "unknown field 'powerdown' in timeline.faults[0]; did you mean 'power_down'? (allowed: "
         "power_down, crash, freeze, partition, latency, bandwidth, at, for, repeat, every, mode, "
         "ms, jitter, direction, kbps)"),
        ("load.users=[1,", "load.users", "cannot parse the value '[1,' as YAML: "),
    ],
)
def test_bad_override_keys_are_named(item: str, field: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_drill(GOOD, source="g.yaml", sets=[item])
    assert (info.value.source, info.value.field) == ("--set", field)
    assert info.value.message.startswith(message)


@pytest.mark.parametrize("item", ["load.users", "=3", "load users=3", "load..users=3",
                                  "load.users[x]=3"])
def test_override_needs_key_equals_value(item: str) -> None:
    with pytest.raises(SpecError) as info:
        apply_overrides({}, [item])
    assert info.value.source == "--set"
    assert info.value.message == ("expected KEY=VALUE with KEY like load.users or "
                                  f"timeline.faults[0].for, got {item!r}")


def test_override_below_a_scalar_in_the_file_is_refused() -> None:
    with pytest.raises(SpecError) as info:
        apply_overrides({"load": 5}, ["load.users=3"])
    assert (info.value.field, info.value.message) == (
        "load.users", "cannot set load.users: load is int in the drill, not a mapping")


def test_invalid_override_values_are_blamed_on_the_override() -> None:
    with pytest.raises(SpecError) as info:
        parse_drill(GOOD, source="g.yaml", sets=["load.users=0"])
    assert (str(info.value)) == "--set: load.users: expected 1 <= int <= 5000, got 0"
    with pytest.raises(SpecError) as info:
        parse_drill(GOOD.replace("users: 10", "users: 0"), source="g.yaml", sets=["load.rate=5"])
    assert str(info.value) == "g.yaml: load.users: expected 1 <= int <= 5000, got 0"


def test_overrides_reach_the_new_fields() -> None:
    s = parse_drill(GOOD, source="g.yaml", sets=[
        "load.retries=0", "load.burst.multiplier=3", "load.burst.at_revert=true",
        "load.hot.share=0.25", "stack.config.bugs=[no-fencing]",
        "objectives.zero_reads=fresh", "objectives.exposure.min_writes_at_risk=50",
        "analysis.exposure_window=2s"])
    assert (s.load.retries, s.load.burst.multiplier, s.load.burst.at_revert) == (0, 3.0, True)
    assert s.load.hot.share == 0.25 and s.stack.config["bugs"] == ("no-fencing",)
    assert s.objectives.zero_reads == "fresh" and s.objectives.exposure is not None
    assert s.objectives.exposure.min_writes_at_risk == 50
    assert s.analysis.exposure_window == 2.0


@pytest.mark.parametrize(("value", "bugs"), [
    ("[no-fencing, ack-before-fsync]", ("no-fencing", "ack-before-fsync")),
    ("no-fencing,ack-before-fsync", ("no-fencing", "ack-before-fsync")),
    ("no-fencing", ("no-fencing",)), ("[]", ()), ("", ())])
def test_bugs_from_the_command_line(value: str, bugs: tuple[str, ...]) -> None:
    s = parse_drill(GOOD, source="g.yaml", sets=[f"stack.config.bugs={value}"])
    assert s.stack.config.get("bugs", ()) == bugs
    assert parse_stack_config([f"bugs={value}"]).get("bugs", ()) == bugs


def test_unknown_bug_on_the_command_line_is_blamed_on_it() -> None:
    with pytest.raises(SpecError) as info:
        parse_drill(GOOD, source="g.yaml", sets=["stack.config.bugs=[no-fencin]"])
    assert (info.value.source, info.value.field) == ("--set", "stack.config.bugs[0]")
    assert info.value.message.startswith("unknown bug 'no-fencin'; did you mean 'no-fencing'? "
                                         "(known: ack-before-fsync, ")
    with pytest.raises(SpecError) as info:
        parse_stack_config(["bugs=nope"])
    assert (info.value.source, info.value.field) == ("--set", "stack.config.bugs[0]")


NEMESIS_DRILL = GOOD + """\
  nemesis:
    rounds: 4
    start: 20s
    interval: [1s, 2s]
    duration: [1s, 3s]
    faults: [{crash: store-west}, {latency: api->store-east, ms: 100}]
"""


def test_nemesis_overrides_and_replay(tmp_path: Path) -> None:
    path = write(tmp_path, NEMESIS_DRILL)
    first, second = load_drill(path), load_drill(path)
    seeds = [d.timeline.nemesis.seed for d in (first, second)]  # type: ignore[union-attr]
    pinned = load_drill(path, sets=[f"timeline.nemesis.seed={seeds[0]}"])
    assert pinned.timeline.all_faults == first.timeline.all_faults
    replay = load_drill(write(tmp_path, first.to_yaml(), "replay.yaml"))
    assert replay.timeline.all_faults == first.timeline.all_faults
    more = load_drill(path, sets=[f"timeline.nemesis.seed={seeds[0]}",
                                  "timeline.nemesis.rounds=6",
                                  "timeline.nemesis.faults[1].ms=300"])
    assert len(more.timeline.all_faults) == 7
    validate_targets(more, TOPOLOGY)
    with pytest.raises(SpecError) as info:
        load_drill(path, sets=["timeline.nemesis.interval=[3s, 1s]"])
    assert (info.value.source, info.value.field) == ("--set", "timeline.nemesis.interval")


def test_stack_config_from_sets() -> None:
    cfg = parse_stack_config(["fsync=never", "stack.config.detection=2500ms",
                              "replication=async"])
    assert dict(cfg) == {"replication": "async", "fsync": "never", "detection": 2.5}
    assert parse_stack_config(["fsync=always"])["fsync"] == "always"
    with pytest.raises(SpecError) as info:
        parse_stack_config(["detecton=2s"])
    assert (info.value.source, info.value.field) == ("--set", "stack.config.detecton")
    assert "did you mean 'detection'?" in info.value.message
    with pytest.raises(SpecError) as info:
        parse_stack_config(["fsync=sometimes"])
    assert (info.value.source, info.value.field) == ("--set", "stack.config.fsync")


# ---------------------------------------------------------------- finding and loading


def test_unknown_builtin_name_lists_the_builtins() -> None:
    with pytest.raises(SpecError) as info:
        load_drill("dc-east-powerloss")
    assert info.value.source == "dc-east-powerloss"
    assert info.value.message == (
        "unknown drill 'dc-east-powerloss'; did you mean 'dc-east-power-loss'? (built-ins: "
        + ", ".join(sorted(BUILTINS)) + "); or give a path to a .yaml file")


def test_missing_drill_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load_drill(str(missing))
    assert (info.value.source, info.value.message) == (str(missing), "no such drill file")


def test_load_a_drill_file_by_path(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    for ref in (path, str(path)):
        spec = load_drill(ref, sets=["load.users=3"])
        assert (spec.drill, spec.source, spec.text, spec.load.users) == ("t", str(path), GOOD, 3)
    assert spec.load.locustfile is None  # the target's own


def test_errors_in_a_file_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("power_down", "power_dwn"))
    with pytest.raises(SpecError) as info:
        load_drill(path)
    assert str(info.value).startswith(f"{path}: timeline.faults[0].power_dwn: unknown field "
                                      "'power_dwn'; did you mean 'power_down'?")


def test_undecodable_file_is_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"drill: \xff\xfe\n")
    with pytest.raises(SpecError, match="cannot read the drill file"):
        load_drill(path)


def test_relative_locustfile_resolves_against_the_drill_file(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine.py").write_text("# a locustfile\n")
    path = write(tmp_path / "sub", GOOD.replace("users: 10", "users: 10, locustfile: mine.py"))
    monkeypatch.chdir(tmp_path)  # the current directory must not matter
    spec = load_drill(path)
    assert spec.load.locustfile == str((tmp_path / "sub" / "mine.py").resolve())


def test_missing_locustfile_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("users: 10", "users: 10, locustfile: gone.py"))
    with pytest.raises(SpecError) as info:
        load_drill(path)
    assert (info.value.source, info.value.field) == (str(path), "load.locustfile")
    assert info.value.message == f"no such file: {tmp_path / 'gone.py'}"


def test_locustfile_set_on_the_command_line_resolves_against_cwd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "here.py").write_text("# a locustfile\n")
    (tmp_path / "drills").mkdir()
    path = write(tmp_path / "drills", GOOD)  # not beside here.py: the cwd decides
    monkeypatch.chdir(tmp_path)
    assert load_drill(path, sets=["load.locustfile=here.py"]).load.locustfile == str(
        (tmp_path / "here.py").resolve())
    with pytest.raises(SpecError) as info:
        load_drill(path, sets=["load.locustfile=./absent.py"])
    assert (info.value.source, info.value.field) == ("--set", "load.locustfile")


def test_compose_file_resolves_for_docker(tmp_path: Path) -> None:
    (tmp_path / "compose.yml").write_text("services: {}\n")
    text = GOOD + "stack: {provider: docker, compose: compose.yml}\n"
    spec = load_drill(write(tmp_path, text))
    assert spec.stack.compose == str((tmp_path / "compose.yml").resolve())
    with pytest.raises(SpecError, match="no such file"):
        load_drill(write(tmp_path, text.replace("compose.yml}", "other.yml}"), "e.yaml"))


# ---------------------------------------------------------------- the built-in drills


def test_the_builtins_are_the_thirteen_drills() -> None:
    found = builtin_drills()
    assert {d.name for d in found} == BUILTINS
    assert [d.name for d in found] == sorted(d.name for d in found)
    assert find_drill("zone-flap") == catalog.builtin_dir() / "zone-flap.yaml"


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_loads_and_targets_clipstream(name: str) -> None:
    entry = next(d for d in builtin_drills() if d.name == name)
    drill = load_drill(name)
    validate_targets(drill, TOPOLOGY)
    assert drill.drill == name == entry.path.stem
    assert drill.description == entry.description
    assert drill.rehearses and drill.passing_shows
    assert drill.text is not None and drill.text.startswith(f"# {name} ")  # documented
    assert drill.stack.provider == "local" and drill.load.locustfile is None
    assert drill.stack.target == "clipstream" and drill.data_measured
    assert 20 <= drill.load.users <= 30 and 100 <= drill.load.rate <= 150
    assert drill.timeline.load_duration <= 50  # make drill: < 90 s including start-up
    assert drill.timeline.all_faults and drill.objectives.rto.as_mapping()


def test_dc_east_power_loss_is_the_flagship_shape() -> None:
    drill = load_drill("dc-east-power-loss")
    # short enough that `make drill` (install included) stays under 90 s
    assert drill.timeline.load_duration <= 40
    assert drill.timeline.baseline >= 5 and drill.timeline.settle >= 10
    assert drill.timeline.faults[0].windows()[0].off - drill.timeline.faults[0].at <= 20
    assert dict(drill.stack.config) == {"replication": "sync", "fsync": "always",
                                        "detection": 1.5}
    assert drill.objectives.lost_acked_writes == 0 and drill.expect == "pass"


def test_only_witness_loss_is_expected_to_fail() -> None:
    expects = {d.name: load_drill(d.name).expect for d in builtin_drills()}
    assert {n for n, e in expects.items() if e == "fail"} == {"witness-loss"}
    witness = load_drill("witness-loss")
    assert witness.fails_on == ("rto.upload", "rto.view", "rto.like")
    assert "EXPECTED TO FAIL" in (witness.text or "")
    verdicts = dict.fromkeys(witness.objectives.names(), True)
    assert witness.judge({**verdicts, "rto.upload": False}) is True
    assert witness.judge(verdicts) is False
    assert witness.judge({**verdicts, "rto.upload": False, "lost_acked_writes": False}) is False


def test_zone_flap_flaps() -> None:
    windows = load_drill("zone-flap").timeline.faults[0].windows()
    assert len(windows) == 3 and [w.on for w in windows] == [10.0, 22.0, 34.0]


# ---------------------------------------------------------------- the reference


def test_reference_documents_every_field() -> None:
    text = reference_markdown()
    for model in (DrillSpec, spec.StackSpec, spec.NodeSpec, spec.ReadySpec, spec.LinkSpec,
                  spec.DataSpec, spec.ImageSpec, ClipStreamConfig, spec.LoadSpec,
                  spec.BurstSpec, spec.HotSpec, spec.Timeline, spec.FaultSpec, spec.NemesisSpec,
                  spec.FaultTemplate, spec.Objectives, spec.ExposureObjective,
                  spec.AnalysisSpec, spec.Guardrail):
        for name, field in model.model_fields.items():
            key = field.alias or name
            assert f"| `{key}` |" in text, (model.__name__, key)
            assert field.description, (model.__name__, key)
    assert "| `for` | duration > 0 | required | How long the fault lasts. |" in text
    assert "| `bucket` | duration > 0 | `250ms` |" in text
    assert "| `mode` | down\\|blackhole\\|reset | - |" in text  # pipes escaped in tables
    assert "| `users` | 1 <= int <= 5000 | `20` |" in text
    assert "| `timeout` | 0 < duration <= 60s | `1.5s` |" in text
    assert "| `at_revert` | bool | `false` |" in text
    assert "| `seed` | 0 <= int <= 2^63-1 | drawn at load |" in text
    for title in ("stack.nodes[]", "stack.nodes[].ready", "stack.links[]", "stack.data",
                  "stack.images.<tag>", "stack.config", "load.burst", "load.hot",
                  "timeline.nemesis", "timeline.nemesis.faults[]", "objectives.rto",
                  "objectives.exposure", "stack.config.bugs"):
        assert f"### {title}\n" in text or f"#### {title}\n" in text, title
    for name, what in BUGS.items():
        assert f"| `{name}` | {what} |" in text
    for name in CLASSES:  # the target's classes, as it documents them
        assert f"| `{name}` | {ClipStream.info.class_docs.get(name, '-')} |" in text
    assert "### stack.config\n\nThe knobs of the clipstream target." in text
    assert "{port}, {addr:NODE}, {link:NAME}, {data_dir}, {work_dir}, {python}" in text
    assert "without one they are not measured, may not be set" in text


def _all_keys(obj: Any) -> set[str]:
    if isinstance(obj, dict):
        return set(obj) | {k for v in obj.values() for k in _all_keys(v)}
    if isinstance(obj, list):
        return {k for v in obj for k in _all_keys(v)}
    return set()


def test_builtins_use_only_documented_keys() -> None:
    text = reference_markdown()
    for d in builtin_drills():
        for key in _all_keys(yaml.safe_load(d.path.read_text())):
            assert f"| `{key}` |" in text, (d.name, key)


# ---------------------------------------------------------------- the target


def test_the_target_is_resolved_from_the_stack_section() -> None:
    assert resolve_target({}, source="x") == ClipStream.info  # the default
    assert resolve_target("not a mapping", source="x") == ClipStream.info  # validation says
    assert resolve_target({"target": 5}, source="x") == ClipStream.info  # what is wrong
    own = resolve_target({"nodes": [{"name": "a"}]}, source="x")
    assert (own.name, own.custom, own.classes, own.config, own.data) == (
        "custom", True, None, None, False)
    assert resolve_target({"compose": "c.yml", "data": {"http": "/s"}}, source="x").data
    with pytest.raises(SpecError) as info:
        resolve_target({"target": "nope"}, source="d.yaml")
    assert (info.value.source, info.value.field) == ("d.yaml", "stack.target")


def test_a_target_set_on_the_command_line_is_blamed_on_it() -> None:
    with pytest.raises(SpecError) as info:
        parse_drill(GOOD, source="g.yaml", sets=["stack.target=clipstraem"])
    assert (info.value.source, info.value.field) == ("--set", "stack.target")
    assert info.value.message.startswith("unknown target 'clipstraem'; did you mean "
                                         "'clipstream'?")
    spec = parse_drill(GOOD, source="g.yaml", sets=["stack.target=clipstream"])
    assert spec.stack.target == "clipstream"


OWN = GOOD + """\
stack:
  nodes:
    - {name: kv, zone: dc-east, command: [python, kv.py, --port, "{port}"]}
"""


def test_overrides_reach_your_own_system() -> None:
    spec = parse_drill(OWN, source="o.yaml", sets=[
        "stack.nodes[0].env.KV_MODE=fast", "stack.nodes[0].ready.tcp=true",
        "load.classes.get_item=read", "objectives.rto.read=3s", "load.hot.keys=8"])
    kv = spec.stack.nodes[0]
    assert kv.env == {"KV_MODE": "fast"} and kv.ready is not None and kv.ready.tcp
    assert spec.load.classes == {"get_item": "read"} and spec.load.hot.keys == 8
    assert spec.objectives.rto.as_mapping() == {"read": 3.0}
    with pytest.raises(SpecError) as info:
        parse_drill(OWN, source="o.yaml", sets=["stack.config.fsync=never"])
    assert (info.value.source, info.value.field, info.value.message) == (
        "--set", "stack.config.fsync", "the custom target takes no knobs: leave stack.config "
        "out")
    with pytest.raises(SpecError) as info:
        parse_drill(OWN, source="o.yaml", sets=["stack.nodes[0].command=[kv, '{prot}']"])
    assert (info.value.source, info.value.field) == ("--set", "stack.nodes[0].command[1]")
    with pytest.raises(SpecError) as info:
        parse_drill(OWN, source="o.yaml", sets=["objectives.counters=ignore"])
    assert (info.value.source, info.value.field) == ("--set", "objectives.counters")
    assert info.value.message.startswith("not measured: this target has no final-read contract")


def test_stack_config_for_another_target() -> None:
    own = TargetInfo(name="custom")
    assert dict(parse_stack_config([], own)) == {}
    with pytest.raises(SpecError) as info:
        parse_stack_config(["fsync=never"], own)
    assert (info.value.source, info.value.field, info.value.message) == (
        "--set", "stack.config.fsync", "the custom target takes no knobs: leave stack.config "
        "out")
    assert isinstance(parse_stack_config(["fsync=never"]), ClipStreamConfig)


def test_a_locustfile_is_always_a_path(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("users: 10", "users: 10, locustfile: clipstream"))
    with pytest.raises(SpecError) as info:
        load_drill(path)
    assert (info.value.field, info.value.message) == (
        "load.locustfile", f"no such file: {tmp_path / 'clipstream'}")


def test_reference_without_classes_says_any_class_goes() -> None:
    text = reference_markdown(TargetInfo(name="custom"))
    assert "### objectives.rto\n" in text and "Any class name" in text
    assert "### stack.config\n" not in text and "#### stack.config.bugs" not in text
