"""Pacing: the ledger keeps every window within limits, timelines stay open-loop.

Everything runs on times passed in as numbers (no clock, no sleeping), so 15 s and
5 min windows over hours of simulated traffic take milliseconds. Respect mode is
driven by a small discrete-event simulation on a fake clock (calls admitted at their
actual send time, answers after a latency, target pauses, generator stalls), and
checked by an independent exact count: the most calls whose [send, answer] interval
meets one closed window, i.e. the most decision instants *any* arrival order the
calls' own times allow can put in one window.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest

from harness.limits import LimitsTable, parse_limits
from harness.scenario import parse_scenario
from harness.schedule import (
    EPSILON, NO_TICKET, DeviceTimeline, FleetTimeline, Ledger, class_timelines, fleet_streams, plan_rule,
    spread_phases, stable_seed,
)

TABLE = LimitsTable()
SHARED = TABLE.with_shared_device_counter()
W = 15.0


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


def max_decisions(intervals: list[tuple[float, float]], window: float) -> int:
    """The most calls whose [send, answer] interval meets one closed window [a, a + window]: each
    such call's decision instant may lie in it, so this is the worst case over every arrival order.

    Exact: a window holding the most can be slid right until its start meets an answer time
    (every call it meets still meets it), so only a = some answer time needs checking.
    """
    if not intervals:
        return 0
    s = np.array([a for a, _ in intervals])
    e = np.array([b for _, b in intervals])
    return max(int(((s <= a + window) & (e >= a)).sum()) for a in e)


def dev(d: str) -> dict[str, str]:
    return {"device": d, "application": "app"}


@dataclass
class Sim:
    """Calls admitted at their actual send time on a fake clock, as ``LosantUser.call`` does.

    A call is first considered at its planned time (or when a generator stall ends); the
    ledger admits it (it goes now) or names a time: it waits until then and asks again, or is
    dropped when that is after its ``latest``. Its answer comes ``latency(send)`` later, or
    ``latency`` after a target pause ends if it was sent into one; the generator only notices
    answers outside its own stalls (a stalled generator marks them done when it wakes up).
    """

    ledger: Ledger
    latency: Callable[[float], float] = lambda s: 0.001
    pauses: list[tuple[float, float]] = field(default_factory=list)  # the target holds calls
    stalls: list[tuple[float, float]] = field(default_factory=list)  # the generator runs nothing
    calls: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    first_wait: dict[int, float] = field(default_factory=dict)
    dropped: int = 0
    _events: list = field(default_factory=list)
    _seq: int = 0

    def plan(self, t: float, op: str, keys: dict[str, str], latest: float = math.inf) -> None:
        self._push(t, ("consider", op, keys, latest, self._seq))

    def _push(self, t: float, event: tuple) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, event))

    def _awake(self, t: float) -> float:
        for a, b in self.stalls:
            if a <= t < b:
                return b
        return t

    def _answer(self, s: float) -> float:
        start = s
        for a, b in self.pauses:
            if a <= s < b:
                start = b
        return start + self.latency(s)

    def run(self) -> Sim:
        while self._events:
            t, _, event = heapq.heappop(self._events)
            woke = self._awake(t)
            if woke != t:  # the generator is stalled: it acts when it wakes up
                self._push(woke, event)
                continue
            if event[0] == "end":
                _, ticket, s, e = event
                self.ledger.done(ticket, t)  # noticed at t >= the true answer time e
                continue
            _, op, keys, latest, ident = event
            got = self.ledger.admit(op, keys, t)
            if isinstance(got, float):
                assert got > t
                self.first_wait.setdefault(ident, got)
                if got > latest:
                    self.dropped += 1
                else:
                    self._push(got, event)
                continue
            e = self._answer(t)
            for rule in self.ledger.rules(op):
                self.calls[(rule.limit, keys[rule.key])].append((t, e))
            self._push(e, ("end", got, t, e))
        return self

    def worst(self, window: float = W) -> dict[tuple[str, str], int]:
        return {k: max_decisions(v, window) for k, v in self.calls.items()}


def devices_at(sim: Sim, n: int, interval: float, until: float, op: str = "device.sendState",
               start: float = 0.0) -> None:
    """n devices each planning a send every ``interval`` (phases spread), slot = one interval."""
    for i in range(n):
        k = 0
        while (t := start + i * interval / n + k * interval) < until:
            sim.plan(t, op, dev(f"d{i}"), latest=t + interval)
            k += 1


# -- the exact checker itself ------------------------------------------------------------------

def test_max_decisions_agrees_with_a_dense_brute_force() -> None:
    rng = random.Random(3)
    for _ in range(200):
        calls = []
        for _ in range(rng.randint(1, 12)):
            s = rng.uniform(0, 10)
            calls.append((s, s + rng.choice([0.0, rng.uniform(0, 4)])))
        starts = {a for s, e in calls for a in (s, e, s - 2.0, e - 2.0)}
        brute = max(sum(1 for s, e in calls if s <= a + 2.0 and e >= a) for a in starts)
        assert max_decisions(calls, 2.0) == brute
    # two calls whose intervals are 2 s + a hair apart never share a 2 s window, under any order
    assert max_decisions([(0.0, 1.0), (3.0 + 1e-6, 3.5)], 2.0) == 1
    assert max_decisions([(0.0, 1.0), (3.0, 3.5)], 2.0) == 2


# -- respect: admission at the actual send time ------------------------------------------------

def test_admission_rule_counts_calls_in_flight_and_answered_within_a_window() -> None:
    ledger = Ledger(TABLE, "respect")
    tickets = [ledger.admit("device.sendState", dev("a"), 0.0) for _ in range(30)]
    assert all(isinstance(t, tuple) and len(t) == 1 for t in tickets)  # the documented count, no margin
    # the 31st: all 30 in flight, so not before a window from now (a lower bound: ask again then)
    assert ledger.admit("device.sendState", dev("a"), 0.0) == pytest.approx(W + EPSILON)
    for k, ticket in enumerate(tickets):
        ledger.done(ticket, 0.5 + k * 0.1)  # answers spread over 0.5 .. 3.4 s
    # now exact: the first answer leaves the window W + EPSILON after it arrived
    assert ledger.admit("device.sendState", dev("a"), 1.0) == pytest.approx(0.5 + W + EPSILON)
    assert ledger.admit("device.sendState", dev("a"), 0.5 + W) == pytest.approx(0.5 + W + EPSILON)
    assert isinstance(ledger.admit("device.sendState", dev("a"), 0.5 + W + EPSILON), tuple)
    # one slot freed, one taken: the next waits for the second answer
    assert ledger.admit("device.sendState", dev("a"), 0.5 + W + EPSILON) == pytest.approx(0.6 + W + EPSILON)
    assert isinstance(ledger.admit("device.sendState", dev("b"), 1.0), tuple)  # b has its own budget


def test_a_call_in_flight_blocks_its_slot_until_a_window_after_its_answer() -> None:
    table = parse_limits({"limits": {"device.sendState": {"count": 2, "window": 10.0}}})
    ledger = Ledger(table, "respect")
    slow = ledger.admit("device.sendState", dev("a"), 0.0)
    fast = ledger.admit("device.sendState", dev("a"), 0.0)
    ledger.done(fast, 0.1)  # type: ignore[arg-type]
    assert ledger.admit("device.sendState", dev("a"), 5.0) == pytest.approx(10.1 + EPSILON)
    third = ledger.admit("device.sendState", dev("a"), 10.1 + EPSILON)  # fast has left; slow still counts
    assert isinstance(third, tuple)
    # two in flight: not before a window from now, whenever they end (a lower bound)
    assert ledger.admit("device.sendState", dev("a"), 12.0) == pytest.approx(22.0 + EPSILON)
    ledger.done(third, 10.2)
    ledger.done(slow, 30.0)  # type: ignore[arg-type]  # answered after a long pause of the target
    assert isinstance(ledger.admit("device.sendState", dev("a"), 31.0), tuple)  # third left at 20.2
    assert ledger.admit("device.sendState", dev("a"), 31.0) == pytest.approx(40.0 + EPSILON)  # slow counts to 40


@pytest.mark.parametrize("margin,allowed", [(0.0, 30), (0.025, 29), (0.1, 27), (0.5, 15)])
def test_devices_asking_for_more_than_the_limit_stay_within_it(margin: float, allowed: int) -> None:
    """20 devices asking 4/s (twice the limit) for 60 s: at most ``allowed`` decisions in any window."""
    sim = Sim(Ledger(TABLE, "respect", margin), latency=lambda s: 0.002)
    devices_at(sim, 20, 0.25, 60.0)
    worst = sim.run().worst()
    assert len(worst) == 20 and set(worst.values()) == {allowed}  # filled to the allowance, never above
    assert sim.dropped > 0


def test_steady_rate_is_at_least_98_percent_of_the_documented_rate_at_1ms_latency() -> None:
    """C per (W + latency): 30 per 15.0011 s, 99.99 % of the documented 2/s."""
    sim = Sim(Ledger(TABLE, "respect"), latency=lambda s: 0.001)
    devices_at(sim, 3, 0.25, 300.0)
    sim.run()
    for key, calls in sim.calls.items():
        sends = np.array(sorted(s for s, _ in calls))
        steady = sends[(sends >= 60.0) & (sends < 285.0)]
        rate = len(steady) / (285.0 - 60.0)
        assert rate >= 0.98 * 30 / W, (key, rate)
        # and per aligned 15 s window: 30 each, as a target counting fixed windows sees it
        per_window = np.bincount((steady // W).astype(int))[4:19]
        assert per_window.min() >= 29 and per_window.max() <= 30
    assert max(sim.worst().values()) == 30


@pytest.mark.parametrize("pause", [2.0, 10.0])
def test_a_target_pause_never_puts_more_than_the_count_in_a_window(pause: float) -> None:
    """The bug this design fixes: planned reservations sent a paused backlog bunched (~70 429s in
    50 s with a 2 s pause). Here no window can hold more than 30 decisions, whatever order the
    target decided the calls in, through a 2 s or 10 s pause, with the devices at twice the limit."""
    rng = random.Random(5)
    sim = Sim(Ledger(TABLE, "respect"), latency=lambda s: rng.uniform(0.0005, 0.02), pauses=[(20.0, 20.0 + pause)])
    devices_at(sim, 10, 0.25, 60.0)
    sim.run()
    assert set(sim.worst().values()) == {30}
    held = [(s, e) for calls in sim.calls.values() for s, e in calls if 20.0 <= s < 20.0 + pause]
    assert held and max(e - s for s, e in held) > pause * 0.9  # calls really were held by the pause


@pytest.mark.parametrize("stall", [2.0, 10.0])
def test_a_stalled_generator_re_spaces_its_backlog_on_actual_time(stall: float) -> None:
    """The generator itself stops (a blocking pause in the harness): answers are noticed late, the
    backlog of planned sends is considered all at once when it wakes, and still no window overfills."""
    sim = Sim(Ledger(TABLE, "respect"), latency=lambda s: 0.001, stalls=[(22.0, 22.0 + stall)])
    devices_at(sim, 10, 0.25, 60.0)
    sim.run()
    assert set(sim.worst().values()) == {30}


def test_concurrent_calls_of_one_key_with_slow_random_answers() -> None:
    """Calls of one device overlap (answers take up to 3 s, some much longer): still <= 30 per window."""
    rng = random.Random(8)
    sim = Sim(Ledger(TABLE, "respect"),
              latency=lambda s: rng.choice([rng.uniform(0.001, 3.0), rng.uniform(0.001, 3.0), rng.uniform(5, 20)]),
              pauses=[(40.0, 42.0)], stalls=[(70.0, 71.5)])
    for k in range(480):  # one device at 8/s from several greenlets, no slot: they wait as long as needed
        sim.plan(k * 0.125, "device.sendState", dev("a"))
    sim.run()
    (worst,) = sim.worst().values()
    assert worst == 30
    intervals = sim.calls[("device.sendState", "a")]
    s, e = np.array(intervals).T
    overlap = max(int(((s <= t) & (t < e)).sum()) for t in s)
    assert overlap > 5  # calls really were in flight together


def test_random_traffic_over_shared_and_application_limits_with_pauses_and_stalls() -> None:
    """Shared device counter (state + commands + connection status), the per-application event limit,
    random latencies, pauses and stalls, callers in any order: no key's window ever holds more."""
    for seed in range(4):
        rng = random.Random(seed)
        sim = Sim(Ledger(SHARED, "respect"), latency=lambda s: rng.expovariate(1 / 0.05),
                  pauses=[(rng.uniform(0, 100), 0.0)], stalls=[(rng.uniform(0, 100), 0.0)])
        sim.pauses = [(a, a + rng.choice([2.0, 10.0])) for a, _ in sim.pauses]
        sim.stalls = [(a, a + rng.uniform(0.5, 3.0)) for a, _ in sim.stalls]
        now = 0.0
        for _ in range(3000):
            now += rng.expovariate(25.0)
            op = rng.choice(["device.sendState", "device.sendCommand", "device.setConnectionStatus", "events.post"])
            latest = now + rng.choice([0.25, 1.0, math.inf])
            sim.plan(now, op, dev(rng.choice("abc")), latest)
        sim.run()
        worst = sim.worst()
        assert worst[("events.post", "app")] <= 15
        assert all(v <= 30 for k, v in worst.items() if k[0] == "device.messages"), worst
        assert max(worst.values()) == 30 and worst[("events.post", "app")] == 15  # the limits were pressed


