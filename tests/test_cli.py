"""The `drill` command's cheap paths: list, validate, argument errors, rollback input errors,
help and version, and how it prints (markup, width). The subprocess tests start only
``python -m drills.cli`` for --help or validate (no stack, no load)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from drills import __version__
from drills.cli import (
    EXIT_INPUT,
    EXIT_MISSED,
    EXIT_OK,
    EXIT_REVERT,
    PIPE_WIDTH,
    build_parser,
    exit_code,
    main,
    print_labelled,
)
from drills.errors import RevertError, SpecError, StackError

BUILTIN = Path(__file__).parents[1] / "drills" / "builtin"
#: A drill whose name breaks the ``drill:`` pattern, which the error message quotes.
BAD_NAME = "drill: Bad_Name\ndescription: y\ntimeline: {baseline: 5s, settle: 5s}\n"
#: A drill that parses but powers down a zone the stack does not have.
UNKNOWN_ZONE = """\
drill: zone-x
description: a zone that does not exist
timeline:
  baseline: 5s
  faults:
    - {at: 5s, power_down: dc-north, for: 5s}
  settle: 5s
"""
#: Modules that building the parser must not import (top-level packages, or drills modules).
HEAVY = ("matplotlib", "locust", "gevent", "docker", "pydantic", "jinja2", "requests",
         "drills.report", "drills.engine", "drills.spec", "drills.gameday", "drills.catalog")


@pytest.fixture(autouse=True)
def _no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output captured in-process is not a terminal: `PIPE_WIDTH` wide, unless COLUMNS is set
    (as it may be in the shell running the tests), which would fold the lines checked here."""
    monkeypatch.delenv("COLUMNS", raising=False)


def drill(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m drills.cli ARGS`` with stdout a pipe (not a terminal)."""
    return subprocess.run([sys.executable, "-m", "drills.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env, check=False)


def test_list_shows_every_builtin(capsys):
    assert main(["list"]) == EXIT_OK
    out = capsys.readouterr().out
    for name in ("dc-east-power-loss", "storage-partition", "replication-link-cut", "zone-flap",
                 "slow-storage", "witness-loss"):
        assert name in out


def test_validate_good_and_bad_files(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("drill: x\ndescription: y\ntimeline: {baseline: 5s, settel: 3s}\n")
    assert main(["validate", "dc-east-power-loss"]) == EXIT_OK
    assert main(["validate", "dc-east-power-loss", str(bad)]) == EXIT_INPUT
    out = capsys.readouterr().out
    assert "timeline.settel" in out and "did you mean 'settle'" in out and str(bad) in out


def test_unknown_subcommand_and_bad_set_are_exit_2(capsys):
    assert main(["frobnicate"]) == EXIT_INPUT
    assert main(["run", "dc-east-power-loss", "--set", "load.users=zero"]) == EXIT_INPUT
    assert "load.users" in capsys.readouterr().out


def test_unknown_drill_name_lists_builtins(capsys):
    assert main(["run", "dc-east-pwoer-loss"]) == EXIT_INPUT
    assert "dc-east-power-loss" in capsys.readouterr().out


def test_rollback_of_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert main(["rollback", str(tmp_path)]) == EXIT_INPUT
    assert "ledger.jsonl" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("error", "as_expected", "code"),
    [(None, True, EXIT_OK), (None, False, EXIT_MISSED), (None, None, EXIT_MISSED),
     (SpecError("x"), True, EXIT_INPUT), (StackError("x"), True, 3),
     (RevertError("x"), True, EXIT_REVERT)],
)
def test_exit_codes(error, as_expected, code):
    assert exit_code(error, as_expected) == code


def test_help_imports_nothing_heavy():
    """``drill --help`` and every light command's ``--help`` build the parser without the
    engine, the reports, pydantic, matplotlib, docker or Locust (``gameday`` declares its
    arguments in its own module, which imports the engine: that one is left out)."""
    commands = ("run", "report", "compare", "selftest", "list", "validate", "rollback", "stack")
    code = (
        "import sys\n"
        "from drills.cli import main\n"
        f"for argv in [['--help'], ['--version'], *([c, '--help'] for c in {commands!r})]:\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('MODULES', *sorted(sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert "usage: drill stack" in out
    modules = out.split("MODULES", 1)[1].split()
    heavy = sorted(m for m in modules if m in HEAVY or m.startswith(tuple(f"{h}." for h in HEAVY)))
    assert heavy == []


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"drill {__version__}\n"


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_argument_of_every_command_has_help():
    missing = []
    for parser in _parsers(build_parser()):
        parser.format_help()  # a command may add its arguments only when asked for them
        missing += [f"{parser.prog}: {a.option_strings or a.dest}" for a in parser._actions
                    if not isinstance(a, argparse._HelpAction) and not a.help]
    assert missing == []


def test_messages_are_printed_as_text_not_markup(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_NAME)
    assert main(["validate", str(bad)]) == EXIT_INPUT
    out = capsys.readouterr().out
    assert f"invalid {bad}: drill: expected [a-z0-9-]+, got 'Bad_Name'" in out
    assert main(["run", str(bad)]) == EXIT_INPUT  # the error path of every command
    assert "error: " in (out := capsys.readouterr().out) and "[a-z0-9-]+" in out


def test_the_label_keeps_its_colour():
    console = Console(record=True, force_terminal=True, color_system="standard", width=80)
    print_labelled(console, "error:", "red", "expected [a-z0-9-]+ or [red]x[/red]")
    assert console.export_text(clear=False) == "error: expected [a-z0-9-]+ or [red]x[/red]\n"
    assert "\x1b[31merror:\x1b[0m" in console.export_text(styles=True)


def test_output_that_is_not_a_terminal_is_not_folded_at_80_columns(tmp_path):
    good = tmp_path / "a-directory-name-long-enough-to-pass-80-columns" / "flap.yaml"
    good.parent.mkdir()
    good.write_text((BUILTIN / "zone-flap.yaml").read_text())
    line = f"ok {good}: zone-flap"
    assert 80 < len(line) <= PIPE_WIDTH
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR",
                                                            "TTY_COMPATIBLE")}
    wide = drill("validate", str(good), env=env)
    assert wide.returncode == EXIT_OK and wide.stdout.splitlines() == [line]
    narrow = drill("validate", str(good), env={**env, "COLUMNS": "60"})  # COLUMNS still wins
    assert narrow.returncode == EXIT_OK
    assert max(len(ln) for ln in narrow.stdout.splitlines()) <= 60


def test_validate_checks_the_targets_like_run(tmp_path, capsys):
    zone = tmp_path / "zone.yaml"
    zone.write_text(UNKNOWN_ZONE)
    for provider in ([], ["--provider", "local"], ["--provider", "docker"]):
        assert main(["validate", str(zone), *provider]) == EXIT_INPUT
        out = capsys.readouterr().out
        assert out.startswith(f"invalid {zone}: timeline.faults[0].power_down: unknown zone "
                              "'dc-north'"), out
    assert main(["validate", "zone-flap", "--provider", "docker"]) == EXIT_OK
    assert main(["validate", "zone-flap", "--provider", "cloud"]) == EXIT_INPUT


def test_validate_of_a_built_in_and_its_file_agree(capsys):
    assert main(["validate", str(BUILTIN / "zone-flap.yaml"), "zone-flap"]) == EXIT_OK
    assert capsys.readouterr().out.count(": zone-flap") == 2
