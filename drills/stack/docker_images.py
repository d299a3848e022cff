"""The images a ``docker`` stack runs: ours (the installed packages, when the target's Compose
file runs them), a Toxiproxy server's, and Debian-package images a drill file asks for (built
offline from Debian packages, no registry), each present or built.

Nothing is pulled when a stack starts: the official Toxiproxy image is used only if it is present
(`choose_toxiproxy_image` with ``pull=False``), else ours. Images that are missing are built with
`build_images` (what ``drill stack build`` does: cold about 2 min, warm seconds).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import docker
import docker.errors

from drills.errors import StackError
from drills.stack.debian_base import PACKAGES, DebianBase, ensure_debian_base
from drills.stack.images import (
    app_image,
    build_images,
    choose_toxiproxy_image,
    default_cache_dir,
)

LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StackImages:
    """The images a stack runs: ours (``app``, empty when the target runs none of ours), and
    the Toxiproxy server's with why it was chosen."""

    app: str
    toxiproxy: str
    toxiproxy_reason: str

    def compose_env(self) -> dict[str, str]:
        env = {"TOXIPROXY_IMAGE": self.toxiproxy}
        return {"DRILLS_IMAGE": self.app, **env} if self.app else env


def _image_present(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.DockerException as exc:
        raise StackError(f"cannot inspect image {name}: {exc}") from exc


def resolve_images(client: docker.DockerClient, *, namespace: str = "drills", app: bool = True,
                   log: Callable[[str], None] = LOG.info) -> StackImages:
    """The images to run: those present (the official Toxiproxy image only if it is present:
    nothing is pulled here), else built now with `build_images` (``drill stack build``).
    ``app``: the target runs our own image too (else only the Toxiproxy image is needed)."""
    ours = app_image(namespace)
    choice = choose_toxiproxy_image(client, namespace=namespace, pull=False)
    if (not app or _image_present(client, ours)) and _image_present(client, choice.image):
        return StackImages(ours if app else "", choice.image, choice.reason)
    log(f"{ours} or {choice.image} is missing: building the images (drill stack build)")
    report = build_images(namespace=namespace, log=log)
    return StackImages(report.app_image if app else "", report.toxiproxy.image,
                       report.toxiproxy.reason)


def ensure_debian_images(client: docker.DockerClient, images: Mapping[str, Sequence[str]], *,
                         namespace: str = "drills", log: Callable[[str], None] = LOG.info) -> None:
    """Every ``tag -> Debian packages`` image present, built from Debian packages
    (debootstrap -> docker import, cached) when it is not: how a drill file's own system gets
    images with no registry (``stack.images``)."""
    for tag, packages in images.items():
        how = ensure_debian_base(
            client, DebianBase(packages=tuple(dict.fromkeys((*PACKAGES, *packages)))), tag=tag,
            cache_dir=default_cache_dir(), labels={"drills.namespace": namespace,
                                                   "drills.image": "debian"}, log=log)
        log(f"image {tag}: {how}")
