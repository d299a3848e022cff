"""Fixtures for ClipStream tests: real node processes on 127.0.0.1, torn down whatever happens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clipstream.launch import Knobs, LocalCluster


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., LocalCluster]]:
    """Start a `LocalCluster` (four real processes) with the given knobs; stopped at teardown.

    On a failing test the node logs are printed, so a failure shows what each node saw.
    """
    started: list[LocalCluster] = []

    def make(**knobs: object) -> LocalCluster:
        cluster = LocalCluster(tmp_path / f"c{len(started)}", knobs=Knobs(**knobs))  # type: ignore[arg-type]
        started.append(cluster)
        cluster.start()
        return cluster

    yield make
    for cluster in started:
        cluster.stop()
        for node in cluster.nodes.values():
            print(f"--- {node.name} log tail ---\n{node.log_tail(15)}")
