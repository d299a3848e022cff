"""The images a ``docker`` stack runs: ClipStream's and a Toxiproxy server's, present or built.

Nothing is pulled when a stack starts: the official Toxiproxy image is used only if it is present
(`choose_toxiproxy_image` with ``pull=False``), else ours. Images that are missing are built with
`build_images` (what ``drill stack build`` does: cold about 2 min, warm seconds).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import docker
import docker.errors

from drills.errors import StackError
from drills.stack.images import build_images, choose_toxiproxy_image

LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StackImages:
    """The images a stack runs: ClipStream's, and the Toxiproxy server's with why it was chosen."""

    app: str
    toxiproxy: str
    toxiproxy_reason: str

    def compose_env(self) -> dict[str, str]:
        return {"DRILLS_IMAGE": self.app, "TOXIPROXY_IMAGE": self.toxiproxy}


def _image_present(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.DockerException as exc:
        raise StackError(f"cannot inspect image {name}: {exc}") from exc


def resolve_images(client: docker.DockerClient, *, namespace: str = "drills",
                   log: Callable[[str], None] = LOG.info) -> StackImages:
    """The images to run: those present (the official Toxiproxy image only if it is present:
    nothing is pulled here), else built now with `build_images` (``drill stack build``)."""
    app = f"{namespace}/clipstream:latest"
    choice = choose_toxiproxy_image(client, namespace=namespace, pull=False)
    if _image_present(client, app) and _image_present(client, choice.image):
        return StackImages(app, choice.image, choice.reason)
    log(f"{app} or {choice.image} is missing: building the images (drill stack build)")
    report = build_images(namespace=namespace, log=log)
    return StackImages(report.app_image, report.toxiproxy.image, report.toxiproxy.reason)
