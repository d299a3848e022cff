"""The target layer without processes: placeholders, Compose zones, the final-read contract,
the registry, `drill init`, and that nothing outside ClipStream's target names it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from drills.errors import SpecError, StackError
from drills.model import FinalRead
from drills.scaffold import write_starter
from drills.stack.local import render
from drills.targets import CUSTOM, default_name, load, registered, target_info, target_name
from drills.targets.clipstream import CLASSES, ClipStream
from drills.targets.custom import compose_zones
from drills.targets.data import (
    final_read_from,
    python_reader,
    read_all,
    same_data,
    snapshot_from,
    wait_same,
)

ROOT = Path(__file__).resolve().parents[2]


def test_render_fills_every_placeholder():
    direct = {"a": "127.0.0.1:1001", "b": "127.0.0.1:1002"}
    via = {"a->b": "127.0.0.1:2001"}
    out = render("{python} --port {port} --peer {link:a->b} --b {addr:b} --d {data_dir} {work_dir}",
                 node="a", direct=direct, via=via, data_dir="/d", work_dir="/w")
    assert out.endswith("--port 1001 --peer 127.0.0.1:2001 --b 127.0.0.1:1002 --d /d /w")


def test_render_refuses_an_unknown_link():
    with pytest.raises(StackError, match=r"\{link:x->y\} names no link"):
        render("{link:x->y}", node="a", direct={"a": "h:1"}, via={}, data_dir="", work_dir="")


def test_compose_zones_reads_labels_in_both_forms(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text("services:\n"
                 "  a: {image: x, labels: {drills.zone: east, drills.target: 'true'}}\n"
                 "  b: {image: x, labels: [drills.zone=west, drills.target=true]}\n"
                 "  c: {image: x}\n"
                 "  d: {image: x, labels: {drills.zone: east, drills.target: 'true'}}\n")
    assert compose_zones(f) == {"east": ("a", "d"), "west": ("b",)}


def test_compose_zones_names_the_service_without_a_zone(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text("services:\n  a: {image: x, labels: {drills.target: 'true'}}\n")
    with pytest.raises(SpecError, match=r"service a .* no drills\.zone") as exc:
        compose_zones(f)
    assert exc.value.source == str(f)


def test_compose_zones_needs_an_opted_in_service(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text("services:\n  a: {image: x}\n")
    with pytest.raises(SpecError, match=r"no service is labelled drills\.target=true"):
        compose_zones(f)


def test_contract_state_becomes_a_snapshot():
    snap = snapshot_from("s1", {"role": "primary", "epoch": 3, "keys": ["k1", "k2"],
                                "counters": {"c": {"n": 4}}})
    assert snap.reachable and snap.role == "primary" and snap.epoch == 3
    assert snap.keys == {"k1", "k2"} and snap.counters == {"c": {"n": 4}}


@pytest.mark.parametrize("state, why", [
    ({"error": "connection refused"}, "connection refused"),
    ([1, 2], "expected a JSON object"),
    ({"keys": "k1"}, "malformed state"),
    ({"counters": {"c": {"n": "many"}}}, "malformed state"),
])
def test_a_bad_state_is_an_unreachable_store_with_the_reason(state, why):
    snap = snapshot_from("s1", state)
    assert not snap.reachable and why in (snap.error or "")


def test_primary_is_the_highest_epoch_claim():
    read = final_read_from({"a": {"role": "primary", "epoch": 1, "keys": []},
                            "b": {"role": "primary", "epoch": 2, "keys": []}},
                           {"a": "h:1", "b": "h:2"})
    assert read.primary == "b"


def test_python_reader_loads_a_file_next_to_the_drill(tmp_path):
    (tmp_path / "reader.py").write_text(
        "def read(stores):\n    return {s: {'keys': [s]} for s in stores}\n")
    reader = python_reader("reader.py:read", base_dir=tmp_path)
    read = read_all(reader, {"x": "h:1", "y": "h:2"})
    assert [s.keys for s in read.stores] == [{"x"}, {"y"}]
    assert not same_data(read)


@pytest.mark.parametrize("ref, why", [
    ("nothing", "expected file.py:function"),
    ("missing.py:read", "cannot load"),
    ("reader.py:absent", "cannot load"),
])
def test_python_reader_errors_name_the_field(tmp_path, ref, why):
    (tmp_path / "reader.py").write_text("X = 1\n")
    with pytest.raises(SpecError, match=why) as exc:
        python_reader(ref, base_dir=tmp_path)
    assert exc.value.field == "stack.data.python"


def test_a_reader_that_raises_leaves_every_store_unknown():
    def boom(stores):
        raise RuntimeError("no route")

    read = read_all(boom, {"x": "h:1"})
    assert read == FinalRead(primary=None, stores=read.stores)
    assert not read.stores[0].reachable and "no route" in (read.stores[0].error or "")


def test_wait_same_waits_until_the_stores_agree():
    reads = iter([{"a": {"keys": ["k"]}, "b": {"keys": []}},
                  {"a": {"keys": ["k"]}, "b": {"keys": ["k"]}}])
    t = [0.0]
    ok, waited = wait_same(lambda: final_read_from(next(reads), {"a": "", "b": ""}),
                           timeout=5, clock=lambda: t[0],
                           sleep=lambda s: t.__setitem__(0, t[0] + s))
    assert ok and waited == 0.5


def test_registry_finds_the_shipped_target_and_refuses_unknown_ones():
    assert default_name() == "clipstream" and "clipstream" in registered()
    assert isinstance(load(default_name()), ClipStream)
    with pytest.raises(SpecError, match="unknown target 'nope'") as exc:
        load("nope")
    assert exc.value.field == "stack.target"


def test_target_name_of_a_stack_section():
    assert target_name({}) == "clipstream"
    assert target_name({"compose": "c.yml"}) == CUSTOM
    assert target_name({"nodes": [{"name": "a"}]}) == CUSTOM
    assert target_info({"nodes": [{"name": "a"}], "data": {"http": "/s"}}).data
    assert target_info({}).classes == tuple(CLASSES)


def test_init_writes_files_that_validate_and_never_overwrites(tmp_path):
    written = write_starter(tmp_path / "mine")
    assert sorted(p.name for p in written) == ["docker-compose.yml", "drill.yaml",
                                                "locustfile.py"]
    from drills.catalog import load_drill
    from drills.engine import preflight

    spec = load_drill(tmp_path / "mine" / "drill.yaml")
    assert preflight(spec, "docker").topology.zones == {"edge": ("app",), "dc-east": ("db",)}
    with pytest.raises(SpecError, match="exist"):
        write_starter(tmp_path / "mine")
    assert write_starter(tmp_path / "mine", force=True)


def test_no_module_outside_the_clipstream_target_names_it():
    """By grep, as the issue asks: ClipStream, its /dump route, its six operation classes (as
    names in quotes: the English words "view" or "like" are not the classes) and its video
    vocabulary."""
    pattern = (r"clipstream|/dump|[\"'](upload|feed|view|like|search|stats)[\"']"
               r"|\b(videos?|views|likes)\b")
    out = subprocess.run(["grep", "-rniE", pattern, "drills", "--include=*.py"], cwd=ROOT,
                         capture_output=True, text=True, check=False).stdout
    offenders = [line for line in out.splitlines()
                 if not line.startswith("drills/targets/clipstream/")]
    assert offenders == [], "\n".join(offenders)
    assert re.search("clipstream", (ROOT / "drills/targets/clipstream/__init__.py").read_text())
