"""The drill model (drills.spec, drills.duration): durations, every validation error's precise
message (source, field, what was expected), fault windows, targets, judging, YAML round trips.

Each check is shown to refuse a bad input with the exact field and message, and to accept the
good input next to it. No processes, no network: pure parsing.
"""

from __future__ import annotations

import copy
import itertools
import math
import subprocess
import sys
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from drills.catalog import builtin_drills, parse_drill
from drills.duration import format_duration, parse_duration, parse_positive_duration
from drills.errors import SpecError
from drills.model import OP_CLASSES
from drills.spec import (
    FAULT_KINDS,
    STACK_KNOBS,
    DrillSpec,
    FaultWindow,
    RtoObjectives,
    validate_targets,
)
from drills.stack.base import Topology
from drills.stack.clipstream import TOPOLOGY

BASE: dict[str, Any] = {
    "drill": "t",
    "description": "a test drill",
    "timeline": {"baseline": "5s", "faults": [{"at": "5s", "power_down": "dc-east", "for": "3s"}]},
}


def drill(*edits: tuple[str, Any]) -> str:
    """BASE with edits applied (dotted path with [i] -> value; value None deletes), as YAML."""
    data = copy.deepcopy(BASE)
    for path, value in edits:
        parts: list[Any] = []
        for piece in path.replace("]", "").split("."):
            name, *idx = piece.split("[")
            parts += [name, *map(int, idx)]
        cur = data
        for p in parts[:-1]:
            cur = cur.setdefault(p, {}) if isinstance(p, str) else cur[p]
        if value is None:
            del cur[parts[-1]]
        else:
            cur[parts[-1]] = value
    return yaml.safe_dump(data, sort_keys=False)


def parse(*edits: tuple[str, Any]) -> DrillSpec:
    return parse_drill(drill(*edits), source="t.yaml")


