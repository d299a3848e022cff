"""Suite-wide: tests marked ``docker`` are skipped, with the reason, where no Docker Engine
answers — probed once per session, only if such a test was collected. The docker tests share
the fixtures ``images`` (the project's images, built once per session) and ``client`` (a Docker
SDK client)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import docker

    from drills.stack.images import BuildReport


@pytest.fixture(scope="session")
def images() -> BuildReport:
    """The images docker-compose.yml runs, built now (seconds when warm, 2-3 min cold)."""
    from drills.stack.images import build_images

    return build_images(log=lambda _: None)


@pytest.fixture(scope="session")
def client() -> Iterator[docker.DockerClient]:
    """A Docker SDK client for the docker tests (a local test file may define its own)."""
    import docker

    with contextlib.closing(docker.from_env(timeout=120)) as engine:
        yield engine


def engine_problem() -> str | None:
    """Why no Docker Engine can be used here, or None when one answers a ping."""
    import docker

    try:
        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except docker.errors.DockerException as exc:
        return f"no Docker Engine reachable: {exc}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if item.get_closest_marker("docker")]
    problem = engine_problem() if marked else None
    if problem:
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=problem))
