"""The error tree of ClipStream (a target app: it never imports `drills`).

::

    ClipStreamError
    ├── ConfigError     a flag or environment knob is invalid                 (CLI exit 2)
    ├── CorruptRecord   a log frame or record payload cannot be decoded
    ├── Refused         a request is refused with a 4xx (status, code, field kept)
    ├── Unavailable     the request could not be served now (503): retry may succeed
    └── Unreachable     a call to another node got no complete answer (refused, reset,
                        timed out, malformed): `clipstream.client`
"""

from __future__ import annotations


class ClipStreamError(Exception):
    """Root of every error ClipStream raises on purpose."""


class ConfigError(ClipStreamError):
    """A flag, an environment variable or a knob value is invalid."""


class CorruptRecord(ClipStreamError):
    """A log frame or record payload is torn, fails its CRC, or does not decode."""


class Refused(ClipStreamError):
    """A request is refused for good: answering it again gives the same answer.

    ``status`` is the HTTP status (4xx), ``code`` a stable machine word (``not_primary``,
    ``stale_epoch``, ``conflict``, ``not_found``, ``invalid``...), ``field`` the input at fault.
    """

    def __init__(self, message: str, *, status: int, code: str, field: str | None = None):
        self.message = message
        self.status = status
        self.code = code
        self.field = field
        super().__init__(message)


class Unavailable(ClipStreamError):
    """The request cannot be served now (no primary, replica silent, deposed): HTTP 503."""


class Unreachable(ClipStreamError):
    """A call to another node got no complete answer: refused, reset, timed out, malformed."""