def refused(*edits: tuple[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse(*edits)
    assert info.value.source == "t.yaml"
    return info.value


# ---------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("10s", 10.0), ("2m", 120.0), ("1h", 3600.0), ("1.5s", 1.5), ("10", 10.0),
     (10, 10.0), (2.5, 2.5), (" 3s ", 3.0), ("0", 0.0), ("1e3ms", 1.0), (".5s", 0.5)],
)
def test_durations_parse_to_float_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad", ["10 sec", "", "ms", "s10", "1,5s", "10ss", True, None, [], {}, "inf", "nan",
            float("nan"), float("inf"), -1, "-1s", "1d"],
)
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_positive_duration_refuses_zero_only() -> None:
    assert parse_positive_duration("1ms") == 0.001
    with pytest.raises(ValueError, match="duration > 0"):
        parse_positive_duration("0s")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0s"), (0.25, "250ms"), (0.5, "500ms"), (1.5, "1.5s"), (10.0, "10s"), (90.0, "90s"),
     (120.0, "2m"), (3600.0, "1h"), (0.001, "1ms")],
)
def test_durations_format_to_their_shortest_text(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_format_refuses_what_is_not_a_duration(bad: float) -> None:
    with pytest.raises(ValueError):
        format_duration(bad)


@settings(deadline=None)  # no timing: a loaded machine must not fail it
@given(st.floats(min_value=0, allow_nan=False, allow_infinity=False))
def test_any_duration_round_trips_exactly(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@settings(deadline=None)
@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(["ms", "s", "m", "h"]))
def test_written_durations_survive_a_format_round_trip(n: int, unit: str) -> None:
    seconds = parse_duration(f"{n}{unit}")
    assert seconds == (n / 1000 if unit == "ms" else n * {"s": 1, "m": 60, "h": 3600}[unit])
    assert parse_duration(format_duration(seconds)) == seconds


# ---------------------------------------------------------------- a good drill and its defaults


def test_minimal_drill_gets_documented_defaults() -> None:
    spec = parse()
    assert (spec.stack.provider, dict(spec.stack.config)) == ("local", {})
    assert (spec.load.locustfile, spec.load.users, spec.load.rate, spec.load.timeout) == (
        "clipstream", 20, 100.0, 1.5)
    assert (spec.timeline.settle, spec.timeline.quiesce) == (20.0, 15.0)
    o = spec.objectives
    assert (o.lost_acked_writes, o.counters, o.split_brain, o.recovery) == (
        0, "exact", "forbid", "required")
    a = spec.analysis
    assert (a.bucket, a.hold, a.rho, a.epsilon, a.min_bucket_requests) == (
        0.25, 3.0, 0.5, 0.05, 20.0)
    assert spec.expect == "pass" and spec.fails_on == ()
    assert spec.timeline.faults[0].kind == "power_down"
    assert spec.timeline.faults[0].target == "dc-east"
    assert spec.source == "t.yaml" and spec.text == drill()


def test_spec_is_frozen() -> None:
    spec = parse()
    with pytest.raises(ValueError, match="frozen"):
        spec.load.users = 3  # type: ignore[misc]


def test_stack_config_reads_as_a_mapping_of_the_knobs_set() -> None:
    cfg = parse(("stack.config", {"fsync": "interval:200", "detection": "1500ms",
                                  "replication": "async"})).stack.config
    assert dict(cfg) == {"replication": "async", "fsync": "interval:200", "detection": 1.5}
    assert cfg["detection"] == 1.5 and "fsync" in cfg and "pull_interval" not in cfg
    assert len(cfg) == 3 and list(cfg) == ["replication", "fsync", "detection"]
    with pytest.raises(KeyError):
        cfg["pull_interval"]


def test_partition_mode_and_latency_jitter_have_defaults() -> None:
    spec = parse(("timeline.faults", [
        {"at": "5s", "for": "1s", "partition": "api->store-east"},
        {"at": "7s", "for": "1s", "latency": "api->store-east", "ms": 50},
        {"at": "9s", "for": "1s", "bandwidth": "api->store-east", "kbps": 64},
        {"at": "11s", "for": "1s", "crash": "api"},
    ]))
    params = [dict(f.params) for f in spec.timeline.faults]
    assert params == [{"mode": "down"}, {"ms": 50, "jitter": 0}, {"kbps": 64}, {}]


# ---------------------------------------------------------------- precise error messages


def test_misspelt_top_level_key_gets_did_you_mean() -> None:
    err = refused(("objectivs", {}))
    assert err.field == "objectivs"
    assert err.message.startswith("unknown field 'objectivs'; did you mean 'objectives'?")
    assert "(allowed: drill, description, rehearses, passing_shows, expect, fails_on, stack, " \
           "load, timeline, objectives, analysis)" in err.message
    assert str(err).startswith("t.yaml: objectivs: unknown field")


def test_misspelt_fault_kind_gets_did_you_mean() -> None:
    err = refused(("timeline.faults[0]", {"at": "5s", "powerdown": "dc-east", "for": "3s"}))
    assert err.field == "timeline.faults[0].powerdown"
    assert "did you mean 'power_down'?" in err.message


@pytest.mark.parametrize(
    ("fault", "got"),
    [({"at": "5s", "for": "1s"}, "none"),
     ({"at": "5s", "for": "1s", "crash": "api", "freeze": "api"}, "crash and freeze")],
)
def test_a_fault_needs_exactly_one_kind(fault: dict[str, Any], got: str) -> None:
    err = refused(("timeline.faults[0]", fault))
    assert err.field == "timeline.faults[0]"
    assert err.message == (f"a fault needs exactly one kind key, got {got}; kinds: "
                           "power_down, crash, freeze, partition, latency, bandwidth")


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (("stack.provider", "dokcer"), "stack.provider",
         "expected one of local, docker; got 'dokcer'; did you mean 'docker'?"),
        (("stack.config", {"replication": "semi"}), "stack.config.replication",
         "expected one of sync, async; got 'semi'"),
        (("objectives.counters", "approx"), "objectives.counters",
         "expected one of exact, ignore; got 'approx'"),
        (("objectives.split_brain", "allow"), "objectives.split_brain",
         "expected one of forbid, ignore; got 'allow'"),
        (("objectives.recovery", True), "objectives.recovery",
         "expected one of required, ignore; got True"),
        (("expect", "passes"), "expect", "expected one of pass, fail; got 'passes'; "
                                         "did you mean 'pass'?"),
        (("timeline.faults[0]", {"at": "5s", "for": "1s", "partition": "api->store-east",
                                 "mode": "drop"}),
         "timeline.faults[0].mode", "expected one of down, blackhole, reset; got 'drop'"),
    ],
)
def test_closed_sets_list_their_values(edit: tuple[str, Any], field: str, message: str) -> None:
    err = refused(edit)
    assert (err.field, err.message) == (field, message)


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (("load.users", 0), "load.users", "expected int >= 1, got 0"),
        (("load.users", "many"), "load.users", "expected int >= 1, got 'many'"),
        (("load.users", 1.5), "load.users", "expected int >= 1, got 1.5"),
        (("load.users", True), "load.users", "expected int >= 1, got True"),
        (("load.rate", 0), "load.rate", "expected float > 0, got 0"),
        (("load.rate", "fast"), "load.rate", "expected float > 0, got 'fast'"),
        (("objectives.lost_acked_writes", -1), "objectives.lost_acked_writes",
         "expected int >= 0, got -1"),
        (("analysis.rho", 0), "analysis.rho", "expected 0 < float <= 1, got 0"),
        (("analysis.rho", 1.5), "analysis.rho", "expected 0 < float <= 1, got 1.5"),
        (("analysis.epsilon", 1), "analysis.epsilon", "expected 0 <= float < 1, got 1"),
        (("analysis.min_bucket_requests", -1), "analysis.min_bucket_requests",
         "expected float >= 0, got -1"),
        (("drill", "Bad Name"), "drill", "expected [a-z0-9-]+, got 'Bad Name'"),
        (("drill", "-x"), "drill", "expected [a-z0-9-]+, got '-x'"),
        (("description", ""), "description", "must not be empty"),
        (("description", 42), "description", "expected text, got 42"),
        (("stack", [1]), "stack", "expected mapping, got a list"),
        (("timeline.faults", "x"), "timeline.faults", "expected list of faults, got 'x'"),
        (("timeline.faults[0].repeat", 0), "timeline.faults[0].repeat",
         "expected int >= 1, got 0"),
        (("timeline.faults[0].power_down", 7), "timeline.faults[0].power_down",
         "expected zone, got 7"),
    ],
)
def test_wrong_values_say_what_was_expected(edit: tuple[str, Any], field: str,
                                            message: str) -> None:
    err = refused(edit)
    assert (err.field, err.message) == (field, message)