def test_operator_commands_and_device_traffic_share_one_device_budget() -> None:
    sim = Sim(Ledger(SHARED, "respect"))
    for k in range(120):  # device a reports at 2/s while an operator commands it at 2/s
        sim.plan(k * 0.5, "device.sendState", dev("a"), k * 0.5 + 0.5)
        sim.plan(k * 0.5 + 0.1, "device.sendCommand", dev("a"))
        sim.plan(k * 0.5, "device.sendState", dev("b"), k * 0.5 + 0.5)
    worst = sim.run().worst()
    assert worst == {("device.messages", "a"): 30, ("device.messages", "b"): 30}
    b_sends = sorted(s for s, _ in sim.calls[("device.messages", "b")])
    assert b_sends[:30] == [k * 0.5 for k in range(30)]  # b has its own budget: on plan until it is full


def test_commands_from_several_operators_to_one_device_share_its_budget() -> None:
    ledger = Ledger(TABLE, "respect")
    got = [ledger.admit("device.sendCommand", dev("a"), 0.1 * k) for k in range(40)]
    assert sum(isinstance(g, tuple) for g in got) == 30
    # separate counters: the device's own state reports are not slowed by the commands
    assert isinstance(ledger.admit("device.sendState", dev("a"), 1.0), tuple)


