"""Content-addressed blob files of a store: ``blobs/<sha256>``.

A blob is written (to a temporary name, fsync'd when asked, then renamed) *before* the log
record that names it, so a record never points at a missing file. Writing the same content twice
is harmless. Methods block on disk: call them from a worker thread.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from clipstream.errors import CorruptRecord

SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class BlobStore:
    """Blob files under ``root``, named by the SHA-256 of their content."""

    def __init__(self, root: Path, *, fsync: bool):
        self.root = root
        self.fsync = fsync
        root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not SHA_RE.match(sha256):
            raise CorruptRecord(f"not a sha256: {sha256!r}")
        return self.root / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, data: bytes, *, expect_sha256: str | None = None) -> str:
        """Store ``data``, return its SHA-256; raise `CorruptRecord` if it is not the expected."""
        sha = hashlib.sha256(data).hexdigest()
        if expect_sha256 is not None and sha != expect_sha256:
            raise CorruptRecord(f"blob content hashes to {sha}, expected {expect_sha256}")
        final = self.path(sha)
        if final.is_file():
            return sha
        tmp = final.with_name(f".{sha}.{os.getpid()}.{id(data)}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            if self.fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, final)
        if self.fsync:
            dfd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        return sha

    def get(self, sha256: str) -> bytes:
        """The blob's bytes; raise FileNotFoundError if absent."""
        return self.path(sha256).read_bytes()