@pytest.mark.parametrize(
    ("edit", "field"),
    [(("timeline.baseline", "soon"), "timeline.baseline"),
     (("timeline.faults[0].for", "3 secs"), "timeline.faults[0].for"),
     (("stack.config", {"detection": "fast"}), "stack.config.detection"),
     (("objectives.rto", {"feed": "quick"}), "objectives.rto.feed"),
     (("load.timeout", []), "load.timeout")],
)
def test_bad_durations_name_the_field(edit: tuple[str, Any], field: str) -> None:
    err = refused(edit)
    assert err.field == field
    assert err.message.startswith("expected a duration such as 500ms, 10s, 2m or a number of "
                                  "seconds, got ")


@pytest.mark.parametrize(
    ("edit", "field"),
    [(("timeline.baseline", 0), "timeline.baseline"),
     (("timeline.faults[0].for", "0ms"), "timeline.faults[0].for"),
     (("timeline.settle", 0), "timeline.settle"),
     (("analysis.bucket", "0s"), "analysis.bucket")],
)
def test_zero_length_phases_are_refused(edit: tuple[str, Any], field: str) -> None:
    err = refused(edit)
    assert err.field == field and "expected a duration > 0" in err.message


def test_negative_duration_is_refused() -> None:
    err = refused(("timeline.faults[0].at", "-1s"))
    assert err.field == "timeline.faults[0].at"
    assert err.message == "expected a finite duration >= 0, got '-1s'"


def test_missing_required_fields_are_named() -> None:
    err = refused(("timeline", None))
    assert err.field == "timeline"
    assert err.message.startswith("required field missing: expected mapping")
    err = refused(("timeline.faults[0].for", None))
    assert err.field == "timeline.faults[0].for"
    assert err.message == ("required field missing: expected duration > 0 (How long the fault "
                           "lasts.)")


def test_several_problems_are_all_reported() -> None:
    err = refused(("load.users", 0), ("stack.provider", "k8s"))
    assert err.field == "stack.provider"  # the first, in declaration order
    assert "\n  also load.users: expected int >= 1, got 0" in err.message


