"""The drill model (drills.spec, drills.duration): durations, every validation error's precise
message (source, field, what was expected), fault windows, targets, judging, YAML round trips,
and the drill file of your own system (nodes, links, placeholders, entry, stores, data contract).

Each check is shown to refuse a bad input with the exact field and message, and to accept the
good input next to it. The target is ClipStream (the default) unless a test says otherwise. No
processes, no network: pure parsing.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from drills.catalog import builtin_drills, parse_drill
from drills.duration import format_duration, parse_duration, parse_positive_duration
from drills.errors import SpecError
from drills.spec import (
    FAULT_KINDS,
    TARGET_CONTEXT,
    AnyKnobs,
    DrillSpec,
    FaultWindow,
    KnobsModel,
    TargetInfo,
    doc_field,
    expand,
    placeholders,
    validate_targets,
)
from drills.stack.base import Topology
from drills.targets.clipstream import BUGS, CLASSES, TOPOLOGY, ClipStream, ClipStreamConfig
from drills.targets.clipstream.target import KNOBS, knob_env

STACK_KNOBS = tuple(ClipStreamConfig.model_fields)

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
    assert (spec.stack.target, spec.stack.target_name) == ("clipstream", "clipstream")
    assert isinstance(spec.stack.config, ClipStreamConfig) and spec.data_measured
    assert (spec.load.locustfile, spec.load.users, spec.load.rate, spec.load.timeout) == (
        None, 20, 100.0, 1.5)
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
        spec.load.users = 3


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
    assert params == [{"mode": "down"}, {"ms": 50, "jitter": 0, "direction": "both"},
                      {"kbps": 64}, {}]


def test_latency_can_delay_one_direction_only() -> None:
    spec = parse(("timeline.faults", [{"at": "5s", "for": "1s", "latency": "api->store-east",
                                       "ms": 50, "direction": "upstream"}]))
    assert dict(spec.timeline.faults[0].params)["direction"] == "upstream"
    err = refused(("timeline.faults", [{"at": "5s", "for": "1s", "latency": "api->store-east",
                                        "ms": 50, "direction": "sideways"}]))
    assert err.field == "timeline.faults[0].direction"
    err = refused(("timeline.faults", [{"at": "5s", "for": "1s", "partition": "api->store-east",
                                        "direction": "upstream"}]))
    assert "'direction' does not apply to a partition fault" in err.message


# ---------------------------------------------------------------- precise error messages


def test_misspelt_top_level_key_gets_did_you_mean() -> None:
    err = refused(("objectivs", {}))
    assert err.field == "objectivs"
    assert err.message.startswith("unknown field 'objectivs'; did you mean 'objectives'?")
    assert "(allowed: drill, description, rehearses, passing_shows, expect, fails_on, catches, " \
           "stack, load, timeline, objectives, analysis, guardrails)" in err.message
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
        (("load.users", 0), "load.users", "expected 1 <= int <= 5000, got 0"),
        (("load.users", "many"), "load.users", "expected 1 <= int <= 5000, got 'many'"),
        (("load.users", 1.5), "load.users", "expected 1 <= int <= 5000, got 1.5"),
        (("load.users", True), "load.users", "expected 1 <= int <= 5000, got True"),
        (("load.users", 5001), "load.users", "expected 1 <= int <= 5000, got 5001"),
        (("load.rate", 0), "load.rate", "expected 0 < float <= 10000, got 0"),
        (("load.rate", "fast"), "load.rate", "expected 0 < float <= 10000, got 'fast'"),
        (("load.rate", 10000.5), "load.rate", "expected 0 < float <= 10000, got 10000.5"),
        (("load.rate", float("inf")), "load.rate", "expected 0 < float <= 10000, got inf"),
        (("load.rate", float("nan")), "load.rate", "expected 0 < float <= 10000, got nan"),
        (("load.timeout", "61s"), "load.timeout", "expected 0 < duration <= 60s, got 61s"),
        (("load.timeout", "2m"), "load.timeout", "expected 0 < duration <= 60s, got 2m"),
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
         "expected 1 <= int <= 1000, got 0"),
        (("timeline.faults[0].repeat", 1001), "timeline.faults[0].repeat",
         "expected 1 <= int <= 1000, got 1001"),
        (("analysis.min_bucket_requests", float("inf")), "analysis.min_bucket_requests",
         "expected float >= 0, got inf"),
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
    assert "\n  also load.users: expected 1 <= int <= 5000, got 0" in err.message


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
    assert err.message == ("unknown class 'uplod'; did you mean 'upload'? (classes: upload, "
                           "feed, view, like, search, stats)")
    assert parse(("objectives.rto", {"upload": "5s"})).objectives.rto.as_mapping() == {
        "upload": 5.0}


def test_rto_classes_come_from_the_target_in_its_order() -> None:
    assert ClipStream.info.classes == tuple(CLASSES) == (
        "upload", "feed", "view", "like", "search", "stats")
    rto = parse(("objectives.rto", {"stats": "3s", "upload": "5s", "feed": 0}))
    assert list(rto.objectives.rto.as_mapping().items()) == [
        ("upload", 5.0), ("feed", 0.0), ("stats", 3.0)]


def test_without_a_target_any_rto_class_goes_in_file_order() -> None:
    raw = {**yaml.safe_load(drill()), "objectives": {"rto": {"GET /z": "2s", "put": "1s"}}}
    spec = DrillSpec.model_validate(raw)
    assert list(spec.objectives.rto.as_mapping()) == ["GET /z", "put"]
    assert spec.objectives.names()[:2] == ("rto.GET /z", "rto.put")
    with pytest.raises(ValueError, match="expected a class name"):
        DrillSpec.model_validate({**raw, "objectives": {"rto": {"": "2s"}}})


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
         "'kbps' does not apply to a latency fault (latency takes: ms, jitter, direction)"),
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
    assert err.message == ("faults[1] (partition api->store-east at 10s for 2s) overlaps "
                           "faults[0] (partition api->store-east at 5s for 10s): two "
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
                           "lost_acked_writes, counters, zero_reads, split_brain, recovery")
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
            "zero_reads": True, "split_brain": True, "recovery": True}


def test_objective_names_follow_the_objectives() -> None:
    assert judged("pass").objectives.names() == tuple(ALL_PASS)
    spec = parse(("objectives", {"counters": "ignore", "recovery": "ignore"}))
    assert spec.objectives.names() == ("lost_acked_writes", "zero_reads", "split_brain")
    spec = parse(("objectives", {"zero_reads": "ignore", "exposure": {"min_writes_at_risk": 5}}))
    assert spec.objectives.names() == ("lost_acked_writes", "counters", "split_brain",
                                       "recovery", "exposure")
    spec = parse(("objectives.zero_reads", "fresh"))
    assert spec.objectives.names() == ("lost_acked_writes", "counters", "zero_reads",
                                       "split_brain", "recovery")


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
    assert info.value.message == (
        "faults[1] (crash store-east at 8s for 1s) overlaps faults[0] (power_down dc-east at 5s "
        "for 10s) on node store-east (from 8s): both stop it at once, and reverting one would "
        "restart it while the other still holds it down; faults stopping one node must not "
        "overlap in time")
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


def test_spec_imports_neither_the_stacks_nor_the_targets_nor_the_catalog() -> None:
    code = ("import sys, drills.spec, drills.spec.reference; print(sorted(m for m in "
            "sys.modules if m.startswith(('drills.stack', 'drills.targets', 'drills.catalog'))))")
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


# ---------------------------------------------------------------- planted bugs (stack.config.bugs)


def clipstream_config(spec: DrillSpec) -> ClipStreamConfig:
    cfg = spec.stack.config
    assert isinstance(cfg, ClipStreamConfig)
    return cfg


def test_no_bugs_by_default_and_the_mapping_hides_them() -> None:
    cfg = clipstream_config(parse())
    assert cfg.bugs == () and "bugs" not in cfg and dict(cfg) == {}
    with pytest.raises(KeyError):
        cfg["bugs"]


def test_bugs_are_a_tuple_of_names_in_the_mapping() -> None:
    cfg = clipstream_config(parse(("stack.config", {"bugs": ["no-fencing", "ack-before-fsync"],
                                                    "fsync": "always"})))
    assert cfg.bugs == ("no-fencing", "ack-before-fsync")
    assert dict(cfg) == {"fsync": "always", "bugs": ("no-fencing", "ack-before-fsync")}
    assert list(cfg) == ["fsync", "bugs"] and len(cfg) == 2
    assert knob_env(cfg) == {"CLIPSTREAM_FSYNC": "always",
                             "CLIPSTREAM_BUGS": "no-fencing,ack-before-fsync"}


def test_bugs_as_text_are_comma_separated() -> None:
    cfg = clipstream_config(parse(("stack.config.bugs", "no-fencing, count-retries-twice")))
    assert cfg.bugs == ("no-fencing", "count-retries-twice")


def test_the_known_bugs_are_defined_once_in_clipstream() -> None:
    assert list(BUGS) == ["ack-before-fsync", "ack-before-replication",
                          "promote-lagging-replica", "no-fencing", "count-retries-twice",
                          "zero-counts-when-degraded", "failback-with-stale-data"]
    assert all(isinstance(v, str) and v for v in BUGS.values())
    assert KNOBS["bugs"] == ("CLIPSTREAM_BUGS", "list")
    assert set(KNOBS) == set(STACK_KNOBS)
    assert ClipStream.info.bugs == BUGS


def test_the_harness_and_clipstream_know_the_same_bugs() -> None:
    service = pytest.importorskip("clipstream.bugs")  # a test may see both sides
    assert set(BUGS) == {str(name) for name in service.KNOWN_BUGS}


def test_unknown_bug_lists_the_known_ones() -> None:
    err = refused(("stack.config.bugs", ["no-fencing", "no-fence"]))
    assert err.field == "stack.config.bugs[1]"
    assert err.message == ("unknown bug 'no-fence'; did you mean 'no-fencing'? (known: "
                           + ", ".join(BUGS) + ")")


def test_a_bug_listed_twice_is_refused() -> None:
    err = refused(("stack.config.bugs", ["no-fencing", "ack-before-fsync", "no-fencing"]))
    assert (err.field, err.message) == (
        "stack.config.bugs[2]", "'no-fencing' is listed twice (bugs[0] and bugs[2])")


@pytest.mark.parametrize(("value", "field", "message"), [
    (5, "stack.config.bugs", "expected list of bug names, got 5"),
    ([5], "stack.config.bugs[0]", "expected list of bug names; item 0 is 5"),
    ({"a": 1}, "stack.config.bugs", "expected list of bug names, got a mapping"),
])
def test_bugs_must_be_a_list_of_names(value: Any, field: str, message: str) -> None:
    err = refused(("stack.config.bugs", value))
    assert (err.field, err.message) == (field, message)


def test_without_a_target_knobs_are_kept_and_bug_names_checked_for_shape_only() -> None:
    raw = {**yaml.safe_load(drill()),
           "stack": {"config": {"bugs": ["some-future-bug"], "detection": "1.5s", "n": 3}}}
    spec = DrillSpec.model_validate(raw)
    assert type(spec.stack.config) is AnyKnobs and spec.stack.target is None
    assert dict(spec.stack.config) == {"bugs": ("some-future-bug",), "detection": "1.5s",
                                       "n": 3.0}
    assert DrillSpec.model_validate({**raw, "catches": ["some-future-bug"]}).catches == (
        "some-future-bug",)
    with pytest.raises(ValueError, match="expected a bug name"):
        DrillSpec.model_validate({**raw, "catches": ["Bad Name"]})
    with pytest.raises(ValueError, match=re.escape("listed twice (catches[0] and catches[1])")):
        DrillSpec.model_validate({**raw, "catches": ["a", "a"]})


def test_knob_env_joins_bugs_and_refuses_unknown_ones() -> None:
    assert knob_env({"bugs": ()}) == {"CLIPSTREAM_BUGS": ""}
    assert knob_env({"bugs": ["no-fencing"]}) == {"CLIPSTREAM_BUGS": "no-fencing"}
    assert knob_env({"bugs": "no-fencing,zero-counts-when-degraded"}) == {
        "CLIPSTREAM_BUGS": "no-fencing,zero-counts-when-degraded"}
    with pytest.raises(KeyError):
        knob_env({"bugs": ["made-up"]})
    spec = parse(("stack.config", {"bugs": ["no-fencing"], "detection": "2s"}))
    dumped = spec.stack.config.model_dump(exclude_none=True)  # what the providers pass
    assert knob_env(dumped) == {"CLIPSTREAM_DETECTION_MS": "2000",
                                "CLIPSTREAM_BUGS": "no-fencing"}


# ---------------------------------------------------------------- load: retries, bursts, hot keys


def test_load_risk_defaults() -> None:
    load = parse().load
    assert load.retries == 2
    assert (load.burst.multiplier, load.burst.width, load.burst.at_revert) == (1.0, 2.0, False)
    assert (load.hot.keys, load.hot.share) == (4, 0.5)


def test_load_risk_values_are_read() -> None:
    load = parse(("load", {"retries": 0, "burst": {"multiplier": 3, "width": "500ms",
                                                   "at_revert": True},
                           "hot": {"keys": 0, "share": 1}})).load
    assert load.retries == 0
    assert (load.burst.multiplier, load.burst.width, load.burst.at_revert) == (3.0, 0.5, True)
    assert (load.hot.keys, load.hot.share) == (0, 1.0)


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (("load.retries", -1), "load.retries", "expected 0 <= int <= 10, got -1"),
        (("load.retries", 11), "load.retries", "expected 0 <= int <= 10, got 11"),
        (("load.retries", 1.5), "load.retries", "expected 0 <= int <= 10, got 1.5"),
        (("load.burst", {"multiplier": 0.5}), "load.burst.multiplier",
         "expected 1 <= float <= 100, got 0.5"),
        (("load.burst", {"multiplier": 101}), "load.burst.multiplier",
         "expected 1 <= float <= 100, got 101"),
        (("load.burst", {"multiplier": float("inf")}), "load.burst.multiplier",
         "expected 1 <= float <= 100, got inf"),
        (("load.burst", {"width": "61s"}), "load.burst.width",
         "expected 0 < duration <= 60s, got 61s"),
        (("load.burst", {"at_revert": "maybe"}), "load.burst.at_revert",
         "expected bool, got 'maybe'"),
        (("load.burst", {"at_revrt": True}), "load.burst.at_revrt",
         "unknown field 'at_revrt'; did you mean 'at_revert'? (allowed: multiplier, width, "
         "at_revert)"),
        (("load.hot", {"keys": -1}), "load.hot.keys", "expected 0 <= int <= 1000, got -1"),
        (("load.hot", {"keys": 1001}), "load.hot.keys",
         "expected 0 <= int <= 1000, got 1001"),
        (("load.hot", {"share": 1.5}), "load.hot.share", "expected 0 <= float <= 1, got 1.5"),
        (("load.hot", {"share": -0.1}), "load.hot.share", "expected 0 <= float <= 1, got -0.1"),
        (("load.hot", 3), "load.hot", "expected mapping, got 3"),
    ],
)
def test_load_risk_bounds(edit: tuple[str, Any], field: str, message: str) -> None:
    err = refused(edit)
    assert (err.field, err.message) == (field, message)


def test_burst_width_must_be_positive() -> None:
    err = refused(("load.burst", {"width": 0}))
    assert err.field == "load.burst.width" and "expected a duration > 0" in err.message


def test_load_upper_bounds_are_accepted_exactly() -> None:
    load = parse(("load", {"users": 5000, "rate": 10000, "timeout": "60s", "retries": 10,
                           "burst": {"multiplier": 100, "width": "1m"},
                           "hot": {"keys": 1000}})).load
    assert (load.users, load.rate, load.timeout, load.retries) == (5000, 10000.0, 60.0, 10)
    assert (load.burst.multiplier, load.burst.width, load.hot.keys) == (100.0, 60.0, 1000)


# ---------------------------------------------------------------- objectives: zero reads, exposure


def test_zero_reads_and_exposure_defaults() -> None:
    o = parse().objectives
    assert o.zero_reads == "forbid" and o.exposure is None
    assert parse().analysis.exposure_window == 1.0


def test_exposure_objective_is_read() -> None:
    o = parse(("objectives.exposure", {"min_writes_at_risk": 25})).objectives
    assert o.exposure is not None and o.exposure.min_writes_at_risk == 25
    assert o.names()[-1] == "exposure"
    assert parse(("objectives.exposure", {"min_writes_at_risk": 0})).objectives.exposure


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (("objectives.zero_reads", "stale"), "objectives.zero_reads",
         "expected one of forbid, fresh, ignore; got 'stale'"),
        (("objectives.exposure", {"min_writes_at_risk": -1}),
         "objectives.exposure.min_writes_at_risk", "expected int >= 0, got -1"),
        (("objectives.exposure", {"min_writes_at_risk": 2.5}),
         "objectives.exposure.min_writes_at_risk", "expected int >= 0, got 2.5"),
        (("objectives.exposure", 5), "objectives.exposure", "expected mapping, got 5"),
        (("analysis.exposure_window", "soon"), "analysis.exposure_window",
         "expected a duration such as 500ms, 10s, 2m or a number of seconds, got 'soon'"),
        (("analysis.exposure_window", 0), "analysis.exposure_window",
         "expected a duration > 0 such as 500ms, 10s, 2m or a number of seconds, got 0"),
    ],
)
def test_new_objective_errors(edit: tuple[str, Any], field: str, message: str) -> None:
    err = refused(edit)
    assert (err.field, err.message) == (field, message)


def test_exposure_needs_its_minimum() -> None:
    err = refused(("objectives.exposure", {}))
    assert err.field == "objectives.exposure.min_writes_at_risk"
    assert err.message.startswith("required field missing: expected int >= 0 (Fewest writes")


def test_judging_counts_zero_reads_and_exposure() -> None:
    spec = parse(("objectives.exposure", {"min_writes_at_risk": 10}))
    ok = dict.fromkeys(spec.objectives.names(), True)
    assert spec.judge(ok) is True
    assert spec.judge({**ok, "zero_reads": False}) is False
    assert spec.judge({**ok, "exposure": None}) is None
    assert spec.judge({**ok, "exposure": False}) is False
    fail = parse(("expect", "fail"), ("fails_on", ["zero_reads"]))
    ok = dict.fromkeys(fail.objectives.names(), True)
    assert fail.judge({**ok, "zero_reads": False}) is True
    assert fail.judge({**ok, "counters": False}) is False


# ---------------------------------------------------------------- the nemesis schedule

NEMESIS: dict[str, Any] = {
    "seed": 42, "rounds": 20, "interval": ["1s", "3s"], "duration": ["500ms", "2s"],
    "faults": [{"power_down": "dc-west"},
               {"partition": "store-east->store-west", "mode": "blackhole"},
               {"latency": "api->store-east", "ms": 200}],
}


def nemesis(**changes: Any) -> DrillSpec:
    n = {k: v for k, v in {**NEMESIS, **changes}.items() if v is not None}
    return parse(("timeline.faults", []), ("timeline.nemesis", n))


def test_nemesis_expands_deterministically_from_its_seed() -> None:
    a, b = nemesis(), nemesis()
    assert a.timeline.all_faults == b.timeline.all_faults
    assert len(a.timeline.all_faults) == 20
    assert nemesis(seed=43).timeline.all_faults != a.timeline.all_faults
    kinds = {f.kind for f in a.timeline.all_faults}
    assert kinds == {"power_down", "partition", "latency"}  # 20 rounds pick every template
    lat = next(f for f in a.timeline.all_faults if f.kind == "latency")
    assert dict(lat.params) == {"ms": 200, "jitter": 0, "direction": "both"}
    part = next(f for f in a.timeline.all_faults if f.kind == "partition")
    assert dict(part.params) == {"mode": "blackhole"}


def test_nemesis_expansion_is_pinned() -> None:
    """A seed must replay the same schedule on every machine and Python version we run on."""
    got = [f.describe() for f in nemesis(rounds=3).timeline.all_faults]
    assert got == ["partition store-east->store-west at 5s for 537ms",
                   "power_down dc-west at 7.087s for 1.605s",
                   "latency api->store-east at 11.046s for 630ms"]
    rounds = nemesis(rounds=20).timeline.all_faults
    assert [f.describe() for f in rounds[:3]] == got  # more rounds only append


def test_nemesis_rounds_follow_each_other_within_bounds() -> None:
    t = nemesis().timeline
    faults = t.all_faults
    assert faults[0].at == t.baseline
    for f in faults:
        assert 0.5 <= f.for_ <= 2.0 and f.repeat == 1
        assert round(f.at * 1000) / 1000 == f.at and round(f.for_ * 1000) / 1000 == f.for_
    for a, b in itertools.pairwise(faults):
        pause = b.at - (a.at + a.for_)
        assert 1.0 - 1e-9 <= pause <= 3.0 + 1e-9
        assert not a.windows()[0].overlaps(b.windows()[0])


def test_nemesis_start_defaults_to_the_baseline_and_may_be_later() -> None:
    assert nemesis().timeline.all_faults[0].at == 5.0
    assert nemesis(start="12.5s").timeline.all_faults[0].at == 12.5
    err = refused(("timeline.faults", []), ("timeline.nemesis", {**NEMESIS, "start": "2s"}))
    assert (err.field, err.message) == (
        "timeline.nemesis.start", "the nemesis must start at or after the baseline (5s), got 2s")


def test_one_duration_means_a_fixed_value() -> None:
    faults = nemesis(duration="2s", interval=0).timeline.all_faults
    assert all(f.for_ == 2.0 for f in faults)
    assert [f.at for f in faults[:3]] == [5.0, 7.0, 9.0]  # back to back: touching is fine


def test_seed_is_drawn_and_recorded_when_absent() -> None:
    spec = nemesis(seed=None)
    seed = spec.timeline.nemesis.seed  # type: ignore[union-attr]
    assert isinstance(seed, int) and 0 <= seed < 10**9
    text = spec.to_yaml()
    assert f"seed: {seed}" in text
    again = parse_drill(text, source="again.yaml")
    assert again.timeline.all_faults == spec.timeline.all_faults
    assert again.model_dump() == spec.model_dump()


def test_fixed_faults_come_first_and_ids_are_indices() -> None:
    spec = parse(("timeline.faults", [{"at": "5s", "for": "1s", "crash": "api"}]),
                 ("timeline.nemesis", {**NEMESIS, "rounds": 3, "start": "20s"}))
    t = spec.timeline
    assert len(t.faults) == 1 and len(t.all_faults) == 4
    assert t.all_faults[0] == t.faults[0]
    assert [i for i, _ in t.windows()] == [0, 1, 2, 3]
    assert t.fault_end == max(w.off for _, w in t.windows())
    assert t.load_duration == t.fault_end + 20.0
    assert t.fault_ref(0) == "faults[0]" and t.fault_ref(2) == "fault 2 (nemesis round 2)"


def test_to_yaml_keeps_the_fixed_faults_and_the_nemesis_apart() -> None:
    spec = parse(("timeline.nemesis", {**NEMESIS, "start": "20s"}))
    data = yaml.safe_load(spec.to_yaml())["timeline"]
    assert len(data["faults"]) == 1 and data["nemesis"]["seed"] == 42
    assert data["nemesis"]["interval"] == ["1s", "3s"]
    again = parse_drill(spec.to_yaml())
    assert again.timeline.all_faults == spec.timeline.all_faults


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"rounds": 0}, "timeline.nemesis.rounds", "expected 1 <= int <= 200, got 0"),
        ({"rounds": 201}, "timeline.nemesis.rounds", "expected 1 <= int <= 200, got 201"),
        ({"seed": -1}, "timeline.nemesis.seed", "expected 0 <= int <= 2^63-1, got -1"),
        ({"seed": 2**63}, "timeline.nemesis.seed",
         f"expected 0 <= int <= 2^63-1, got {2**63}"),
        ({"seed": "abc"}, "timeline.nemesis.seed", "expected 0 <= int <= 2^63-1, got 'abc'"),
        ({"interval": ["3s", "2s"]}, "timeline.nemesis.interval",
         "expected [min, max] with min <= max, got [3s, 2s]"),
        ({"duration": ["2s", "1s"]}, "timeline.nemesis.duration",
         "expected [min, max] with min <= max, got [2s, 1s]"),
        ({"interval": ["1s"]}, "timeline.nemesis.interval",
         "expected [min, max] (two durations) or one duration, got a list of 1"),
        ({"duration": ["1s", "2s", "3s"]}, "timeline.nemesis.duration",
         "expected [min, max] (two durations) or one duration, got a list of 3"),
        ({"duration": ["1s", "2h"]}, "timeline.nemesis.duration[1]",
         "expected at most 1h, got 2h"),
        ({"interval": ["0s", "61m"]}, "timeline.nemesis.interval[1]",
         "expected at most 1h, got 61m"),
        ({"duration": ["0s", "2s"]}, "timeline.nemesis.duration[0]",
         "expected a duration > 0 such as 500ms, 10s, 2m or a number of seconds, got '0s'"),
        ({"faults": []}, "timeline.nemesis.faults",
         "expected at least one fault template, e.g. [{power_down: dc-west}]"),
        ({"rounds": None}, "timeline.nemesis.rounds",
         "required field missing: expected 1 <= int <= 200 (How many faults to inject, one "
         "per round.)"),
        ({"sede": 1}, "timeline.nemesis.sede",
         "unknown field 'sede'; did you mean 'seed'? (allowed: seed, start, rounds, interval, "
         "duration, faults)"),
    ],
)
def test_nemesis_errors_name_the_field(changes: dict[str, Any], field: str,
                                       message: str) -> None:
    n = {k: v for k, v in {**NEMESIS, **changes}.items() if v is not None}
    err = refused(("timeline.nemesis", n))
    assert (err.field, err.message) == (field, message)


@pytest.mark.parametrize(
    ("template", "field", "message"),
    [
        ({"powerdown": "dc-west"}, "timeline.nemesis.faults[1].powerdown",
         "unknown field 'powerdown'; did you mean 'power_down'? (allowed: power_down, crash, "
         "freeze, partition, latency, bandwidth, mode, ms, jitter, direction, kbps)"),
        ({}, "timeline.nemesis.faults[1]", "a fault needs exactly one kind key, got none; "
         "kinds: power_down, crash, freeze, partition, latency, bandwidth"),
        ({"partition": "api->store-east", "ms": 5}, "timeline.nemesis.faults[1].ms",
         "'ms' does not apply to a partition fault (partition takes: mode)"),
        ({"latency": "api->store-east"}, "timeline.nemesis.faults[1].ms",
         "a latency fault needs ms (the added delay, int >= 1)"),
        ({"partition": "api->store-east", "mode": "drop"}, "timeline.nemesis.faults[1].mode",
         "expected one of down, blackhole, reset; got 'drop'"),
        ({"crash": "api", "at": "5s"}, "timeline.nemesis.faults[1].at",
         "a nemesis fault takes no at: the schedule draws when each fault starts and how long "
         "it lasts (see nemesis start, interval, duration)"),
        ({"crash": "api", "for": "5s"}, "timeline.nemesis.faults[1].for",
         "a nemesis fault takes no for: the schedule draws when each fault starts and how long "
         "it lasts (see nemesis start, interval, duration)"),
    ],
)
def test_nemesis_templates_are_validated_like_faults(template: dict[str, Any], field: str,
                                                     message: str) -> None:
    err = refused(("timeline.nemesis", {**NEMESIS, "faults": [{"crash": "api"}, template]}))
    assert (err.field, err.message) == (field, message)


def test_generated_faults_obey_the_same_target_rule() -> None:
    err = refused(("timeline.faults", [{"at": "6s", "for": "1s", "power_down": "dc-west"}]),
                  ("timeline.nemesis", {**NEMESIS, "faults": [{"power_down": "dc-west"}],
                                        "duration": "2s"}))
    assert err.field == "timeline.faults[0]"
    assert err.message == ("faults[0] (power_down dc-west at 6s for 1s) overlaps fault 1 "
                           "(nemesis round 1: power_down dc-west at 5s for 2s): two power_down "
                           "faults on dc-west at once")


def test_settle_check_sees_generated_faults() -> None:
    err = refused(("timeline.faults", []), ("timeline.settle", "1s"),
                  ("timeline.nemesis", NEMESIS))
    assert err.field == "timeline.settle"


def test_injection_offsets() -> None:
    spec = parse(("timeline.faults", [
        {"at": "5s", "for": "2s", "crash": "api"},
        {"at": "5s", "for": "1s", "latency": "api->store-east", "ms": 5},
        {"at": "10s", "for": "1s", "power_down": "dc-west", "repeat": 2, "every": "3s"}]))
    t = spec.timeline
    assert t.injection_offsets() == (5.0, 10.0, 13.0)
    assert t.injection_offsets(at_revert=True) == (5.0, 6.0, 7.0, 10.0, 11.0, 13.0, 14.0)
    assert parse(("timeline.faults", [])).timeline.injection_offsets(True) == ()
    n = nemesis(rounds=4).timeline
    assert n.injection_offsets() == tuple(f.at for f in n.all_faults)


# ---------------------------------------------------------------- schedules that cannot be reverted


def unrevertable(*faults: dict[str, Any], **nem: Any) -> SpecError:
    spec = parse(("timeline.faults", list(faults)), *(
        [("timeline.nemesis", {**NEMESIS, **nem})] if nem else []))
    with pytest.raises(SpecError) as info:
        validate_targets(spec, TOPOLOGY)
    assert info.value.source == "t.yaml"
    return info.value


def test_freeze_and_crash_of_one_node_cannot_overlap() -> None:
    err = unrevertable({"at": "5s", "for": "10s", "freeze": "store-west"},
                       {"at": "6s", "for": "2s", "crash": "store-west"})
    assert err.field == "timeline.faults[1]"
    assert err.message.startswith(
        "faults[1] (crash store-west at 6s for 2s) overlaps faults[0] (freeze store-west at 5s "
        "for 10s) on node store-west (from 6s): both stop it at once")


def test_a_flap_window_overlapping_a_crash_is_found() -> None:
    flap = {"at": "5s", "for": "2s", "power_down": "dc-east", "repeat": 3, "every": "10s"}
    validate_targets(targets_of(flap, {"at": "8s", "for": "5s", "crash": "store-east"}),
                     TOPOLOGY)  # in the gap between windows 1 and 2: fine
    err = unrevertable(flap, {"at": "20s", "for": "10s", "crash": "store-east"})
    assert err.field == "timeline.faults[0]"  # its third window starts inside the crash
    assert err.message.startswith(
        "faults[0] (power_down dc-east at 5s for 2s x3 every 10s) overlaps faults[1] (crash "
        "store-east at 20s for 10s) on node store-east (from 25s)")


def test_link_faults_may_overlap_node_faults() -> None:
    spec = targets_of({"at": "5s", "for": "10s", "power_down": "dc-east"},
                      {"at": "5s", "for": "10s", "latency": "store-east->store-west", "ms": 50},
                      {"at": "6s", "for": "2s", "partition": "api->store-east"},
                      {"at": "6s", "for": "2s", "crash": "store-west"},
                      {"at": "7s", "for": "3s", "freeze": "coordinator"})
    validate_targets(spec, TOPOLOGY)


def test_a_generated_fault_stopping_a_stopped_node_is_refused() -> None:
    err = unrevertable({"at": "5s", "for": "30s", "crash": "store-west"},
                       faults=[{"power_down": "dc-west"}], rounds=1, duration="1s")
    assert err.field == "timeline.nemesis"
    assert err.message.startswith(
        "fault 1 (nemesis round 1: power_down dc-west at 5s for 1s) overlaps faults[0] (crash "
        "store-west at 5s for 30s) on node store-west (from 5s)")


def test_nemesis_templates_targets_are_checked() -> None:
    spec = parse(("timeline.nemesis", {**NEMESIS, "start": "20s", "faults": [
        {"power_down": "dc-west"}, {"power_down": "dc-wset"}]}))
    with pytest.raises(SpecError) as info:
        validate_targets(spec, TOPOLOGY)
    assert info.value.field == "timeline.nemesis.faults[1].power_down"
    assert info.value.message.startswith("unknown zone 'dc-wset'; did you mean 'dc-west'?")


def many_faults(n: int) -> dict[str, Any]:
    """n faults, every one stopping store-east back to back (worst case for a pairwise check),
    plus link faults overlapping all of them."""
    faults: list[dict[str, Any]] = []
    for i in range(n):
        kind = ("crash", "freeze")[i % 2]
        faults.append({"at": 5 + 2 * i, "for": 2, kind: "store-east"})
    faults.append({"at": 5, "for": 2 * n, "latency": "api->store-east", "ms": 5})
    return {**yaml.safe_load(drill()), "timeline": {"baseline": 5, "faults": faults}}


def test_two_thousand_faults_validate_quickly() -> None:
    import time

    def validate(n: int) -> float:
        start = time.perf_counter()
        spec = DrillSpec.model_validate(many_faults(n))
        validate_targets(spec, TOPOLOGY)
        assert len(spec.timeline.all_faults) == n + 1
        return time.perf_counter() - start

    validate(200)  # warm up
    assert validate(2000) < 2.0  # a pairwise check takes far longer (2 million pairs)
    spec = DrillSpec.model_validate(many_faults(2000))
    bad = [*spec.timeline.faults, spec.timeline.faults[0].model_copy(update={"at": 4003.0})]
    clash = spec.model_copy(update={"timeline": spec.timeline.model_copy(
        update={"faults": tuple(bad)})})
    with pytest.raises(SpecError, match=r"timeline.faults\[2001\]: faults\[2001\] \(crash "
                                        r"store-east at 4003s for 2s\) overlaps faults\[1999\]"):
        validate_targets(clash, TOPOLOGY)


# ---------------------------------------------------------------- your own system (custom target)

NODES: list[dict[str, Any]] = [
    {"name": "kv-east", "zone": "dc-east", "ready": {"http": "/healthz"},
     "command": ["python", "kv.py", "--port", "{port}", "--peer", "{link:kv-east->kv-west}"],
     "env": {"KV_DATA": "{data_dir}", "KV_SHARDS": 3}},
    {"name": "kv-west", "zone": "dc-west", "ready": {"tcp": True},
     "command": ["python", "kv.py", "--port", "{port}", "--peer", "{addr:kv-east}"]},
    {"name": "api", "zone": "edge", "command": ["{python}", "api.py", "--log", "{work_dir}/a"]},
]
LINKS: list[dict[str, Any]] = [{"name": "kv-east->kv-west", "upstream": "kv-west"},
                               {"name": "api->kv-east", "upstream": "kv-east"}]
OWN: dict[str, Any] = {"nodes": NODES, "links": LINKS, "entry": "api",
                       "stores": ["kv-east", "kv-west"]}
DATA = {"http": "/drills/state"}


def own(**changes: Any) -> tuple[str, Any]:
    """The ``stack`` edit for a local system of our own (OWN with ``changes``; None drops)."""
    return ("stack", {k: v for k, v in {**OWN, **changes}.items() if v is not None})


def node(i: int, **changes: Any) -> list[dict[str, Any]]:
    """NODES with node ``i`` changed."""
    return [{**n, **changes} if k == i else n for k, n in enumerate(NODES)]


def test_own_local_processes_are_the_custom_target() -> None:
    spec = parse(own())
    stack = spec.stack
    assert (stack.target, stack.target_name, stack.provider) == ("custom", "custom", "local")
    assert [n.name for n in stack.nodes] == ["kv-east", "kv-west", "api"]
    assert stack.nodes[0].env == {"KV_DATA": "{data_dir}", "KV_SHARDS": "3"}  # numbers as text
    assert stack.nodes[0].ready is not None and stack.nodes[0].ready.http == "/healthz"
    assert stack.nodes[1].ready is not None and stack.nodes[1].ready.tcp is True
    assert stack.nodes[2].ready is None  # no probe: up once started
    assert [(lk.name, lk.upstream, lk.listen) for lk in stack.links] == [
        ("kv-east->kv-west", "kv-west", None), ("api->kv-east", "kv-east", None)]
    assert (stack.entry, stack.stores, stack.data) == ("api", ("kv-east", "kv-west"), None)
    assert type(stack.config) is KnobsModel and dict(stack.config) == {}


def test_own_system_without_a_data_contract_judges_requests_only() -> None:
    spec = parse(own(), ("objectives.rto", {"GET /items": "5s", "put": "3s"}))
    assert not spec.data_measured and not spec.objectives.data_measured
    assert spec.objectives.names() == ("rto.GET /items", "rto.put", "recovery")
    assert spec.objectives.names(faults=False) == ()
    verdicts = {"rto.GET /items": True, "rto.put": True, "recovery": True}
    assert spec.judge(verdicts) is True  # no data objective is waited for, none "passed"
    assert spec.judge({**verdicts, "lost_acked_writes": False}) is True


@pytest.mark.parametrize(("name", "value"), [
    ("lost_acked_writes", 0), ("counters", "exact"), ("counters", "ignore"),
    ("zero_reads", "fresh"), ("split_brain", "forbid"), ("exposure", {"min_writes_at_risk": 5})])
def test_a_data_objective_without_a_data_contract_is_refused(name: str, value: Any) -> None:
    err = refused(own(), (f"objectives.{name}", value))
    assert err.field == f"objectives.{name}"
    assert err.message == (
        "not measured: this target has no final-read contract; add stack.data ({http: <path>} "
        "or {python: file.py:function}) and stack.stores to measure it, or leave "
        f"objectives.{name} out")


def test_a_registered_target_without_a_data_contract_refuses_data_objectives() -> None:
    info = TargetInfo(name="plain", classes=("read",))
    raw = {**yaml.safe_load(drill()), "objectives": {"lost_acked_writes": 2}}
    with pytest.raises(ValueError, match=re.escape(
            "not measured: this target has no final-read contract; leave "
            "objectives.lost_acked_writes out")):
        DrillSpec.model_validate(raw, context={TARGET_CONTEXT: info})
    raw["objectives"] = {"recovery": "ignore"}
    spec = DrillSpec.model_validate(raw, context={TARGET_CONTEXT: info})
    assert spec.objectives.names() == () and not spec.data_measured


def test_fails_on_a_data_objective_that_is_not_measured() -> None:
    err = refused(own(), ("expect", "fail"), ("fails_on", ["lost_acked_writes"]))
    assert (err.field, err.message) == (
        "fails_on[0]", "'lost_acked_writes' is not an objective of this drill (this target has "
        "no final-read contract); objectives: recovery")


def test_stack_data_measures_the_data_objectives() -> None:
    spec = parse(own(data=DATA), ("objectives.counters", "ignore"))
    assert spec.data_measured and spec.stack.data is not None
    assert spec.stack.data.http == "/drills/state"
    assert spec.objectives.names() == ("lost_acked_writes", "zero_reads", "split_brain",
                                       "recovery")
    ok = parse(own(data={"python": "mypkg.readback:final_read"}))
    assert ok.stack.data is not None and ok.stack.data.python == "mypkg.readback:final_read"


def test_a_python_data_file_resolves_against_the_drill_file(tmp_path: Path) -> None:
    (tmp_path / "readback.py").write_text("def final_read(stores): return {}\n")
    path = tmp_path / "d.yaml"
    path.write_text(drill(own(data={"python": "readback.py:final_read"})))
    from drills.catalog import load_drill

    spec = load_drill(path)
    assert spec.stack.data is not None
    assert spec.stack.data.python == f"{(tmp_path / 'readback.py').resolve()}:final_read"
    path.write_text(drill(own(data={"python": "gone.py:final_read"})))
    with pytest.raises(SpecError) as info:
        load_drill(path)
    assert (info.value.field, info.value.message) == (
        "stack.data.python", f"no such file: {tmp_path / 'gone.py'}")


@pytest.mark.parametrize(("edit", "field", "message"), [
    (own(data=DATA, stores=None), "stack.data",
     "data needs stores: the nodes (local) or service:port (docker) the final read asks"),
    (own(data={"http": "/s", "python": "m:f"}), "stack.data",
     "data needs exactly one of http (a path, e.g. /drills/state) or python (file.py:function "
     "or module:function)"),
    (own(data={}), "stack.data", "data needs exactly one of http (a path, e.g. /drills/state) "
     "or python (file.py:function or module:function)"),
    (own(data={"http": "state"}), "stack.data.http",
     "expected a path starting with /, got 'state'"),
    (own(data={"python": "readback.py"}), "stack.data.python",
     "expected file.py:function or module:function, got 'readback.py'"),
    (own(data={"sql": "x"}), "stack.data.sql",
     "unknown field 'sql' (allowed: http, python)"),
])
def test_data_contract_errors(edit: tuple[str, Any], field: str, message: str) -> None:
    err = refused(edit)
    assert (err.field, err.message) == (field, message)


PLACES = "(placeholders: {port}, {addr:NODE}, {link:NAME}, {data_dir}, {work_dir}, {python})"


@pytest.mark.parametrize(("arg", "message"), [
    ("{prot}", f"unknown placeholder '{{prot}}'; did you mean '{{port}}'? {PLACES}"),
    ("{port:kv-east}", f"unknown placeholder '{{port:kv-east}}'; did you mean '{{port}}'? "
                       f"{PLACES}"),
    ("{addr}", f"unknown placeholder '{{addr}}'; did you mean '{{addr:NODE}}'? {PLACES}"),
    ("{host}", f"unknown placeholder '{{host}}' {PLACES}"),
    ("--peer={addr:kv-wset}", "{addr:kv-wset}: unknown node 'kv-wset'; did you mean 'kv-west'? "
                              "(nodes: kv-east, kv-west, api)"),
    ("{link:kv-east->kv-wst}", "{link:kv-east->kv-wst}: unknown link 'kv-east->kv-wst'; did "
                               "you mean 'kv-east->kv-west'? (links: kv-east->kv-west, "
                               "api->kv-east)"),
])
def test_bad_placeholders_are_named(arg: str, message: str) -> None:
    err = refused(own(nodes=node(1, command=["python", "kv.py", arg])))
    assert (err.field, err.message) == ("stack.nodes[1].command[2]", message)


def test_placeholders_in_env_and_without_links() -> None:
    err = refused(own(nodes=node(2, env={"PEER": "{link:api->kv-west}"})))
    assert err.field == "stack.nodes[2].env.PEER"
    assert err.message.startswith("{link:api->kv-west}: unknown link 'api->kv-west'")
    err = refused(own(links=None))
    assert (err.field, err.message) == (
        "stack.nodes[0].command[5]", "{link:kv-east->kv-west}: unknown link 'kv-east->kv-west' "
        "(stack.links declares none)")
    # braces that are no placeholder are left alone: JSON, shell variables
    spec = parse(own(nodes=node(2, command=["sh", "-c", 'echo {"a": 1} ${HOME}'])))
    assert spec.stack.nodes[2].command[2] == 'echo {"a": 1} ${HOME}'


def test_placeholders_expand() -> None:
    assert placeholders("{addr:kv-east}/x?{port}") == [("addr", "kv-east", "{addr:kv-east}"),
                                                       ("port", None, "{port}")]
    values = {"port": "7001", "addr:kv-east": "127.0.0.1:7000", "link:a->b": "127.0.0.1:9"}
    assert expand("--peer={addr:kv-east} --port {port} {link:a->b} {}", values) == (
        "--peer=127.0.0.1:7000 --port 7001 127.0.0.1:9 {}")
    with pytest.raises(KeyError):
        expand("{work_dir}", values)


@pytest.mark.parametrize(("edit", "field", "message"), [
    (own(nodes=node(2, name="kv-east")), "stack.nodes[2].name",
     "'kv-east' is used twice (nodes[0] and nodes[2])"),
    (own(nodes=node(0, name="KV East")), "stack.nodes[0].name",
     "expected [a-z0-9-]+, got 'KV East'"),
    (own(nodes=node(0, zone="")), "stack.nodes[0].zone", "must not be empty"),
    (own(nodes=node(0, command=[])), "stack.nodes[0].command", "must not be empty"),
    (own(nodes=node(0, command="kv --port 1")), "stack.nodes[0].command",
     "expected list of text, got 'kv --port 1'"),
    (own(nodes=node(0, env={"1X": "a"})), "stack.nodes[0].env",
     "expected environment variable names (letters, digits, _; not starting with a digit), "
     "got '1X'"),
    (own(nodes=node(0, ready={"tcp": False})), "stack.nodes[0].ready.tcp",
     "expected true (leave ready out for no probe)"),
    (own(nodes=node(0, ready={"http": "/h", "tcp": True})), "stack.nodes[0].ready",
     "ready needs exactly one of http (a path, e.g. /healthz) or tcp: true"),
    (own(nodes=node(0, ready={"http": "healthz"})), "stack.nodes[0].ready.http",
     "expected a path starting with /, got 'healthz'"),
    (own(links=[*LINKS, {"name": "api->kv-east", "upstream": "kv-west"}]),
     "stack.links[2].name", "'api->kv-east' is used twice (links[1] and links[2])"),
    (own(links=[{"name": "a->b", "upstream": "kv-wst"}]), "stack.links[0].upstream",
     "unknown node 'kv-wst'; did you mean 'kv-west'? (nodes: kv-east, kv-west, api)"),
    (own(links=[{"name": "a b", "upstream": "api"}]), "stack.links[0].name",
     "expected [a-z0-9._>-]+, got 'a b'"),
    (own(links=[{"name": "a", "upstream": "api", "listen": "127.0.0.1:70000"}]),
     "stack.links[0].listen", "expected host:port (port 1-65535), got '127.0.0.1:70000'"),
    (own(entry="apii"), "stack.entry",
     "unknown node 'apii'; did you mean 'api'? (nodes: kv-east, kv-west, api)"),
    (own(stores=["kv-east", "kv-wesst"]), "stack.stores[1]",
     "unknown node 'kv-wesst'; did you mean 'kv-west'? (nodes: kv-east, kv-west, api)"),
    (own(stores=["kv-east", "kv-east"]), "stack.stores[1]",
     "'kv-east' is used twice (stores[0] and stores[1])"),
    (("stack", {"target": "custom"}), "stack.nodes",
     "your own system on provider local needs nodes: the processes to run (name, zone, "
     "command)"),
])
def test_own_local_system_errors(edit: tuple[str, Any], field: str, message: str) -> None:
    err = refused(edit)
    assert (err.field, err.message) == (field, message)


def test_a_local_link_may_listen_on_a_fixed_port() -> None:
    links = [{**LINKS[0], "listen": "127.0.0.1:16379"}, {**LINKS[1], "listen": "0.0.0.0:16379"}]
    err = refused(own(links=links))
    assert (err.field, err.message) == ("stack.links[1].listen",
                                        "port 16379 is also where links[0] listens")
    links[1]["listen"] = "127.0.0.1:16380"
    assert parse(own(links=links)).stack.links[1].listen == "127.0.0.1:16380"


def test_nodes_need_the_local_provider() -> None:
    err = refused(own(provider="docker"))
    assert (err.field, err.message) == (
        "stack.nodes", "nodes applies only to provider local (provider is docker): with "
        "docker, your services come from stack.compose")


def compose_stack(tmp_path: Path, **changes: Any) -> tuple[str, Any]:
    (tmp_path / "compose.yml").write_text("services: {}\n")
    stack = {"provider": "docker", "compose": str(tmp_path / "compose.yml"),
             "links": [{"name": "app->db", "upstream": "db:6379", "listen": "0.0.0.0:16379"}],
             "entry": "app:8080", "stores": ["db:6379", "db-replica:6379"],
             "images": {"example/redis:latest": {"debian": ["redis-server", "redis-sentinel"]}}}
    return ("stack", {k: v for k, v in {**stack, **changes}.items() if v is not None})


def test_own_compose_stack_is_the_custom_target(tmp_path: Path) -> None:
    stack = parse(compose_stack(tmp_path)).stack
    assert (stack.target, stack.provider) == ("custom", "docker")
    assert stack.compose == str((tmp_path / "compose.yml").resolve())
    assert [(lk.name, lk.upstream, lk.listen) for lk in stack.links] == [
        ("app->db", "db:6379", "0.0.0.0:16379")]
    assert (stack.entry, stack.stores) == ("app:8080", ("db:6379", "db-replica:6379"))
    assert stack.images["example/redis:latest"].debian == ("redis-server", "redis-sentinel")


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"links": [{"name": "app->db", "upstream": "db:6379"}]}, "stack.links[0].listen",
     "a docker link needs listen: host:port inside the proxy container, e.g. 0.0.0.0:16379"),
    ({"links": [{"name": "app->db", "upstream": "db", "listen": "0.0.0.0:1"}]},
     "stack.links[0].upstream", "expected service:port (port 1-65535), got 'db'"),
    ({"links": [{"name": "a", "upstream": "db:1", "listen": "0.0.0.0:5"},
                {"name": "b", "upstream": "db:2", "listen": "0.0.0.0:5"}]},
     "stack.links[1].listen", "port 5 is also where links[0] listens"),
    ({"entry": "app"}, "stack.entry", "expected service:port (port 1-65535), got 'app'"),
    ({"stores": ["db:0"]}, "stack.stores[0]", "expected service:port (port 1-65535), got 'db:0'"),
    ({"images": {"x:1": {"debian": ["Redis Server"]}}}, "stack.images.x:1.debian[0]",
     "expected a Debian package name, got 'Redis Server'"),
    ({"images": {"x:1": {"debian": []}}}, "stack.images.x:1.debian", "must not be empty"),
    ({"compose": None, "target": "custom"}, "stack.compose",
     "your own system on provider docker needs compose: your Compose file"),
])
def test_own_compose_stack_errors(tmp_path: Path, changes: dict[str, Any], field: str,
                                  message: str) -> None:
    err = refused(compose_stack(tmp_path, **changes))
    assert (err.field, err.message) == (field, message)


def test_images_need_the_docker_provider() -> None:
    err = refused(own(images={"x:1": {"debian": ["redis-server"]}}))
    assert (err.field, err.message) == ("stack.images",
                                        "images applies only to provider docker (provider is "
                                        "local)")


@pytest.mark.parametrize(("stack", "field"), [
    ({"target": "clipstream", "nodes": NODES}, "stack.nodes"),
    ({"links": LINKS}, "stack.links"),
    ({"entry": "api"}, "stack.entry"),
    ({"stores": ["store-east"]}, "stack.stores"),
    ({"provider": "docker", "data": DATA}, "stack.data"),
])
def test_a_registered_target_owns_its_shape(stack: dict[str, Any], field: str) -> None:
    err = refused(("stack", stack))
    name = field.split(".")[1]
    assert (err.field, err.message) == (
        field, f"{name} describes your own system, but the clipstream target brings its own "
        f"nodes, links, entry, stores and data contract: drop {name}, or drill your own "
        f"system (nodes with provider local, compose with provider docker, no stack.target)")


def test_an_unknown_target_lists_the_installed_ones() -> None:
    err = refused(("stack", {"target": "clipstraem"}))
    assert (err.field, err.message) == (
        "stack.target", "unknown target 'clipstraem'; did you mean 'clipstream'? (installed "
        "targets: clipstream)")
    err = refused(("stack", {"target": 5}))
    assert (err.field, err.message) == ("stack.target", "expected name, got 5")


def test_own_system_classes_are_free_and_knobs_and_bugs_refused() -> None:
    spec = parse(own(), ("objectives.rto", {"GET /items": "5s"}),
                 ("guardrails", [{"op": "GET /items"}]),
                 ("load.classes", {"GET /items?page=[n]": "GET /items"}))
    assert spec.guardrails[0].op == "GET /items"
    assert spec.load.classes == {"GET /items?page=[n]": "GET /items"}
    err = refused(own(config={"fsync": "never"}))
    assert (err.field, err.message) == ("stack.config", "the custom target takes no knobs: "
                                                        "leave stack.config out")
    err = refused(own(), ("catches", ["no-fencing"]))
    assert (err.field, err.message) == ("catches", "the custom target plants no bugs: catches "
                                                   "applies only to a target with planted bugs")


@pytest.mark.parametrize(("edit", "field", "message"), [
    (("guardrails", [{"op": "uploads"}]), "guardrails[0].op",
     "unknown class 'uploads'; did you mean 'upload'? (classes: upload, feed, view, like, "
     "search, stats)"),
    (("load.classes", {"GET /feed?page=[n]": "feeds"}), "load.classes",
     "'GET /feed?page=[n]' -> unknown class 'feeds'; did you mean 'feed'? (classes: upload, "
     "feed, view, like, search, stats)"),
    (("objectives.rto", {"GET /x": "1s"}), "objectives.rto",
     "unknown class 'GET /x' (classes: upload, feed, view, like, search, stats)"),
    (("catches", ["no-fencing", "no-fencin"]), "catches[1]",
     "unknown bug 'no-fencin'; did you mean 'no-fencing'? (known: " + ", ".join(BUGS) + ")"),
])
def test_names_the_target_knows(edit: tuple[str, Any], field: str, message: str) -> None:
    err = refused(edit)
    assert (err.field, err.message) == (field, message)


def test_load_classes_map_request_names_to_the_targets_classes() -> None:
    load = parse(("load.classes", {"GET /feed?page=[n]": "feed"})).load
    assert load.classes == {"GET /feed?page=[n]": "feed"}


def test_own_system_reads_back_from_its_yaml() -> None:
    spec = parse(own(data=DATA), ("objectives.rto", {"GET /items": "5s"}))
    text = spec.to_yaml()
    assert "target: custom" in text and "{link:kv-east->kv-west}" in text
    again = parse_drill(text, source="again.yaml")
    assert again.model_dump() == spec.model_dump() and again.data_measured
    blind = parse(own())  # no data contract: no data objective in the effective drill
    assert "lost_acked_writes" not in blind.to_yaml() and "recovery: required" in blind.to_yaml()
    assert parse_drill(blind.to_yaml()).model_dump() == blind.model_dump()
    plain = parse().to_yaml()  # a registered target's drill shows none of the custom fields
    assert "target: clipstream" in plain
    assert not re.search(r"^\s*(nodes|links|stores|images|classes):", plain, re.MULTILINE)


# ---------------------------------------------------------------- knobs


class DemoKnobs(KnobsModel):
    """Knobs of a demonstration target."""

    mode: str | None = doc_field(None, typ="text", doc="A mode.")
    delay: float | None = doc_field(None, typ="float", doc="A delay.")
    flags: tuple[str, ...] = doc_field((), typ="list of names", doc="Flags.")


def test_a_knobs_model_reads_as_a_mapping_of_the_knobs_set() -> None:
    knobs = DemoKnobs.model_validate({"flags": ["a"], "delay": 1.5})
    assert dict(knobs) == {"delay": 1.5, "flags": ("a",)}  # declaration order
    assert list(knobs) == ["delay", "flags"] and len(knobs) == 2 and "mode" not in knobs
    assert list(knobs.items()) == [("delay", 1.5), ("flags", ("a",))]
    assert list(knobs.values()) == [1.5, ("a",)] and isinstance(knobs, Mapping)
    assert (knobs.get("delay"), knobs.get("mode"), knobs.get("mode", "x")) == (1.5, None, "x")
    with pytest.raises(KeyError):
        knobs["mode"]
    assert knobs.delay == 1.5 and list(DemoKnobs().keys()) == []
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        DemoKnobs.model_validate({"mood": "x"})


def test_a_targets_knobs_model_validates_stack_config() -> None:
    info = TargetInfo(name="demo", classes=("read",), config=DemoKnobs)
    raw = {**yaml.safe_load(drill()), "stack": {"config": {"mode": "fast"}}}
    spec = DrillSpec.model_validate(raw, context={TARGET_CONTEXT: info})
    assert type(spec.stack.config) is DemoKnobs and dict(spec.stack.config) == {"mode": "fast"}
    assert spec.stack.target == "demo"
    assert "mode: fast" in spec.to_yaml()
    spec = DrillSpec.model_validate(yaml.safe_load(drill()), context={TARGET_CONTEXT: info})
    assert type(spec.stack.config) is DemoKnobs  # the default too


def test_no_spec_module_names_a_target() -> None:
    """The spec and the catalog are generic: the target gives its names (TargetInfo)."""
    root = Path(__file__).resolve().parents[1] / "drills"
    files = [*sorted((root / "spec").glob("*.py")), root / "catalog.py"]
    classes = "|".join(CLASSES)
    pattern = re.compile(rf"clipstream|/dump|[\"'`]({classes})[\"'`]|\brto\.({classes})\b",
                         re.IGNORECASE)
    found = [f"{f.name}:{n}: {line.strip()}" for f in files
             for n, line in enumerate(f.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