def test_a_drop_records_nothing_and_a_ticket_is_released_by_done() -> None:
    ledger = Ledger(TABLE, "respect")
    tickets = [ledger.admit("device.sendState", dev("a"), 0.0) for _ in range(30)]
    assert len(ledger) == 30 and ledger.in_flight("device.sendState", dev("a")) == 30
    assert isinstance(ledger.admit("device.sendState", dev("a"), 0.1), float)
    assert len(ledger) == 30  # asking records nothing
    for t in tickets:
        ledger.done(t, 0.2)
    assert ledger.in_flight("device.sendState", dev("a")) == 0 and len(ledger) == 30
    ledger.admit("device.sendState", dev("z"), 40.0)  # time moves on: the releases are past
    ledger.prune()
    assert ("device.sendState", "a") not in ledger._entries


def test_operations_without_limits_cost_nothing_until_a_429() -> None:
    ledger = Ledger(TABLE, "respect")
    assert [ledger.admit("device.getCommand", dev("a"), 1.0) for _ in range(50)] == [NO_TICKET] * 50
    assert len(ledger) == 0 and not ledger._entries
    ledger.on_throttled("device.getCommand", dev("a"), 2.0, None)  # no window known: back off 1 s
    assert ledger.admit("device.getCommand", dev("a"), 2.5) == 3.0
    assert ledger.admit("device.getCommand", dev("a"), 3.0) == NO_TICKET  # nothing to count: no ticket
    assert ledger.admit("device.getCommand", dev("b"), 2.5) == NO_TICKET


