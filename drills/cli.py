"""The ``drill`` command. Exit codes live here and only here:

0 every objective met (or the drill failed exactly as its file says it is expected to) ·
1 an objective missed · 2 bad input (drill file, arguments) · 3 environment or harness error ·
4 a fault could not be reverted (the ledger says which; ``drill rollback RUN_DIR``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from drills.errors import DrillsError, RevertError, SpecError

EXIT_OK, EXIT_MISSED, EXIT_INPUT, EXIT_ENV, EXIT_REVERT = 0, 1, 2, 3, 4
DEFAULT_STACK_DIR = Path("runs") / "stack"
#: ``--allow-remote-docker`` reaches the docker provider through the environment (the engine and
#: its options stay provider-agnostic); = `drills.stack.docker_compose.ALLOW_REMOTE_ENV`.
ALLOW_REMOTE_DOCKER_ENV = "DRILLS_ALLOW_REMOTE_DOCKER"


def exit_code(error: BaseException | None, as_expected: bool | None = True) -> int:
    """The exit code of a run: its error class decides, else whether the run went as expected
    (every objective met, or for an ``expect: fail`` drill exactly the known ones missed)."""
    if isinstance(error, RevertError):
        return EXIT_REVERT
    if isinstance(error, SpecError):
        return EXIT_INPUT
    if error is not None:
        return EXIT_ENV
    return EXIT_OK if as_expected else EXIT_MISSED


class Parser(argparse.ArgumentParser):
    """argparse, but bad arguments raise `SpecError` (exit 2 through the one error path)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise SpecError(message, source="arguments")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="drill", description="Disaster-recovery drills: break a stack under load "
               "and measure RTO, lost writes, counter truth and recovery.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = sub.add_parser("run", help="run one drill (a built-in name or a YAML file)")
    run.add_argument("drill")
    run.add_argument("--provider", choices=("local", "docker"))
    run.add_argument("--out", type=Path, help="run directory (default runs/<drill>-<time>)")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                     help="override any field, e.g. stack.config.fsync=never (repeatable)")
    run.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    run.add_argument("--allow-remote-docker", action="store_true")

    rep = sub.add_parser("report", help="regenerate every report of a run from its records")
    rep.add_argument("run_dir", type=Path)
    cmp = sub.add_parser("compare", help="what got better or worse between two runs of a drill")
    cmp.add_argument("run_a", type=Path, help="the earlier run (before)")
    cmp.add_argument("run_b", type=Path, help="the later run (after)")
    cmp.add_argument("--changes-only", action="store_true")

    from drills import gameday  # light: it imports the engine only when a game day runs

    gd = sub.add_parser("gameday", help="run drills in sequence: JUnit, an index page, the worst "
                        "exit code")
    gameday.add_arguments(gd)

    selftest = sub.add_parser(
        "selftest", help="detection power: run the drills against ClipStream with planted DR "
        "bugs and print which drill caught which bug")
    selftest.add_argument("--runs", type=int, default=1, help="rounds (default 1)")
    selftest.add_argument("--drills", default="", metavar="A,B",
                          help="drills to use (default: the built-ins that declare `catches`)")
    selftest.add_argument("--bugs", default="", metavar="A,B",
                          help="bugs to plant (default: every ClipStream bug)")
    selftest.add_argument("--full", action="store_true",
                          help="run every bug on every selected drill (the whole matrix)")
    selftest.add_argument("--provider", choices=("local", "docker"))
    selftest.add_argument("--out", type=Path, help="output directory (default "
                          "runs/selftest-<time>)")
    selftest.add_argument("--allow-remote-docker", action="store_true")

    sub.add_parser("list", help="list the built-in drills")
    val = sub.add_parser("validate", help="validate drill files without running them")
    val.add_argument("files", nargs="+")

    rb = sub.add_parser("rollback", help="revert every fault a run's ledger lists as in force")
    rb.add_argument("run_dir", type=Path)

    st = sub.add_parser("stack", help="bring the target stack up or down, or show its status")
    st.add_argument("action", choices=("up", "down", "status", "build"))
    st.add_argument("--provider", choices=("local", "docker"), default="local")
    st.add_argument("--dir", type=Path, default=DEFAULT_STACK_DIR, help="stack work directory")
    st.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    st.add_argument("--base-image", help="docker build: base image to use if present")
    st.add_argument("--allow-remote-docker", action="store_true")

    tp = sub.add_parser("toxiproxy", help="run the embedded Toxiproxy-compatible server",
                        add_help=False)
    tp.add_argument("args", nargs=argparse.REMAINDER)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    console = Console(stderr=False)
    if argv[:1] == ["toxiproxy"]:
        from drills.toxiproxy import main as toxiproxy_main

        return toxiproxy_main(argv[1:])
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "allow_remote_docker", False):  # read by the docker provider
            os.environ[ALLOW_REMOTE_DOCKER_ENV] = "1"
        from drills import commands

        return commands.dispatch(args, console)
    except DrillsError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return exit_code(exc)
    except KeyboardInterrupt:
        console.print("interrupted")
        return EXIT_ENV


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
