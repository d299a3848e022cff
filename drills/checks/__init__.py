"""Checks: pure functions from a drill's records to verdicts (DESIGN.md "Measurements").

Every check takes typed records (`drills.model.Request`, `Op`, `FaultRecord`, `FinalRead`)
and keyword-only parameters, and returns a `drills.model.CheckResult`; no I/O, no clock, no
globals. The engine composes them:

- `check_rto` (per class and fault; `measure_rtos` / `judge_rto` give the `Rto` records,
  carried as the result's evidence)
- `check_acked_writes` (lost / unexpected keys; `LostWrite` evidence) and `check_rpo`
- `check_counters` (bounds of every (key, counter)) and `check_zero_reads` (reads of one key
  and list-read items; degraded reads optionally left out)
- `check_split_brain` (from the history: overlapping acks and vanished reads; from the
  epochs: same-epoch / stale-epoch acks; divergent replicas)
- `check_exposure` (what each fault put at risk; `measure_exposure` gives the `Exposure`)

plus `series_by_class` / `bucket_series` for plots and the live display, and `completions` /
`outcomes` to pair a history's invokes with their completions.

At game-day scale the same checks run on compact forms of the records, with identical
results: the requests as numpy columns (`RequestFrame`, `drills.checks.frame`; RTO and bucket
series vectorised in `drills.checks.columns`) and the history as a `HistoryDigest` built in
one streaming pass that keeps every write and only the reads a check can use
(`DigestBuilder`, `drills.checks.digest`). Every history check takes a list of ops or a
digest; `check_rto` a list of requests or a frame.
"""

from drills.checks.buckets import Bucket, Series, bucket_series, series_by_class
from drills.checks.counters import (
    CounterBound,
    ZeroRead,
    check_counters,
    check_zero_reads,
    counter_bounds,
    zero_reads,
)
from drills.checks.digest import DigestBuilder, HistoryDigest
from drills.checks.exposure import Exposure, FaultExposure, check_exposure, measure_exposure
from drills.checks.frame import FrameBuilder, RequestFrame
from drills.checks.history import INCREMENTS, WRITES, Completion, by_id, completions, outcomes
from drills.checks.params import AnalysisParams
from drills.checks.rto import check_rto, judge_rto, measure_rto, measure_rtos
from drills.checks.splitbrain import (
    EpochConflict,
    OverlappingAck,
    StaleAck,
    VanishedRead,
    check_split_brain,
    divergent_keys,
    overlapping_acks,
    vanished_reads,
    winner_first_ack,
)
from drills.checks.writes import (
    WriteSets,
    check_acked_writes,
    check_rpo,
    lost_writes,
    observed_rpo,
    write_sets,
)
from drills.model import LostWrite, Rto

__all__ = [
    "INCREMENTS",
    "WRITES",
    "AnalysisParams",
    "Bucket",
    "Completion",
    "CounterBound",
    "DigestBuilder",
    "EpochConflict",
    "Exposure",
    "FaultExposure",
    "FrameBuilder",
    "HistoryDigest",
    "LostWrite",
    "OverlappingAck",
    "RequestFrame",
    "Rto",
    "Series",
    "StaleAck",
    "VanishedRead",
    "WriteSets",
    "ZeroRead",
    "bucket_series",
    "by_id",
    "check_acked_writes",
    "check_counters",
    "check_exposure",
    "check_rpo",
    "check_rto",
    "check_split_brain",
    "check_zero_reads",
    "completions",
    "counter_bounds",
    "divergent_keys",
    "judge_rto",
    "lost_writes",
    "measure_exposure",
    "measure_rto",
    "measure_rtos",
    "observed_rpo",
    "outcomes",
    "overlapping_acks",
    "series_by_class",
    "vanished_reads",
    "winner_first_ack",
    "write_sets",
    "zero_reads",
]