def test_missing_key_kind_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="limited per device"):
        Ledger(TABLE).admit("device.sendState", {"application": "app"}, 0.0)


def test_five_minute_window_of_one_call() -> None:
    """1 call per 300 s (embedded export): the next goes 300 s after the previous answer."""
    sim = Sim(Ledger(TABLE, "respect"), latency=lambda s: 2.0)
    for k in range(360):
        sim.plan(k * 10.0, "embeddedDeployments.export", {"application": "app"}, k * 10.0 + 10.0)
    sim.run()
    (calls,) = sim.calls.values()
    sends = sorted(s for s, _ in calls)
    assert max_decisions(calls, 300.0) == 1
    assert min(b - a for a, b in zip(sends, sends[1:])) >= 302.0
    # with a margin the span stretches: 300 / 0.975 after the answer
    ledger = Ledger(TABLE, "respect", margin=0.025)
    ledger.done(ledger.admit("embeddedDeployments.export", {"application": "app"}, 0.0), 1.0)  # type: ignore[arg-type]
    assert ledger.admit("embeddedDeployments.export", {"application": "app"}, 2.0) == pytest.approx(
        1.0 + 300 / 0.975 + EPSILON)


def test_custom_five_minute_window_of_100_calls() -> None:
    table = parse_limits({"limits": {"device.sendState": {"count": 100, "window": 300}}})
    sim = Sim(Ledger(table, "respect"), latency=lambda s: 0.01)
    devices_at(sim, 1, 2.0, 1800.0)  # 0.5/s asked, 0.33/s allowed
    (worst,) = sim.run().worst(300.0).values()
    assert worst == 100
    (calls,) = sim.calls.values()
    assert len(calls) >= 0.98 * 100 * 1800 / 300.0 - 100  # it keeps moving at the limit


