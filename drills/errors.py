"""The one error tree of `drills`.

Every error the harness raises on purpose is a `DrillsError`; foreign errors (OSError, httpx,
docker, yaml) are translated at the module boundary with ``raise X(...) from exc``.
Exit codes are decided by the CLI alone, from the class of the error::

    DrillsError
    ├── SpecError           bad input: drill file, --set override, CLI argument      (exit 2)
    ├── Aborted             a guardrail of the drill tripped (faults reverted)       (exit 1)
    ├── EnvironmentError_   the environment or the harness itself failed             (exit 3)
    │   ├── StackError          a stack would not start, a node would not answer
    │   ├── ProxyError          the Toxiproxy server or a proxy operation failed
    │   ├── LoadError           the load generator failed
    │   ├── HarnessError        a check or a report crashed (a bug in drills; records kept)
    │   └── Interrupted         Ctrl-C or SIGTERM ended a run (every fault was reverted)
    └── FaultError          a fault could not be injected                             (exit 3)
        └── RevertError     a fault could not be reverted (the ledger says which)     (exit 4)
"""

from __future__ import annotations


class DrillsError(Exception):
    """Root of every error raised by `drills` on purpose."""


class SpecError(DrillsError):
    """A drill file, an override or an argument is invalid.

    ``source`` names the file (or ``--set``), ``field`` the dotted path inside it, and the
    message says what was expected. The string form reads ``source: field: message``.
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.message = message
        self.source = source
        self.field = field
        parts = [p for p in (source, field) if p]
        super().__init__(": ".join([*parts, message]))


class Aborted(DrillsError):
    """A guardrail (stop condition) of the drill tripped: the run was stopped and every fault
    reverted. The drill failed (exit 1): it hurt what it must not."""


class EnvironmentError_(DrillsError):
    """The environment or the harness failed (not the system under test, not the input)."""


class StackError(EnvironmentError_):
    """A stack could not be started, stopped, or reached. Carries the node's log tail if known."""

    def __init__(self, message: str, *, logs: str | None = None):
        self.logs = logs
        super().__init__(message if not logs else f"{message}\n--- last log lines ---\n{logs}")


class ProxyError(EnvironmentError_):
    """The Toxiproxy server refused or failed an operation (status and message kept)."""

    def __init__(self, message: str, *, status: int | None = None):
        self.status = status
        super().__init__(message if status is None else f"{message} (HTTP {status})")


class HarnessError(EnvironmentError_):
    """A check or a report of drills itself crashed: a bug in the harness, not in the system
    under test. The run's records and journal are kept so it can be judged again."""


class LoadError(EnvironmentError_):
    """The load generator (Locust subprocess) failed to start or died."""


class Interrupted(EnvironmentError_):
    """A run was ended by Ctrl-C or SIGTERM; its faults were reverted on the way out."""


class FaultError(DrillsError):
    """A fault could not be injected."""


class RevertError(FaultError):
    """A fault could not be reverted; the ledger on disk still lists it."""


def show_value(value: object) -> str:
    """A value as an error message quotes it: strings quoted, containers named, others as is
    (``expected a duration, got 'soon'``; ``got a mapping``; ``got nothing (null)``). A long
    string is cut: an error message quotes, it does not echo 4,000 characters back."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else f"{value[:40]!r}... ({len(value)} characters)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "nothing (null)"
    return str(value)