def test_unknown_stack_knob_lists_the_allowed_ones() -> None:
    err = refused(("stack.config", {"fsyncc": "always"}))
    assert err.field == "stack.config.fsyncc"
    assert err.message == ("unknown field 'fsyncc'; did you mean 'fsync'? (allowed: "
                           f"{', '.join(STACK_KNOBS)})")


@pytest.mark.parametrize("value", ["sometimes", "interval:", "interval:0", "interval:1.5",
                                   "interval:10ms", "ALWAYS"])
def test_bad_fsync_policy(value: str) -> None:
    err = refused(("stack.config", {"fsync": value}))
    assert err.field == "stack.config.fsync"
    assert err.message == ("expected always, never or interval:<ms> (ms an integer >= 1), "
                           f"got {value!r}")


@pytest.mark.parametrize("value", ["always", "never", "interval:1", "interval:500"])
def test_good_fsync_policy(value: str) -> None:
    assert parse(("stack.config", {"fsync": value})).stack.config["fsync"] == value


def test_compose_needs_the_docker_provider() -> None:
    err = refused(("stack.compose", "/nonexistent/compose.yml"))
    assert err.field == "stack.compose"
    assert err.message == "compose applies only to provider docker (provider is local)"


def test_misspelt_rto_class_gets_did_you_mean() -> None:
    err = refused(("objectives.rto", {"uplod": "5s"}))
    assert err.field == "objectives.rto.uplod"
    assert err.message.startswith("unknown field 'uplod'; did you mean 'upload'?")
    assert parse(("objectives.rto", {"upload": "5s"})).objectives.rto.as_mapping() == {
        "upload": 5.0}


def test_rto_classes_are_the_model_op_classes() -> None:
    assert tuple(RtoObjectives.model_fields) == OP_CLASSES


# ---------------------------------------------------------------- fault parameters


def fault(**kw: Any) -> tuple[str, Any]:
    return ("timeline.faults[0]", {"at": "5s", "for": "4s", **kw})


@pytest.mark.parametrize(
    ("kw", "field", "message"),
    [
        ({"crash": "api", "mode": "down"}, "timeline.faults[0].mode",
         "'mode' does not apply to a crash fault (crash takes: no parameters)"),
        ({"partition": "api->store-east", "ms": 5}, "timeline.faults[0].ms",
         "'ms' does not apply to a partition fault (partition takes: mode)"),
        ({"latency": "api->store-east", "kbps": 5, "ms": 5}, "timeline.faults[0].kbps",
         "'kbps' does not apply to a latency fault (latency takes: ms, jitter)"),
        ({"latency": "api->store-east"}, "timeline.faults[0].ms",
         "a latency fault needs ms (the added delay, int >= 1)"),
        ({"latency": "api->store-east", "ms": 10, "jitter": 11}, "timeline.faults[0].jitter",
         "jitter (11) must not exceed ms (10)"),
        ({"bandwidth": "api->store-east"}, "timeline.faults[0].kbps",
         "a bandwidth fault needs kbps (kilobytes/s, int >= 1)"),
        ({"bandwidth": "api->store-east", "kbps": 0}, "timeline.faults[0].kbps",
         "expected int >= 1, got 0"),
    ],
)
def test_fault_parameters_belong_to_their_kind(kw: dict[str, Any], field: str,
                                               message: str) -> None:
    err = refused(fault(**kw))
    assert (err.field, err.message) == (field, message)


def test_fault_must_not_start_inside_the_baseline() -> None:
    err = refused(("timeline.faults[0].at", "2s"))
    assert err.field == "timeline.faults[0].at"
    assert err.message == "a fault must start at or after the baseline (5s), got 2s"
    assert parse(("timeline.faults[0].at", "5s")).timeline.faults[0].at == 5.0


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"repeat": 3}, "repeat is 3: every (the period) is required"),
     ({"every": "10s"}, "every applies only when repeat > 1"),
     ({"repeat": 2, "every": "4s"}, "every (4s) must be longer than for (4s): windows would "
                                    "overlap")],
)
def test_flapping_needs_a_period_longer_than_the_window(kw: dict[str, Any], message: str) -> None:
    err = refused(fault(power_down="dc-east", **kw))
    assert (err.field, err.message) == ("timeline.faults[0].every", message)