# -- throttled answers -------------------------------------------------------------------------

def test_retry_after_is_honoured() -> None:
    ledger = Ledger(TABLE, "respect")
    ledger.done(ledger.admit("device.sendState", dev("a"), 10.0), 10.0)  # type: ignore[arg-type]
    end = ledger.on_throttled("device.sendState", dev("a"), at=10.0, retry_after=7.5)
    assert end == 17.5
    assert ledger.admit("device.sendState", dev("a"), 11.0) == 17.5
    assert isinstance(ledger.admit("device.sendState", dev("a"), 17.5), tuple)
    assert isinstance(ledger.admit("device.sendState", dev("b"), 11.0), tuple)  # other devices unaffected


def test_without_retry_after_wait_for_the_oldest_call_to_leave_the_window() -> None:
    ledger = Ledger(TABLE, "respect")
    for t in (3.0, 4.0, 5.0):
        ledger.done(ledger.admit("device.sendState", dev("a"), t), t + 0.01)  # type: ignore[arg-type]
    end = ledger.on_throttled("device.sendState", dev("a"), at=5.01, retry_after=None)
    assert end == pytest.approx(18.01 + EPSILON)
    assert ledger.admit("device.sendState", dev("a"), 6.0) == pytest.approx(18.01 + EPSILON)
    # an unexpected 429 on an operation without a documented limit still backs off
    assert Ledger(TABLE).on_throttled("devices.get", {"application": "app"}, 1.0, 2.0) == 3.0


def test_off_mode_sends_on_plan_and_ignores_429s() -> None:
    ledger = Ledger(TABLE, "off")
    assert [ledger.admit("device.sendState", dev("a"), 0.0) for _ in range(100)] == [NO_TICKET] * 100
    assert [ledger.reserve("device.sendState", dev("a"), 0.0) for _ in range(100)] == [0.0] * 100
    assert ledger.on_throttled("device.sendState", dev("a"), 1.0, 30.0) == 1.0
    assert ledger.admit("device.sendState", dev("a"), 2.0) == NO_TICKET


# -- probe -------------------------------------------------------------------------------------

@pytest.mark.parametrize("limit,op,keys", [
    ("device.sendState", "device.sendState", dev("a")),
    ("events.post", "events.post", dev("a")),
])
def test_probe_puts_the_count_plus_first_call_inside_the_window(limit: str, op: str, keys: dict[str, str]) -> None:
    lim = TABLE.by_name(limit)
    ledger = Ledger(TABLE, "probe", 0.0, {limit}, 1.5)
    times = [ledger.reserve(op, keys, 0.0) for _ in range(3 * lim.count)]
    spacing = [b - a for a, b in zip(times, times[1:])]
    assert min(spacing) == pytest.approx(lim.window / (lim.count * 1.5), abs=1e-3)  # 1.5 x the rate, evenly
    assert times[lim.count] - times[0] < lim.window           # call count+1 lands inside the first window
    assert max_in_window(times, lim.window) > lim.count        # so the target must refuse something
    assert max_in_window(times[: lim.count], lim.window) <= lim.count  # and nothing before it was over
    assert ledger.admit(op, keys, 0.0) == NO_TICKET             # the probed limit is not also admitted


def test_probe_leaves_other_limits_respected() -> None:
    ledger = Ledger(TABLE, "probe", 0.0, {"device.sendState"}, 1.5)
    assert ledger.reserve("device.sendCommand", dev("a"), 5.0) == 5.0  # not probed: not planned ...
    sim = Sim(ledger)
    for k in range(90):
        sim.plan(0.1 * k, "device.sendCommand", dev("a"))
    assert sim.run().worst() == {("device.sendCommand", "a"): 30}  # ... but admitted within its limit


