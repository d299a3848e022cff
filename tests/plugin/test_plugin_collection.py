"""Collection by the drills plugin, with pytester (in process; nothing is started): drill files
become items named after their drill, other YAML is left alone, ``-k``/``-m`` select as usual,
and an invalid drill file fails as a readable error without starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ("pytester",)

REPO = Path(__file__).resolve().parents[2]

DRILL = """\
drill: {name}
description: A short drill for the plugin's tests.
load: {{users: 8, rate: 40}}
timeline:
  baseline: 4s
  faults:
    - {{at: 4s, {fault}, for: 4s}}
  settle: 4s
objectives:
  rto: {{feed: 3s}}
analysis: {{hold: 1s}}
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """Two drill files among YAML that is not a drill, and a Python test."""
    drills = pytester.mkdir("drills")
    (drills / "api-crash.yaml").write_text(DRILL.format(name="api-crash", fault="crash: api"))
    (drills / "slow.yml").write_text(
        DRILL.format(name="slow-link", fault="latency: api->store-east, ms: 20"))
    (pytester.path / "docker-compose.yml").write_text((REPO / "docker-compose.yml").read_text())
    ci = pytester.mkdir("ci")
    (ci / "gameday.yml").write_text((REPO / ".github/workflows/gameday.yml").read_text())
    (pytester.path / "nested.yaml").write_text("settings:\n  drill: x\n  timeline: y\n")
    (pytester.path / "notes.yaml").write_text("drill: no-timeline\ndescription: just notes\n")
    (pytester.path / "binary.yaml").write_bytes(b"drill: \xff\xfe\ntimeline: \x80\n")
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    return pytester


#: Plugins these inner sessions do not need (they only slow every inner start-up down).
QUIET = ("-p", "no:locust", "-p", "no:benchmark", "-p", "no:hypothesispytest")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*QUIET, *args)


def collected(result: pytest.RunResult) -> list[str]:
    return sorted(line for line in result.outlines if "::" in line)


def test_only_drill_files_and_python_tests_are_collected(project):
    result = run(project, "--collect-only", "-q")
    assert result.ret == 0, result.stdout.str()
    assert collected(result) == [
        "drills/api-crash.yaml::api-crash",
        "drills/slow.yml::slow-link",
        "test_plain.py::test_plain",
    ]


def test_the_builtin_drills_are_collected(pytester):
    result = run(pytester, "--collect-only", "-q", str(REPO / "drills" / "builtin"))
    names = {line.split("::")[1] for line in collected(result)}
    assert names == {p.stem for p in (REPO / "drills" / "builtin").glob("*.yaml")}
    assert len(names) >= 6


@pytest.mark.parametrize(("args", "expected"), [
    (["-k", "slow-link"], ["drills/slow.yml::slow-link"]),
    (["-k", "latency"], ["drills/slow.yml::slow-link"]),  # fault kinds are keywords
    (["-k", "crash and not plain"], ["drills/api-crash.yaml::api-crash"]),
    (["-m", "drill"], ["drills/api-crash.yaml::api-crash", "drills/slow.yml::slow-link"]),
    (["-m", "not slow"], ["test_plain.py::test_plain"]),
    (["-m", "docker"], []),
    (["-m", "docker", "--drills-provider", "docker"],
     ["drills/api-crash.yaml::api-crash", "drills/slow.yml::slow-link"]),
])
def test_k_and_m_select_drills(project, args, expected):
    result = run(project, "--collect-only", "-q", "--strict-markers", *args)
    assert collected(result) == expected, result.stdout.str()


def test_an_invalid_drill_fails_naming_the_field_and_starts_nothing(pytester):
    (pytester.path / "typo.yaml").write_text(
        "drill: typo\ndescription: x\ntimeline:\n  baseline: 2s\n"
        "  faults: [{at: 2s, power_dwn: dc-east, for: 1s}]\n")
    result = run(pytester, "-q", "--drills-out", "runs")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "invalid drill file" in out and "timeline.faults[0]" in out and "power_dwn" in out
    assert "Traceback" not in out and "raise " not in out
    assert not (pytester.path / "runs").exists()  # no run directory: nothing was started


def test_options_and_markers_are_documented(pytester):
    helptext = run(pytester, "--help").stdout.str()
    for option in ("--drills-provider", "--drills-out", "--drills-keep"):
        assert option in helptext
    markers = run(pytester, "--markers").stdout.str()
    assert "@pytest.mark.drill:" in markers and "@pytest.mark.drill_load(" in markers


def test_the_fixture_stack_is_configured_from_the_ini_and_the_command_line(pytester):
    pytester.makeini("[pytest]\ndrills_drill = deploy/drill.yaml\n"
                     "drills_stack_config =\n    fsync=never\n    detection=2s\n")
    (pytester.path / "deploy").mkdir()
    (pytester.path / "deploy" / "drill.yaml").write_text(  # flow style: not collected as a test
        "{drill: mine, description: d, stack: {provider: docker}, timeline: {baseline: 1}}\n")
    pytester.makepyfile(test_opts="""
        def test_opts(drill_stack_options):
            o = drill_stack_options
            name = o.drill.name if o.drill else None
            print("OPTS", o.provider, name, sorted(o.config.items()))
    """)
    out = run(pytester, "-s", "-q").stdout.str()
    assert "OPTS docker drill.yaml [('detection', 2.0), ('fsync', 'never')]" in out
    out = run(pytester, "-s", "-q", "--drills-provider", "local").stdout.str()
    assert "OPTS local drill.yaml [('detection', 2.0), ('fsync', 'never')]" in out
    pytester.makeini("[pytest]\ndrills_stack_config = fsync=sometimes\n")
    result = run(pytester, "-q")
    result.assert_outcomes(errors=1)
    assert "fsync" in result.stdout.str() and "always, never or interval" in result.stdout.str()
