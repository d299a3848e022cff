"""The `drills` pytest plugin (entry point ``pytest11``): command-line options shared by drill
tests. Collection of drill YAML files and the fixtures come with the plugin issue."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("drills", "disaster-recovery drills")
    group.addoption("--drills-provider", choices=("local", "docker"), default="local",
                    help="stack provider for drills (default: local processes)")
    group.addoption("--drills-out", default=None, help="directory for run directories")
    group.addoption("--drills-keep", action="store_true", help="leave stacks running")