def test_probe_accepts_an_operation_name_for_a_shared_counter() -> None:
    ledger = Ledger(SHARED, "probe", 0.0, {"device.sendState"}, 1.5)
    (rule,) = ledger.rules("device.sendState")
    assert rule.limit == "device.messages" and rule.probing


def test_probe_try_reserve_drops_instead_of_queueing() -> None:
    ledger = Ledger(TABLE, "probe", 0.0, {"device.sendState"}, 1.5)
    assert ledger.reserve("device.sendState", dev("a"), 0.0) == 0.0
    assert ledger.try_reserve("device.sendState", dev("a"), 0.1, latest=0.2) is None
    assert len(ledger) == 1  # nothing recorded
    assert ledger.try_reserve("device.sendState", dev("a"), 0.1, latest=1.0) == pytest.approx(1 / 3 + EPSILON, abs=1e-6)


def test_probe_planning_matches_a_slow_exact_reference() -> None:
    """Earliest feasible planned time by brute force: try desired, then every s + span + EPSILON in order."""
    table = parse_limits({"limits": {"device.sendState": {"count": 5, "window": 10.0}}})
    ledger = Ledger(table, "probe", 0.0, {"device.sendState"}, 1.25)
    span = 10.0 / (5 * 1.25)
    rng = random.Random(4)
    recorded: list[float] = []

    def feasible(t: float) -> bool:
        return max_in_window(recorded + [t], span + EPSILON / 2) <= 1

    for k in range(250):
        desired = k * 1.2 + rng.uniform(-1.5, 1.5)  # over the rate on average, out of order (within 2 spans)
        candidates = sorted({desired} | {s + span + EPSILON for s in recorded if s + span + EPSILON > desired})
        expected = next(c for c in candidates if feasible(c))
        assert ledger.reserve("device.sendState", dev("a"), desired) == expected
        recorded.append(expected)


# -- long runs, memory -------------------------------------------------------------------------

def test_memory_stays_bounded_over_long_runs() -> None:
    ledger = Ledger(TABLE, "respect")
    for k in range(40_000):  # 100 devices for ~3 simulated hours, answers after 1 ms
        t = k * 0.25
        got = ledger.admit("device.sendState", dev(f"d{k % 100}"), t)
        if isinstance(got, tuple):
            ledger.done(got, t + 0.001)
    assert len(ledger) <= 100 * 30


def test_a_large_fleet_is_pruned_a_little_at_a_time() -> None:
    """20,000 devices report once, then only one keeps going: within a few passes of the
    incremental sweep every silent device's entry is gone, and no single admission
    walks them all (each looks at a handful)."""
    ledger = Ledger(TABLE, "respect")
    for k in range(20_000):
        ledger.done(ledger.admit("device.sendState", dev(f"d{k}"), k * 0.0005), k * 0.0005 + 0.001)  # type: ignore[arg-type]
    assert len(ledger._entries) == 20_000
    t = 40.0
    for _ in range(20_000 // 16 * 3):  # three passes' worth of admissions, well past a window
        t += 0.6
        got = ledger.admit("device.sendState", dev("busy"), t)
        if isinstance(got, tuple):
            ledger.done(got, t + 0.001)
    assert {value for _, value in ledger._entries} == {"busy"}
    assert len(ledger) <= 30


def test_rule_derivation() -> None:
    rule = plan_rule(TABLE.by_name("device.sendState"), "respect", 0.0, False, 1.5)
    assert (rule.allowed, rule.span) == (30, 15.0)
    assert plan_rule(TABLE.by_name("device.sendState"), "respect", 0.025, False, 1.5).allowed == 29
    probe = plan_rule(TABLE.by_name("device.sendState"), "probe", 0.0, True, 1.5)
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
    fleet = FleetTimeline.for_devices(25, 0.4, 0.1, start=0.0, seed=2, until=45.0)
    sim = Sim(Ledger(TABLE, "respect"), latency=lambda s: 0.003)
    planned = 0
    while (nxt := fleet.next_time()) is not None:
        for due in fleet.pop_due(nxt):
            sim.plan(due.planned, "device.sendState", dev(str(due.device_index)), due.planned + 0.4)
            planned += 1
    sim.run()
    assert len(sim.calls) == 25
    assert set(sim.worst().values()) == {30}
    sent = sum(len(v) for v in sim.calls.values())
    assert sent + sim.dropped == planned  # every planned send either went or was counted as dropped
    assert sent >= 0.98 * 25 * 30 * (45.0 - 0.4) / 15.0 - 25  # ~3 windows at 30 each per device
