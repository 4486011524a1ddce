"""Pacing: the ledger keeps every window within limits, timelines stay open-loop.

Everything runs on times passed in as numbers (no clock, no sleeping), so 15 s and
5 min windows over hours of simulated traffic take milliseconds. Window checks use
an independent brute-force count, not the ledger's own arithmetic.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

import pytest

from harness.limits import LimitsTable, parse_limits
from harness.scenario import parse_scenario
from harness.schedule import (
    DeviceTimeline, FleetTimeline, Ledger, class_timelines, fleet_streams, plan_rule, spread_phases, stable_seed,
)

TABLE = LimitsTable()
SHARED = TABLE.with_shared_device_counter()


def max_in_window(times: list[float], window: float) -> int:
    """Most send times in any closed interval of length ``window`` (brute force, O(n·k)).

    A closed interval holding the most points can always be slid so it starts at one of them.
    """
    ts = sorted(times)
    best = 0
    for i, start in enumerate(ts):
        j = i
        while j < len(ts) and ts[j] <= start + window:
            j += 1
        best = max(best, j - i)
    return best


def dev(d: str) -> dict[str, str]:
    return {"device": d, "application": "app"}


# -- respect -----------------------------------------------------------------------------------

@pytest.mark.parametrize("margin,allowed", [(0.025, 29), (0.0, 30), (0.1, 27), (0.5, 15)])
def test_full_rate_for_every_device_never_overfills_a_window(margin: float, allowed: int) -> None:
    """Devices asking for exactly the documented 2/s for 4 windows get at most count·(1−margin) per 15 s."""
    ledger = Ledger(TABLE, "respect", margin)
    sent: dict[str, list[float]] = defaultdict(list)
    devices = [f"d{i}" for i in range(20)]
    for k in range(120):  # 60 s at 0.5 s: four full 15 s windows
        for i, d in enumerate(devices):
            desired = k * 0.5 + i * 0.01
            t = ledger.reserve("device.sendState", dev(d), desired)
            assert t >= desired
            sent[d].append(t)
    for d in devices:
        assert max_in_window(sent[d], 15.0) == allowed  # filled to the allowance, never above
        assert allowed <= 30 * (1 - margin) + 1e-9 or margin == 0.0
        assert sent[d] == sorted(sent[d])


def test_well_under_the_limit_nothing_moves() -> None:
    ledger = Ledger(TABLE, "respect")
    desired = [k * 10.0 + 0.3 for k in range(100)]  # one report per 10 s
    assert [ledger.reserve("device.sendState", dev("a"), t) for t in desired] == desired


def test_random_bursty_traffic_out_of_order_is_always_within_limits() -> None:
    """Many callers, bursts, reservations arriving out of time order: brute force agrees."""
    rng = random.Random(11)
    ledger = Ledger(TABLE, "respect", 0.025)
    sent: dict[tuple[str, str], list[float]] = defaultdict(list)
    now = 0.0
    for _ in range(6000):
        now += rng.expovariate(40.0)
        op = rng.choice(["device.sendState", "device.sendCommand", "events.post"])
        d = rng.choice(["a", "b", "c"])
        desired = max(0.0, now - rng.uniform(0, 2.0))  # callers a little late, in any order
        t = ledger.reserve(op, dev(d), desired)
        assert t >= desired
        sent[(op, "app" if op == "events.post" else d)].append(t)
    for (op, _key), times in sent.items():
        allowed = 14 if op == "events.post" else 29
        assert max_in_window(times, 15.0) <= allowed, op
    assert max(len(v) for v in sent.values()) > 200  # the limits were actually pressed


def test_strict_spacing_rule_holds() -> None:
    """t[i] − t[i−n] > window for every i (the definition the ledger promises)."""
    ledger = Ledger(TABLE, "respect")
    times = [ledger.reserve("device.sendState", dev("a"), 0.0) for _ in range(200)]
    n = 29
    assert all(times[i] - times[i - n] > 15.0 for i in range(n, len(times)))
    assert times[:29] == [0.0] * 29 and times[29] == pytest.approx(15.0, abs=1e-3)


# -- probe -------------------------------------------------------------------------------------

@pytest.mark.parametrize("limit,op,keys", [
    ("device.sendState", "device.sendState", dev("a")),
    ("events.post", "events.post", dev("a")),
])
def test_probe_puts_the_count_plus_first_call_inside_the_window(limit: str, op: str, keys: dict[str, str]) -> None:
    lim = TABLE.by_name(limit)
    ledger = Ledger(TABLE, "probe", 0.025, {limit}, 1.5)
    times = [ledger.reserve(op, keys, 0.0) for _ in range(3 * lim.count)]
    spacing = [b - a for a, b in zip(times, times[1:])]
    assert min(spacing) == pytest.approx(lim.window / (lim.count * 1.5), abs=1e-3)  # 1.5 x the rate, evenly
    assert times[lim.count] - times[0] < lim.window           # call count+1 lands inside the first window
    assert max_in_window(times, lim.window) > lim.count        # so the target must refuse something
    assert max_in_window(times[: lim.count], lim.window) <= lim.count  # and nothing before it was over


def test_probe_leaves_other_limits_respected() -> None:
    ledger = Ledger(TABLE, "probe", 0.025, {"device.sendState"}, 1.5)
    commands = [ledger.reserve("device.sendCommand", dev("a"), 0.0) for _ in range(90)]
    assert max_in_window(commands, 15.0) == 29


def test_probe_accepts_an_operation_name_for_a_shared_counter() -> None:
    ledger = Ledger(SHARED, "probe", 0.025, {"device.sendState"}, 1.5)
    (rule,) = ledger.rules("device.sendState")
    assert rule.limit == "device.messages" and rule.probing


# -- shared budgets ----------------------------------------------------------------------------

def test_operator_commands_and_device_traffic_share_one_device_budget() -> None:
    """Shared device counter: state reports and commands to device a draw on one entry."""
    ledger = Ledger(SHARED, "respect")
    a_times: list[float] = []
    for k in range(60):  # device a reports at 2/s while an operator commands it at 2/s
        a_times.append(ledger.reserve("device.sendState", dev("a"), k * 0.5))
        a_times.append(ledger.reserve("device.sendCommand", dev("a"), k * 0.5 + 0.1))
    b = [ledger.reserve("device.sendState", dev("b"), k * 0.5) for k in range(60)]
    assert max_in_window(a_times, 15.0) == 29
    assert max_in_window(b, 15.0) == 29 and b[:29] == [k * 0.5 for k in range(29)]  # b has its own budget


def test_commands_from_several_operators_to_one_device_share_its_budget() -> None:
    ledger = Ledger(TABLE, "respect")
    times = [ledger.reserve("device.sendCommand", dev("a"), 0.1 * k) for k in range(100)]  # 3 operators, any order
    assert max_in_window(times, 15.0) == 29
    # separate counters: the device's own state reports are not slowed by the commands
    assert ledger.reserve("device.sendState", dev("a"), 1.0) == 1.0


def test_missing_key_kind_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="limited per device"):
        Ledger(TABLE).reserve("device.sendState", {"application": "app"}, 0.0)


# -- throttled answers -------------------------------------------------------------------------

def test_retry_after_is_honoured() -> None:
    ledger = Ledger(TABLE, "respect")
    ledger.reserve("device.sendState", dev("a"), 10.0)
    end = ledger.on_throttled("device.sendState", dev("a"), at=10.0, retry_after=7.5)
    assert end == 17.5
    assert ledger.reserve("device.sendState", dev("a"), 11.0) == 17.5
    assert ledger.reserve("device.sendState", dev("b"), 11.0) == 11.0  # other devices unaffected


def test_without_retry_after_wait_for_the_oldest_call_to_leave_the_window() -> None:
    ledger = Ledger(TABLE, "respect")
    for t in (3.0, 4.0, 5.0):
        ledger.reserve("device.sendState", dev("a"), t)
    end = ledger.on_throttled("device.sendState", dev("a"), at=5.0, retry_after=None)
    assert end == pytest.approx(18.0, abs=1e-3)
    assert ledger.reserve("device.sendState", dev("a"), 6.0) == pytest.approx(18.0, abs=1e-3)
    # an unexpected 429 on an operation without a documented limit still backs off
    assert Ledger(TABLE).on_throttled("devices.get", {"application": "app"}, 1.0, 2.0) == 3.0


def test_off_mode_sends_on_plan_and_ignores_429s() -> None:
    ledger = Ledger(TABLE, "off")
    assert [ledger.reserve("device.sendState", dev("a"), 0.0) for _ in range(100)] == [0.0] * 100
    assert ledger.on_throttled("device.sendState", dev("a"), 1.0, 30.0) == 1.0
    assert ledger.reserve("device.sendState", dev("a"), 2.0) == 2.0


def test_try_reserve_drops_instead_of_queueing() -> None:
    ledger = Ledger(TABLE, "respect")
    for _ in range(29):
        ledger.reserve("device.sendState", dev("a"), 0.0)
    assert ledger.try_reserve("device.sendState", dev("a"), 1.0, latest=2.0) is None
    assert len(ledger) == 29  # nothing recorded
    assert ledger.try_reserve("device.sendState", dev("a"), 1.0, latest=20.0) == pytest.approx(15.0, abs=1e-3)


# -- long windows, memory ----------------------------------------------------------------------

def test_five_minute_window_without_sleeping() -> None:
    """1 call per 300 s (embedded export): the stretched span keeps the rate under 97.5 %."""
    ledger = Ledger(TABLE, "respect")
    times = [ledger.reserve("embeddedDeployments.export", {"application": "app"}, k * 10.0) for k in range(360)]
    assert max_in_window(times, 300.0) == 1
    assert min(b - a for a, b in zip(times, times[1:])) == pytest.approx(300 / 0.975, abs=1e-3)


def test_custom_five_minute_window_of_100_calls() -> None:
    table = parse_limits({"limits": {"device.sendState": {"count": 100, "window": 300}}})
    ledger = Ledger(table, "respect")
    times = [ledger.reserve("device.sendState", dev("a"), k * 2.0) for k in range(900)]  # 0.5/s asked, 0.33/s allowed
    assert max_in_window(times, 300.0) == 97
    assert times[-1] < 900 * 2.0 * 2  # it falls behind, as it must, but keeps moving


def test_memory_stays_bounded_over_long_runs() -> None:
    ledger = Ledger(TABLE, "respect")
    for k in range(40_000):  # 100 devices for ~3 simulated hours
        ledger.reserve("device.sendState", dev(f"d{k % 100}"), k * 0.25)
    assert len(ledger) <= 100 * 2 * 29 + 4096


def test_rule_derivation() -> None:
    rule = plan_rule(TABLE.by_name("device.sendState"), "respect", 0.025, False, 1.5)
    assert (rule.allowed, rule.span) == (29, 15.0)
    probe = plan_rule(TABLE.by_name("device.sendState"), "probe", 0.025, True, 1.5)
    assert (probe.allowed, probe.span) == (1, pytest.approx(1 / 3))


# -- timelines ---------------------------------------------------------------------------------

def test_phases_are_spread_and_uniform() -> None:
    n, interval = 1000, 10.0
    phases = spread_phases(n, interval, seed=5)
    ordered = sorted(phases)
    assert all(0.0 <= p < interval for p in phases)
    assert min(b - a for a, b in zip(ordered, ordered[1:])) >= interval / n - 1e-9  # no two closer than I/n
    assert set(Counter(int(p // 1.0) for p in phases).values()) == {100}  # exactly uniform per tenth
    assert phases != spread_phases(n, interval, seed=6)  # the seed deals them differently
    for k in (5, 10, 50):  # the first k devices (early users during ramp-up) cover the interval too
        first = sorted(phases[:k])
        gaps = [b - a for a, b in zip(first, first[1:])] + [first[0] + interval - first[-1]]
        assert 0.5 * interval / k <= min(gaps) and max(gaps) <= 1.8 * interval / k


def test_device_timeline_jitter_is_bounded_and_reproducible() -> None:
    tl = DeviceTimeline(start=1000.0, interval=10.0, phase=3.0, jitter=0.5, seed=42)
    times = [tl.at(k) for k in range(2000)]
    assert all(1003.0 + 10 * k <= t < 1003.0 + 10 * k + 5.0 for k, t in enumerate(times))
    assert min(b - a for a, b in zip(times, times[1:])) > 10.0 * (1 - 0.5)
    assert abs((times[-1] - times[0]) / 1999 - 10.0) < 0.01  # mean rate kept
    assert times == [DeviceTimeline(1000.0, 10.0, 3.0, 0.5, 42).at(k) for k in range(2000)]
    assert tl.index_at(1500.0) == next(k for k, t in enumerate(times) if t >= 1500.0)
    assert tl.index_at(0.0) == 0


def test_open_loop_plan_ignores_slow_responses() -> None:
    """A simulated user whose calls sometimes take 3 intervals: the plan never moves."""
    tl = DeviceTimeline(start=0.0, interval=1.0, phase=0.25, jitter=0.1, seed=1)
    plan = [tl.at(k) for k in range(100)]
    clock, planned_seen, lateness = 0.0, [], []
    for k in range(100):
        planned = tl.at(k)
        clock = max(clock, planned)         # wait until due (or send at once when late)
        planned_seen.append(planned)
        lateness.append(clock - planned)
        clock += 3.0 if k % 10 == 0 else 0.01  # the response time of this call
    assert planned_seen == plan
    assert max(lateness) > 1.0  # lateness is measured against the unchanged plan


def test_fleet_timeline_pops_in_planned_order_and_stays_open_loop() -> None:
    timelines = [DeviceTimeline(0.0, 10.0, p, 0.1, i) for i, p in enumerate(spread_phases(50, 10.0, 3))]
    polls = [DeviceTimeline(0.0, 30.0, i * 0.6, 0.0, i) if i % 2 else None for i in range(50)]
    fleet = FleetTimeline(fleet_streams(timelines, polls), until=60.0)
    expected = sorted([(tl.at(k), i, "state") for i, tl in enumerate(timelines) for k in range(7) if tl.at(k) < 60.0]
                      + [(tl.at(k), i, "poll_commands") for i, tl in enumerate(polls) if tl for k in range(2)])
    got = []
    now = 0.0
    while fleet.next_time() is not None:
        now += 7.3  # a caller that only wakes every 7.3 s still gets every planned time, unchanged
        got += [tuple(d) for d in fleet.pop_due(now)]
    assert got == expected
    assert fleet.pop_due(1e9) == [] and len(fleet) == 0


def test_fleet_timeline_limit_and_skip() -> None:
    fleet = FleetTimeline.for_devices(10, 1.0, 0.0, start=0.0, seed=1)
    assert len(fleet.pop_due(0.95, limit=3)) == 3
    dropped = fleet.skip_to(10.0)
    assert dropped == 7 + 9 * 10  # the 7 left in second 0, then 9 seconds of 10 devices
    assert fleet.next_time() == pytest.approx(10.0)


def test_slices_of_a_class_spread_together() -> None:
    """Users each driving 10 of 100 devices get the phases the whole class would."""
    whole = FleetTimeline.for_devices(100, 10.0, 0.0, start=0.0, seed=9)
    parts = [FleetTimeline.for_devices(10, 10.0, 0.0, start=0.0, seed=9, first=10 * u, of=100) for u in range(10)]
    assert sorted(d.planned for d in whole.pop_due(9.99)) == sorted(
        d.planned for p in parts for d in p.pop_due(9.99))


def test_class_timelines_cover_every_device() -> None:
    s = parse_scenario({"name": "t", "fleet": {"classes": [
        {"name": "gw", "count": 4, "kind": "gateway", "peripherals": 9, "report_interval": "20s",
         "command_poll_interval": "30s"}]}}, "t.yaml")
    cls = s.fleet.classes[0]
    state = class_timelines(cls, 100.0, s.seed)
    polls = class_timelines(cls, 100.0, s.seed, "poll_commands")
    assert len(state) == 40 and len(polls) == 4
    firsts = sorted(tl.at(0) for tl in state)
    assert firsts[0] >= 100.0 and firsts[-1] < 100.0 + 20.0 * 1.1
    assert min(b - a for a, b in zip(firsts, firsts[1:])) > 0
    assert class_timelines(cls, 100.0, s.seed) == state  # deterministic across processes
    assert stable_seed("t", "gw") == stable_seed("t", "gw") and stable_seed("t", "gw") != stable_seed("t", "gx")


def test_fifteen_second_windows_with_timelines_and_ledger_together() -> None:
    """A fleet whose own schedule is over the limit (0.4 s interval) stays within it, open-loop plan intact."""
    ledger = Ledger(TABLE, "respect")
    fleet = FleetTimeline.for_devices(25, 0.4, 0.1, start=0.0, seed=2, until=45.0)
    sent: dict[int, list[float]] = defaultdict(list)
    while (nxt := fleet.next_time()) is not None:
        for due in fleet.pop_due(nxt):
            sent[due.device_index].append(ledger.reserve("device.sendState", dev(str(due.device_index)), due.planned))
    assert len(sent) == 25
    assert all(max_in_window(v, 15.0) <= 29 for v in sent.values())
    assert math.isclose(len(sent[0]), 45.0 / 0.4, abs_tol=2)  # nothing dropped by the ledger; it only delays


def test_ledger_matches_a_slow_exact_reference() -> None:
    """Earliest feasible time by brute force: try desired, then every s + span + EPSILON in order."""
    from harness.schedule import EPSILON

    table = parse_limits({"limits": {"device.sendState": {"count": 5, "window": 10.0}}})
    ledger = Ledger(table, "respect", margin=0.0)
    rng = random.Random(4)
    recorded: list[float] = []

    def feasible(t: float) -> bool:
        return max_in_window(recorded + [t], 10.0 + EPSILON / 2) <= 5

    for k in range(250):
        desired = k * 0.8 + rng.uniform(-6.0, 6.0)  # over the limit on average, arriving out of order
        candidates = sorted({desired} | {s + 10.0 + EPSILON for s in recorded if s + 10.0 + EPSILON > desired})
        expected = next(c for c in candidates if feasible(c))
        assert ledger.reserve("device.sendState", dev("a"), desired) == expected
        recorded.append(expected)


def test_operations_without_limits_cost_nothing_until_a_429() -> None:
    ledger = Ledger(TABLE, "respect")
    assert [ledger.reserve("device.getCommand", dev("a"), 1.0) for _ in range(50)] == [1.0] * 50
    assert len(ledger) == 0 and not ledger._entries
    ledger.on_throttled("device.getCommand", dev("a"), 2.0, None)  # no window known: back off 1 s
    assert ledger.reserve("device.getCommand", dev("a"), 2.5) == 3.0
    assert ledger.reserve("device.getCommand", dev("b"), 2.5) == 2.5


def test_a_large_fleet_is_pruned_a_little_at_a_time() -> None:
    """20,000 devices report once, then only one keeps going: within a few passes of the
    incremental sweep every silent device's entry is gone, and no single reservation
    walks them all (each looks at a handful)."""
    ledger = Ledger(TABLE, "respect")
    for k in range(20_000):
        ledger.reserve("device.sendState", dev(f"d{k}"), k * 0.001)
    assert len(ledger._entries) == 20_000
    t = 20.0
    for _ in range(20_000 // 16 * 3):  # three passes' worth of reservations, well past two spans
        t += 0.6
        ledger.reserve("device.sendState", dev("busy"), t)
    assert {value for _, value in ledger._entries} == {"busy"}
    assert len(ledger) <= 2 * 29
