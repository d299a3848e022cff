"""The ``drill`` command. Exit codes live here and only here:

0 every objective met (or the drill failed exactly as its file says it is expected to) ·
1 an objective missed · 2 bad input (drill file, arguments) · 3 environment or harness error ·
4 a fault could not be reverted (the ledger says which; ``drill rollback RUN_DIR``).

Building the parser imports nothing heavy (no engine, report, pydantic, matplotlib, docker or
Locust), so that ``drill --help`` answers at once: each command imports what it needs when it
runs (`drills.commands`), and a subcommand whose arguments are declared in a heavy module adds
them only when that subcommand is parsed (``Parser(arguments=...)``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from drills import __version__
from drills.errors import Aborted, DrillsError, RevertError, SpecError

EXIT_OK, EXIT_MISSED, EXIT_INPUT, EXIT_ENV, EXIT_REVERT = 0, 1, 2, 3, 4
DEFAULT_STACK_DIR = Path("runs") / "stack"
#: ``--allow-remote-docker`` reaches the docker provider through the environment (the engine and
#: its options stay provider-agnostic); = `drills.stack.docker_compose.ALLOW_REMOTE_ENV`.
ALLOW_REMOTE_DOCKER_ENV = "DRILLS_ALLOW_REMOTE_DOCKER"
#: The console's width when stdout is not a terminal and COLUMNS is unset (a CI log, a pipe):
#: rich would fold every table and line at 80 columns there.
PIPE_WIDTH = 200
PROVIDERS = ("local", "docker")
ALLOW_REMOTE_HELP = ("let the docker provider drive a Docker Engine that is not on this machine "
                     "(DOCKER_HOST)")


def exit_code(error: BaseException | None, as_expected: bool | None = True) -> int:
    """The exit code of a run: its error class decides, else whether the run went as expected
    (every objective met, or for an ``expect: fail`` drill exactly the known ones missed)."""
    if isinstance(error, RevertError):
        return EXIT_REVERT
    if isinstance(error, SpecError):
        return EXIT_INPUT
    if isinstance(error, Aborted):
        return EXIT_MISSED
    if error is not None:
        return EXIT_ENV
    return EXIT_OK if as_expected else EXIT_MISSED


def make_console() -> Console:
    """The console ``drill`` prints to (stdout): as wide as the terminal on a terminal, COLUMNS
    when set, else `PIPE_WIDTH` columns."""
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced by an object without it, or closed
        tty = False
    piped = not tty and not os.environ.get("COLUMNS", "").isdigit()
    return Console(width=PIPE_WIDTH if piped else None)


def print_labelled(console: Console, label: str, style: str, message: object) -> None:
    """Print ``label`` in ``style``, a space, then ``message`` as plain text: no rich markup
    (a ``[a-z0-9-]+`` in an error message is text, not a tag) and no highlighting."""
    console.print(Text.assemble((label, style), " ", str(message)))


class Parser(argparse.ArgumentParser):
    """argparse, but bad arguments raise `SpecError` (exit 2 through the one error path).

    ``arguments``, if given, adds this parser's arguments the first time it parses or formats
    its help (`complete`): a subcommand declared by a heavy module costs nothing until used.
    """

    def __init__(self, *args: Any,
                 arguments: Callable[[argparse.ArgumentParser], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deferred = arguments

    def complete(self) -> None:
        """Add the deferred arguments now (once; nothing to do without them)."""
        add, self._deferred = self._deferred, None
        if add is not None:
            add(self)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self.complete()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self.complete()
        return super().format_usage()

    def format_help(self) -> str:
        self.complete()
        return super().format_help()

    def error(self, message: str) -> None:  # type: ignore[override]
        raise SpecError(message, source="arguments")


def _gameday_arguments(parser: argparse.ArgumentParser) -> None:
    from drills import gameday  # imports the engine: only for ``drill gameday``

    gameday.add_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="drill", description="Disaster-recovery drills: break a stack under load "
               "and measure RTO, lost writes, counter truth and recovery.")
    p.add_argument("--version", action="version", version=f"drill {__version__}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser,
                           help="the command (drill <command> --help for its arguments)")

    run = sub.add_parser("run", help="run one drill (a built-in name or a YAML file)")
    run.add_argument("drill", help="a built-in drill name (drill list) or a drill file")
    run.add_argument("--provider", choices=PROVIDERS,
                     help="where the stack runs (default: the drill file's stack.provider)")
    run.add_argument("--out", type=Path, help="run directory (default runs/<drill>-<time>)")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                     help="override any field, e.g. stack.config.fsync=never (repeatable)")
    run.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    run.add_argument("--allow-remote-docker", action="store_true", help=ALLOW_REMOTE_HELP)

    rep = sub.add_parser("report", help="regenerate every report of a run from its records")
    rep.add_argument("run_dir", type=Path, help="the run directory (it holds journal.json)")
    cmp = sub.add_parser("compare", help="what got better or worse between two runs of a drill")
    cmp.add_argument("run_a", type=Path, help="the earlier run (before)")
    cmp.add_argument("run_b", type=Path, help="the later run (after)")
    cmp.add_argument("--changes-only", action="store_true",
                     help="show only what changed between the runs")

    sub.add_parser("gameday", help="run drills in sequence: JUnit, an index page, the worst "
                   "exit code", arguments=_gameday_arguments)

    selftest = sub.add_parser(
        "selftest", help="detection power: run the drills against their target with planted DR "
        "bugs and print which drill caught which bug")
    selftest.add_argument("--runs", type=int, default=1, help="rounds (default 1)")
    selftest.add_argument("--drills", default="", metavar="A,B",
                          help="drills to use (default: the built-ins that declare `catches`)")
    selftest.add_argument("--bugs", default="", metavar="A,B",
                          help="bugs to plant (default: every bug the target knows)")
    selftest.add_argument("--full", action="store_true",
                          help="run every bug on every selected drill (the whole matrix)")
    selftest.add_argument("--provider", choices=PROVIDERS,
                          help="where the stacks run (default: each drill file's)")
    selftest.add_argument("--set", dest="sets", action="append", default=[],
                          metavar="KEY=VALUE", help="override a field of every selected drill, "
                          "e.g. stack.config.fsync=never (repeatable)")
    selftest.add_argument("--out", type=Path, help="output directory (default "
                          "runs/selftest-<time>)")
    selftest.add_argument("--allow-remote-docker", action="store_true", help=ALLOW_REMOTE_HELP)

    an = sub.add_parser("analyze", help="judge a run again from its files (same verdict when "
                        "nothing changed; a changed definition shows)")
    an.add_argument("run_dir", type=Path, help="the run directory (it holds journal.json, "
                    "drill.yaml, final-read.json)")
    ini = sub.add_parser("init", help="write a starter drill file, locustfile and Compose "
                         "snippet for your own system")
    ini.add_argument("dir", type=Path, help="the directory to write them into (created)")
    ini.add_argument("--force", action="store_true", help="overwrite files that exist")

    sub.add_parser("list", help="list the built-in drills")
    val = sub.add_parser("validate", help="validate drill files without running them (every "
                         "check `drill run` makes before starting anything)")
    val.add_argument("files", nargs="+", metavar="FILE",
                     help="drill files or built-in drill names")
    val.add_argument("--provider", choices=PROVIDERS,
                     help="check the targets against this provider's stack (default: each "
                     "file's stack.provider)")

    rb = sub.add_parser("rollback", help="revert every fault a run's ledger lists as in force")
    rb.add_argument("run_dir", type=Path, help="the run directory (it holds ledger.jsonl)")

    st = sub.add_parser("stack", help="bring the target stack up or down, or show its status")
    st.add_argument("action", choices=("up", "down", "status", "build"),
                    help="up, down, status, or build (the docker images)")
    st.add_argument("--provider", choices=PROVIDERS, default="local",
                    help="where the stack runs (default local)")
    st.add_argument("--drill", help="the drill (built-in name or file) whose system to run "
                    "(default: the default target)")
    st.add_argument("--dir", type=Path, default=DEFAULT_STACK_DIR,
                    help=f"stack work directory (default {DEFAULT_STACK_DIR})")
    st.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="a stack knob, e.g. fsync=never or stack.config.fsync=never "
                    "(repeatable)")
    st.add_argument("--base-image", help="docker build: base image to use if present")
    st.add_argument("--offline", action="store_true",
                    help="docker build: pull nothing (the Debian base and our Toxiproxy)")
    st.add_argument("--namespace", default="drills",
                    help="docker build: prefix of every image tag (default drills)")
    st.add_argument("--allow-remote-docker", action="store_true", help=ALLOW_REMOTE_HELP)

    tp = sub.add_parser("toxiproxy", help="run the embedded Toxiproxy-compatible server",
                        add_help=False)
    tp.add_argument("args", nargs=argparse.REMAINDER,
                    help="the server's own arguments (drill toxiproxy --help)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    console = make_console()
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
        print_labelled(console, "error:", "red", exc)
        return exit_code(exc)
    except KeyboardInterrupt:
        console.print("interrupted")
        return EXIT_ENV


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
