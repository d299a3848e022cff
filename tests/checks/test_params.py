"""Analysis parameters: defaults and refusal of meaningless values; the package's public API."""

from __future__ import annotations

import dataclasses

import pytest

import drills.checks
from drills.checks.findings import bounded
from drills.checks.params import AnalysisParams
from drills.errors import SpecError


def test_defaults_are_the_documented_ones_and_frozen():
    p = AnalysisParams()
    assert (p.bucket_s, p.hold_s, p.rho, p.epsilon) == (0.25, 3.0, 0.5, 0.05)
    assert (p.min_bucket_requests, p.stragglers) == (20.0, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.bucket_s = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(("field", "value"), [
    ("bucket_s", 0.0), ("bucket_s", -1.0), ("bucket_s", float("nan")), ("hold_s", 0.0),
    ("rho", 1.5), ("rho", -0.1), ("epsilon", 2.0), ("min_bucket_requests", -1.0),
    ("stragglers", -1), ("stragglers", 1.5), ("stragglers", True),
])
def test_meaningless_values_are_refused_naming_the_field(field, value):
    with pytest.raises(SpecError) as info:
        AnalysisParams(**{field: value})
    assert info.value.field == f"analysis.{field}"


def test_bounded_keeps_order_and_counts_the_rest():
    assert bounded(["a", "b"], limit=2) == ("a", "b")
    assert bounded((str(i) for i in range(5)), limit=2) == ("0", "1", "... 3 more")


def test_public_api_is_exported():
    for name in drills.checks.__all__:
        assert hasattr(drills.checks, name), name
