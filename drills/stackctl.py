"""``drill stack up|down|status|build``: manage a target stack outside a drill.

``up`` leaves the stack running (its state in ``--dir``); ``down`` and ``status`` find it again
from there, even from another shell. ``build`` builds the container images (docker provider).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping

from rich.console import Console
from rich.table import Table

from drills import readback
from drills.catalog import parse_stack_config
from drills.cli import EXIT_OK
from drills.stack.base import Stack


def _open(args: argparse.Namespace) -> Stack:
    config = parse_stack_config(args.sets).model_dump(exclude_none=True)
    if args.provider == "docker":
        from drills.stack.docker import DockerStack

        return DockerStack(work_dir=args.dir, config=config, keep=True)
    from drills.stack.local import LocalStack

    return LocalStack(work_dir=args.dir, config=config, keep=True)


def up(args: argparse.Namespace, console: Console) -> int:
    stack = _open(args)
    with stack:
        pass  # keep=True: entering starts it and waits healthy; leaving keeps it running
    console.print(f"stack up ({stack.provider}); api: {stack.api_url}; state in {args.dir}")
    return EXIT_OK


def down(args: argparse.Namespace, console: Console) -> int:
    from drills.stack.open import attach

    attach(args.dir).down()
    console.print(f"stack in {args.dir} is down")
    return EXIT_OK


def status(args: argparse.Namespace, console: Console) -> int:
    from drills.stack.open import attach

    stack = attach(args.dir)
    final = readback.final_read(stack.store_urls, timeout=2.0)
    roles = {s.name: (s.role or "?", s.epoch) if s.reachable else ("unreachable", None)
             for s in final.stores}
    table = Table(title=f"{stack.provider} stack in {args.dir} — api {stack.api_url}")
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

    report = build_images(base_image=args.base_image, log=log)
    log(str(report))
    return EXIT_OK


ACTIONS: Mapping[str, Callable[[argparse.Namespace, Console], int]] = {
    "up": up,
    "down": down,
    "status": status,
    "build": build,
}
