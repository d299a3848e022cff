from drills.schedule import FaultPlan, end_of_faults, plan


def test_flap_windows_get_ids_and_reverts_sort_first():
    actions = plan([
        FaultPlan("power_down", "dc-east", {}, [(10, 12), (12, 14)]),
        FaultPlan("latency", "api->store-east", {"ms": 5}, [(11, 20)]),
    ])
    seq = [(a.at, a.verb, a.window.entry.id) for a in actions]
    assert seq == [
        (10, "inject", "f0#1"), (11, "inject", "f1"), (12, "revert", "f0#1"),
        (12, "inject", "f0#2"), (14, "revert", "f0#2"), (20, "revert", "f1"),
    ]
    assert end_of_faults(actions) == 20