def test_same_fault_on_same_target_must_not_overlap() -> None:
    faults = [{"at": "5s", "for": "10s", "partition": "api->store-east"},
              {"at": "10s", "for": "2s", "partition": "api->store-east", "mode": "reset"}]
    err = refused(("timeline.faults", faults))
    assert err.field == "timeline.faults[1]"
    assert err.message == ("overlaps faults[0] (partition api->store-east at 5s for 10s): two "
                           "partition faults on api->store-east at once")
    faults[1]["at"] = "15s"  # back to back is fine
    assert len(parse(("timeline.faults", faults)).timeline.faults) == 2


def test_different_toxics_on_one_link_may_overlap() -> None:
    faults = [{"at": "5s", "for": "10s", "latency": "api->store-east", "ms": 10},
              {"at": "5s", "for": "10s", "bandwidth": "api->store-east", "kbps": 100}]
    assert len(parse(("timeline.faults", faults)).timeline.faults) == 2


# ---------------------------------------------------------------- windows and durations


def test_single_fault_has_one_window() -> None:
    f = parse(("timeline.faults[0].at", "10s"), ("timeline.faults[0].for", "20s"))
    assert f.timeline.faults[0].windows() == (FaultWindow(10.0, 30.0, 0),)
    assert f.timeline.fault_end == 30.0 and f.timeline.load_duration == 50.0


def test_flap_expands_into_repeat_windows_every_period() -> None:
    spec = parse(fault(power_down="dc-east", repeat=3, every="12s"))
    windows = spec.timeline.faults[0].windows()
    assert [(w.on, w.off, w.repeat_index) for w in windows] == [
        (5.0, 9.0, 0), (17.0, 21.0, 1), (29.0, 33.0, 2)]
    assert spec.timeline.fault_end == 33.0
    assert spec.timeline.faults[0].describe() == "power_down dc-east at 5s for 4s x3 every 12s"


def test_timeline_windows_are_sorted_across_faults() -> None:
    faults = [{"at": "20s", "for": "1s", "crash": "api"},
              {"at": "5s", "for": "2s", "freeze": "coordinator", "repeat": 2, "every": "30s"}]
    spec = parse(("timeline.faults", faults))
    assert [(i, w.on) for i, w in spec.timeline.windows()] == [(1, 5.0), (0, 20.0), (1, 35.0)]
    assert spec.timeline.load_duration == 37.0 + 20.0


def test_no_faults_means_baseline_plus_settle() -> None:
    spec = parse(("timeline.faults", []))
    assert spec.timeline.fault_end == 5.0 and spec.timeline.load_duration == 25.0


def test_touching_windows_do_not_overlap() -> None:
    assert not FaultWindow(0, 5).overlaps(FaultWindow(5, 6))
    assert FaultWindow(0, 5).overlaps(FaultWindow(4.999, 6))


@settings(deadline=None)
@given(at=st.integers(5, 100), length=st.integers(1, 30), repeat=st.integers(1, 6),
       gap=st.integers(1, 30))
def test_flap_windows_are_disjoint_and_evenly_spaced(at: int, length: int, repeat: int,
                                                     gap: int) -> None:
    kw: dict[str, Any] = {"at": at, "for": length, "power_down": "dc-east", "repeat": repeat}
    if repeat > 1:
        kw["every"] = length + gap
    windows = parse(("timeline.faults[0]", kw)).timeline.faults[0].windows()
    assert len(windows) == repeat and windows[0].on == at
    assert all(w.off - w.on == length for w in windows)
    assert all(b.on - a.on == length + gap for a, b in itertools.pairwise(windows))
    assert not any(a.overlaps(b) for a, b in itertools.pairwise(windows))


# ---------------------------------------------------------------- cross-section checks


def test_settle_must_cover_the_recovery_hold() -> None:
    err = refused(("timeline.settle", "2s"))
    assert err.field == "timeline.settle"
    assert err.message == ("settle (2s) is shorter than analysis.hold (3s): recovery after the "
                           "last fault could never be shown")
    assert parse(("timeline.settle", "2s"), ("analysis.hold", "2s")).timeline.settle == 2.0


