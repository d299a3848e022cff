"""A drill written as a test, with the drills pytest plugin's fixtures: dc-east loses power for
5 s under load. It starts a real ClipStream (four node processes and a Toxiproxy-compatible
proxy, ``drill_stack``), real Locust load (``drill_load``) and SIGKILLs dc-east for real
(``chaos``); the checks are the engine's own. About 30 s."""

import pytest

from drills.fixtures import (
    assert_counters_exact,
    assert_no_lost_writes,
    assert_recovered,
    final_read,
)


@pytest.mark.slow
@pytest.mark.drill_load(users=8, rate=40)
def test_losing_dc_east_loses_nothing_and_recovers(drill_stack, chaos, drill_load):
    drill_load.wait(5)                                   # baseline
    with chaos.power_down("dc-east") as outage:          # SIGKILL every node of dc-east
        drill_load.wait(5)
    drill_load.wait(8)                                   # settle: recovery is measured here
    drill_load.stop()
    assert_recovered(drill_load.timeline(), outage, within={"upload": 10, "feed": 5})
    final = final_read(drill_stack)
    assert_no_lost_writes(drill_load.history(), final)
    assert_counters_exact(drill_load.history(), final)
