"""drills: a disaster-recovery drill harness.

Brings up a service stack, drives real load at it, injects faults on a script (power down a zone,
partition a link) and judges the run with numbers: RTO per operation, lost acknowledged writes,
observed RPO, counter bounds and recovery. See README.md and DESIGN.md for the concepts.
"""

__version__ = "0.1.0"
