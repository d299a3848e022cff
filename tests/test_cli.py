"""The `drill` command's cheap paths: list, validate, argument errors, rollback input errors."""

from __future__ import annotations

import pytest

from drills.cli import EXIT_INPUT, EXIT_MISSED, EXIT_OK, EXIT_REVERT, exit_code, main
from drills.errors import RevertError, SpecError, StackError


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