def test_hold_must_span_a_bucket() -> None:
    err = refused(("analysis", {"bucket": "1s", "hold": "500ms"}))
    assert (err.field, err.message) == ("analysis.hold", "hold (500ms) must be at least one "
                                                         "bucket (1s)")


def test_fails_on_needs_expect_fail_and_real_objectives() -> None:
    err = refused(("fails_on", ["recovery"]))
    assert (err.field, err.message) == ("fails_on", "fails_on applies only with expect: fail")
    err = refused(("expect", "fail"), ("fails_on", ["recovery", "rto.upload"]))
    assert err.field == "fails_on[1]"
    assert err.message == ("'rto.upload' is not an objective of this drill; objectives: "
                           "lost_acked_writes, counters, split_brain, recovery")
    ok = parse(("expect", "fail"), ("fails_on", ["recovery"]))
    assert ok.fails_on == ("recovery",)


# ---------------------------------------------------------------- judging a rehearsal


def judged(expect: str, fails_on: list[str] | None = None) -> DrillSpec:
    edits: list[tuple[str, Any]] = [("objectives.rto", {"upload": "10s", "feed": "5s"}),
                                    ("expect", expect)]
    if fails_on:
        edits.append(("fails_on", fails_on))
    return parse(*edits)


ALL_PASS = {"rto.upload": True, "rto.feed": True, "lost_acked_writes": True, "counters": True,
            "split_brain": True, "recovery": True}


def test_objective_names_follow_the_objectives() -> None:
    assert judged("pass").objectives.names() == tuple(ALL_PASS)
    spec = parse(("objectives", {"counters": "ignore", "recovery": "ignore"}))
    assert spec.objectives.names() == ("lost_acked_writes", "split_brain")


def test_expect_pass_needs_every_objective() -> None:
    spec = judged("pass")
    assert spec.judge(ALL_PASS) is True
    assert spec.judge({**ALL_PASS, "rto.feed": False}) is False
    assert spec.judge({**ALL_PASS, "counters": None}) is None
    assert spec.judge({k: v for k, v in ALL_PASS.items() if k != "recovery"}) is None
    assert spec.judge({**ALL_PASS, "not-an-objective": False}) is True


def test_expect_fail_succeeds_only_on_the_named_failure() -> None:
    spec = judged("fail", ["rto.upload"])
    assert spec.judge({**ALL_PASS, "rto.upload": False}) is True
    assert spec.judge(ALL_PASS) is False  # the known limit did not show
    assert spec.judge({**ALL_PASS, "rto.upload": False, "lost_acked_writes": False}) is False
    assert spec.judge({**ALL_PASS, "rto.upload": False, "counters": None}) is None
    assert spec.judge({**ALL_PASS, "rto.upload": None}) is None


def test_expect_fail_without_fails_on_accepts_any_failure() -> None:
    spec = judged("fail")
    assert spec.judge({**ALL_PASS, "split_brain": False}) is True
    assert spec.judge(ALL_PASS) is False


# ---------------------------------------------------------------- targets


def targets_of(*faults: dict[str, Any]) -> DrillSpec:
    return parse(("timeline.faults", list(faults)))


@pytest.mark.parametrize(
    ("f", "field", "message"),
    [
        ({"power_down": "dc-eats"}, "timeline.faults[0].power_down",
         "unknown zone 'dc-eats'; did you mean 'dc-east'? (zones: edge, dc-east, dc-west, "
         "witness)"),
        ({"crash": "store-north"}, "timeline.faults[0].crash",
         "unknown node 'store-north'; did you mean 'store-west'? (nodes: api, store-east, "
         "store-west, coordinator)"),
        ({"freeze": "dc-east"}, "timeline.faults[0].freeze",
         "unknown node 'dc-east' (nodes: api, store-east, store-west, coordinator); 'dc-east' "
         "is a zone: power_down it, or target one of its nodes (store-east)"),
        ({"power_down": "store-east"}, "timeline.faults[0].power_down",
         "unknown zone 'store-east' (zones: edge, dc-east, dc-west, witness); 'store-east' is a "
         "node of zone dc-east: crash or freeze it, or name the zone"),
        ({"partition": "store-east<->store-west"}, "timeline.faults[0].partition",
         "unknown link 'store-east<->store-west'; did you mean 'store-east->store-west'? "
         "(links: " + ", ".join(TOPOLOGY.links) + ")"),
        ({"latency": "zzz", "ms": 5}, "timeline.faults[0].latency",
         "unknown link 'zzz' (links: " + ", ".join(TOPOLOGY.links) + ")"),
    ],
)
def test_unknown_targets_list_the_allowed_ones(f: dict[str, Any], field: str,
                                               message: str) -> None:
    spec = targets_of({"at": "5s", "for": "1s", **f})
    with pytest.raises(SpecError) as info:
        validate_targets(spec, TOPOLOGY)
    assert (info.value.source, info.value.field, info.value.message) == ("t.yaml", field, message)


