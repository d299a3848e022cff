"""``drill stack up|down|status|build``: manage a target's stack outside a drill.

The target is the one of ``--drill`` (a built-in name or a drill file), else the default
target with ``--set`` knobs. ``up`` leaves the stack running (its state in ``--dir``); ``down``
and ``status`` find it again from there, even from another shell. ``build`` builds the container
images (docker provider).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from drills.catalog import load_drill, parse_stack_config
from drills.cli import EXIT_OK
from drills.stack.base import Stack
from drills.targets import default_name, for_spec, load
from drills.targets.base import Target


def resolve(args: argparse.Namespace) -> tuple[Target, dict[str, Any]]:
    """The target ``args`` name, and its knobs."""
    if getattr(args, "drill", None):
        spec = load_drill(args.drill, sets=args.sets)
        return for_spec(spec, args.provider), dict(spec.stack.config)
    target = load(default_name())
    return target, dict(parse_stack_config(args.sets, target.info))


def _open(args: argparse.Namespace) -> tuple[Target, Stack]:
    target, config = resolve(args)
    if args.provider == "docker":
        from drills.stack.docker import DockerStack

        return target, DockerStack(work_dir=args.dir, plan=target.compose_plan(config),
                                   topology=target.topology, ready=target.ready, keep=True)
    from drills.stack.local import LocalStack

    return target, LocalStack(work_dir=args.dir, plan=target.local_plan(config),
                              topology=target.topology, ready=target.ready, keep=True)


def up(args: argparse.Namespace, console: Console) -> int:
    target, stack = _open(args)
    with stack:
        pass  # keep=True: entering starts it and waits healthy; leaving keeps it running
    console.print(f"stack up ({stack.provider}); entry: {target.entry_url(stack)}; "
                  f"state in {args.dir}")
    return EXIT_OK


def down(args: argparse.Namespace, console: Console) -> int:
    from drills.stack.open import attach

    attach(args.dir).down()
    console.print(f"stack in {args.dir} is down")
    return EXIT_OK


def status(args: argparse.Namespace, console: Console) -> int:
    from drills.stack.open import attach

    stack = attach(args.dir)
    target, _ = resolve(args)
    final = target.final_read(stack, timeout=2.0)
    roles = {s.name: (s.role or "?", s.epoch) if s.reachable else ("unreachable", None)
             for s in (final.stores if final else ())}
    table = Table(title=f"{stack.provider} stack in {args.dir} — entry "
                        f"{target.entry_url(stack)}")
    for col in ("zone", "node", "state", "role", "epoch"):
        table.add_column(col)
    for zone, nodes in stack.topology.zones.items():
        for node in nodes:
            role, epoch = roles.get(node, ("", None))
            table.add_row(zone, node, stack.status(node), role, "" if epoch is None else str(epoch))
    console.print(table)
    return EXIT_OK


def build(args: argparse.Namespace, console: Console) -> int:
    from drills.stack.images import build_images

    def log(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    report = build_images(base_image=args.base_image, offline=args.offline,
                          namespace=args.namespace, log=log)
    log(str(report))
    return EXIT_OK


ACTIONS: Mapping[str, Callable[[argparse.Namespace, Console], int]] = {
    "up": up,
    "down": down,
    "status": status,
    "build": build,
}
