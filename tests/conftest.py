"""Suite-wide: tests marked ``docker`` are skipped, with the reason, where no Docker Engine
answers — probed once per session, only if such a test was collected."""

from __future__ import annotations

import pytest


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