def test_known_targets_pass() -> None:
    spec = targets_of({"at": "5s", "for": "1s", "power_down": "witness"},
                      {"at": "5s", "for": "1s", "crash": "store-west"},
                      {"at": "5s", "for": "1s", "partition": "coordinator->store-east"})
    validate_targets(spec, TOPOLOGY)


def test_node_faults_must_not_overlap_on_a_node() -> None:
    spec = targets_of({"at": "5s", "for": "10s", "power_down": "dc-east"},
                      {"at": "8s", "for": "1s", "crash": "store-east"})
    with pytest.raises(SpecError) as info:
        validate_targets(spec, TOPOLOGY)
    assert info.value.field == "timeline.faults[1]"
    assert info.value.message == ("overlaps faults[0] (power_down dc-east at 5s for 10s) on "
                                  "node store-east: faults stopping one node must not overlap "
                                  "in time")
    after = targets_of({"at": "5s", "for": "10s", "power_down": "dc-east"},
                       {"at": "15s", "for": "1s", "crash": "store-east"})
    validate_targets(after, TOPOLOGY)


def test_targets_validate_against_any_topology_shape() -> None:
    other = Topology(zones={"rack-1": ("db",)}, links=("app->db",))
    spec = targets_of({"at": "5s", "for": "1s", "power_down": "rack-1"},
                      {"at": "5s", "for": "1s", "partition": "app->db"})
    validate_targets(spec, other)
    with pytest.raises(SpecError, match="unknown zone 'rack-1'"):
        validate_targets(spec, TOPOLOGY)


def test_spec_imports_neither_the_stacks_nor_the_catalog() -> None:
    code = ("import sys, drills.spec; print(sorted(m for m in sys.modules "
            "if m.startswith(('drills.stack', 'drills.catalog'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"


def test_every_fault_kind_has_a_target_type() -> None:
    for kind in FAULT_KINDS:
        spec = targets_of({"at": "5s", "for": "1s", kind: "nowhere", **(
            {"ms": 1} if kind == "latency" else {"kbps": 1} if kind == "bandwidth" else {})})
        with pytest.raises(SpecError, match=r"unknown (zone|node|link) 'nowhere'"):
            validate_targets(spec, TOPOLOGY)


# ---------------------------------------------------------------- YAML out and back


def test_to_yaml_reads_back_identical() -> None:
    spec = parse(fault(latency="api->store-east", ms=30, jitter=5, repeat=2, every="10s"),
                 ("stack.config", {"detection": "1.5s", "fsync": "interval:100"}))
    again = parse_drill(spec.to_yaml(), source="again.yaml")
    assert again.model_dump() == spec.model_dump()
    assert "for: 4s" in spec.to_yaml() and "detection: 1.5s" in spec.to_yaml()


@pytest.mark.parametrize("name", [d.name for d in builtin_drills()])
def test_builtin_drills_round_trip_through_yaml(name: str) -> None:
    from drills.catalog import load_drill

    spec = load_drill(name)
    assert parse_drill(spec.to_yaml()).model_dump() == spec.model_dump()


def test_analysis_defaults_match_the_checks() -> None:
    checks = pytest.importorskip("drills.checks")
    a = parse().analysis
    assert checks.AnalysisParams(bucket_s=a.bucket, hold_s=a.hold, rho=a.rho, epsilon=a.epsilon,
                                 min_bucket_requests=a.min_bucket_requests) == (
        checks.AnalysisParams())
