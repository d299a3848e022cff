"""ClipStream's knobs as the drill file gives them (``stack.config``), validated.

Each knob left out keeps the service's own default; `drills.targets.clipstream.target.knob_env`
turns them into ``CLIPSTREAM_*`` environment variables.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import field_validator, model_validator

from drills.duration import PositiveDuration
from drills.spec import KnobsModel
from drills.spec._base import doc_field as _f
from drills.spec._base import invalid, unknown
from drills.targets.clipstream.target import BUGS

_FSYNC = re.compile(r"^(always|never|interval:[1-9]\d*)$")


class ClipStreamConfig(KnobsModel):
    """ClipStream knobs; a knob left out keeps the service's own default."""

    replication: Literal["sync", "async"] | None = _f(
        None, typ="sync|async", doc="sync: the primary acks after the replica has the write; "
        "async: the replica pulls (acked writes can be lost on failover).")
    fsync: str | None = _f(None, typ="always|never|interval:<ms>",
                          doc="When a store fsyncs its log: every write, never, or every <ms>.")
    detection: PositiveDuration | None = _f(
        None, typ="duration > 0", doc="How long the primary must be unreachable before promotion.")
    pull_interval: PositiveDuration | None = _f(
        None, typ="duration > 0", doc="async replication: how often the replica pulls.")
    check_interval: PositiveDuration | None = _f(
        None, typ="duration > 0", doc="How often the coordinator health-checks each store.")
    check_timeout: PositiveDuration | None = _f(
        None, typ="duration > 0", doc="Timeout of one coordinator health check.")
    write_retry: PositiveDuration | None = _f(
        None, typ="duration > 0", doc="How long the api keeps retrying a write across a failover.")
    request_timeout: PositiveDuration | None = _f(
        None, typ="duration > 0", doc="Timeout of one api -> store request.")
    api_workers: int | None = _f(
        None, typ="1 <= int <= 16", strict=True, ge=1, le=16, doc="api processes sharing its "
        "port (the api is stateless; more serve more requests/s).")
    bugs: tuple[str, ...] = _f(
        (), typ="list of bug names", doc="Known disaster-recovery bugs to plant in ClipStream, "
        "to show a drill catches them; default none (the correct system). A text is read as "
        "comma-separated names.")

    @field_validator("bugs", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @model_validator(mode="after")
    def _valid(self) -> ClipStreamConfig:
        if self.fsync is not None and not _FSYNC.match(self.fsync):
            raise invalid("fsync", f"expected always, never or interval:<ms> (ms an integer "
                                   f">= 1), got {self.fsync!r}")
        first: dict[str, int] = {}
        for i, name in enumerate(self.bugs):
            if name not in BUGS:
                raise invalid(f"bugs[{i}]", unknown("bug", name, list(BUGS), listing="known"))
            if name in first:
                raise invalid(f"bugs[{i}]", f"{name!r} is listed twice (bugs[{first[name]}] "
                                            f"and bugs[{i}])")
            first[name] = i
        return self
