"""What each ``drill`` subcommand does (argument parsing and exit codes are in `drills.cli`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from drills.catalog import builtin_drills, load_drill
from drills.cli import EXIT_INPUT, EXIT_MISSED, EXIT_OK, EXIT_REVERT, exit_code, print_labelled
from drills.errors import SpecError


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from drills.engine import RunOptions, run_classes, run_drill
    from drills.live import LiveView

    spec = load_drill(args.drill, sets=args.sets)
    with LiveView(spec.drill, console, classes=run_classes(spec)) as view:
        result = run_drill(spec, RunOptions(out=args.out, provider=args.provider, keep=args.keep,
                                            observer=view))
    print_summary(console, result.journal, result.run_dir)
    return exit_code(result.error, result.journal.as_expected)


def print_summary(console: Console, journal, run_dir) -> None:  # type: ignore[no-untyped-def]
    table = Table(title=f"{journal.drill}: {journal.verdict.upper()}")
    for col in ("objective", "target", "measured", "result"):
        table.add_column(col)
    for o in journal.objectives:
        res = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: "unknown"}[o.passed]
        table.add_row(Text(o.name), Text(o.target), Text(o.measured), res)
    console.print(table)
    m = journal.metrics
    if m.get("writes_at_risk") is not None:
        console.print(
            f"exposure: {m['writes_at_risk']} writes at risk ({m.get('acked_before_fault')} "
            f"acked just before a fault, {m.get('in_flight_at_fault')} in flight at it, "
            f"{m.get('acked_during_fault')} acked during it), {m.get('retried_writes')} retried, "
            f"{m.get('degraded_reads')} degraded reads", highlight=False)
    if journal.error:
        print_labelled(console, "error:", "red", journal.error)
    if journal.expect != "pass":
        console.print(f"expected verdict: {journal.expect} — "
                      f"{'as expected' if journal.as_expected else 'NOT as expected'}")
    console.print(f"verdict: {journal.verdict}  ·  {journal.duration_s:.1f}s  ·  report: "
                  f"{run_dir}/report.html", highlight=False, markup=False)


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    table = Table(title="built-in drills")
    table.add_column("name")
    table.add_column("description")
    for name, description, _path in builtin_drills():
        table.add_row(Text(name), Text(description))
    console.print(table)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace, console: Console) -> int:
    """Every check `drill run` makes before it starts anything (the file, its fields, its paths,
    and its fault targets against the stack's topology), for each file; exit 2 if one fails."""
    from drills.engine import preflight

    worst = EXIT_OK
    for f in args.files:
        try:
            spec = load_drill(f)
            preflight(spec, args.provider or spec.stack.provider)
        except SpecError as exc:
            print_labelled(console, "invalid", "red", exc)
            worst = EXIT_INPUT
        else:
            print_labelled(console, "ok", "green", f"{f}: {spec.drill}")
    return worst


def cmd_rollback(args: argparse.Namespace, console: Console) -> int:
    """Revert what a run left in force, and stop its stack if the harness that ran it is dead
    (and did not keep it on purpose): whether a fault was in force or not, nothing is left."""
    from drills.faults import rollback
    from drills.ledger import Ledger
    from drills.stack.open import attach, owner_alive

    ledger = Ledger(args.run_dir)
    stack_dir = args.run_dir / "stack"
    if not ledger.path.exists() and not (stack_dir / "stack.json").exists():
        raise SpecError("no ledger.jsonl and no stack/stack.json here: not a run directory",
                        source=str(args.run_dir))
    if owner_alive(stack_dir):
        console.print(f"the harness that runs {args.run_dir} is still alive: it reverts its own "
                      "faults (Ctrl-C it, or wait)", highlight=False, markup=False)
        return EXIT_OK
    stack = attach(stack_dir)
    done, failures = rollback(stack, ledger) if ledger.path.exists() else ([], [])
    for fid in done:
        console.print(f"reverted {fid}")
    for f in failures:
        print_labelled(console, "could not revert", "red",
                       f"{f.id} ({f.kind} {f.target}): {f.reason}")
    if failures:
        return EXIT_REVERT
    if done:  # the faults are undone only if every node answers again
        stack.wait_healthy(timeout=30.0)
        console.print("every node came back", highlight=False, markup=False)
    if stack.keep:
        console.print("the stack was kept on purpose and is still up "
                      f"(drill stack down --dir {stack_dir})", highlight=False, markup=False)
    else:
        stack.down()
        console.print(("nothing was in force; " if not done else "") + "stopped the stack "
                      f"its dead harness left running ({stack_dir})", highlight=False,
                      markup=False)
    return EXIT_OK


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from drills.report.load import regenerate

    for path in regenerate(args.run_dir):
        console.print(f"wrote {path}", highlight=False, markup=False)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    """Exit 1 when something got worse, so a CI job can fail on a regression."""
    from drills.report.compare import compare, to_table

    comparison = compare(args.run_a, args.run_b)
    console.print(to_table(comparison, only_changes=args.changes_only))
    return EXIT_MISSED if comparison.having("worse") else EXIT_OK


def cmd_gameday(args: argparse.Namespace, console: Console) -> int:
    from drills import gameday

    return gameday.cmd_gameday(args, console)


def cmd_selftest(args: argparse.Namespace, console: Console) -> int:
    """Exit 0 only when the correct system passed every run and every bug was caught."""
    import time
    from pathlib import Path

    from drills import selftest

    plan = selftest.make_plan(
        drills=[d for d in args.drills.split(",") if d], runs=args.runs, full=args.full,
        bugs=[b for b in args.bugs.split(",") if b], provider=args.provider, sets=args.sets)
    out = args.out or Path("runs") / f"selftest-{time.strftime('%Y%m%d-%H%M%S')}"
    jobs = sum(1 + sum(d.drill in t for t in plan.targets.values()) for d in plan.drills)
    console.print(f"self-test: {len(plan.drills)} drills, {len(plan.bugs)} bugs, {plan.runs} "
                  f"run(s): {jobs * plan.runs} drill runs -> {out}", highlight=False)
    result = selftest.run_selftest(plan, out=out, log=lambda line: console.print(
        line, highlight=False, markup=False))
    table = Table(title=f"detection matrix ({plan.runs} run(s) per cell): exit "
                        f"{result.exit_code}")
    cols = [selftest.CORRECT, *plan.bugs]
    table.add_column("drill")
    for col in cols:
        table.add_column(col)
    for drill, row in selftest.matrix(result).items():
        table.add_row(drill, *(row.get(c, "—") for c in cols))
    console.print(table)
    for bug in plan.bugs:
        if result.uncaught_rounds(bug):
            console.print(f"[red]not caught[/red] {bug} in run(s) "
                          f"{', '.join(map(str, result.uncaught_rounds(bug)))}", highlight=False)
    for c in result.false_alarms:
        console.print(f"[red]false alarm[/red] {escape(c.drill)} run {c.run}: {c.verdict} "
                      f"({escape(c.run_dir)})", highlight=False)
    console.print(f"matrix: {out / 'selftest.html'} · {out / 'selftest.json'}", highlight=False)
    return result.exit_code


def cmd_analyze(args: argparse.Namespace, console: Console) -> int:
    """Judge a run again from its files; print the objectives; write ``analysis.json``
    beside the run's own journal (which is left as it was). Exit as `drill run` would."""
    import json

    from drills.runstore import analyze

    run, judgement = analyze(args.run_dir)
    table = Table(title=f"{run.journal.get('drill')}: {judgement.verdict.upper()} "
                        f"(re-judged; recorded: {run.journal.get('verdict')})")
    for col in ("objective", "target", "measured", "result"):
        table.add_column(col)
    for o in judgement.objectives:
        res = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: "unknown"}[o.passed]
        table.add_row(Text(o.name), Text(o.target), Text(o.measured), res)
    console.print(table)
    out = args.run_dir / "analysis.json"
    out.write_text(json.dumps({
        "verdict": judgement.verdict, "recorded_verdict": run.journal.get("verdict"),
        "as_expected": judgement.as_expected,
        "objectives": [{"name": o.name, "target": o.target, "measured": o.measured,
                        "passed": o.passed} for o in judgement.objectives],
    }, indent=2))
    console.print(f"wrote {out}", highlight=False, markup=False)
    return exit_code(None, judgement.as_expected)


def cmd_init(args: argparse.Namespace, console: Console) -> int:
    from drills.scaffold import write_starter

    for path in write_starter(args.dir, force=args.force):
        console.print(f"wrote {path}", highlight=False, markup=False)
    console.print(f"next: edit {args.dir}/drill.yaml, then drill validate {args.dir}/drill.yaml",
                  highlight=False, markup=False)
    return EXIT_OK


def cmd_stack(args: argparse.Namespace, console: Console) -> int:
    from drills import stackctl

    return stackctl.ACTIONS[args.action](args, console)


COMMANDS: Mapping[str, Callable[[argparse.Namespace, Console], int]] = {
    "run": cmd_run,
    "list": cmd_list,
    "validate": cmd_validate,
    "rollback": cmd_rollback,
    "report": cmd_report,
    "compare": cmd_compare,
    "gameday": cmd_gameday,
    "selftest": cmd_selftest,
    "stack": cmd_stack,
    "analyze": cmd_analyze,
    "init": cmd_init,
}


def dispatch(args: argparse.Namespace, console: Console) -> int:
    return COMMANDS[args.command](args, console)
