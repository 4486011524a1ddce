"""The throttle judge on synthetic runs whose true arrival order is known (table-driven).

Each case builds calls with known decision instants, lets the reference server in
``judge_synth`` decide them (sliding log, fixed windows or token bucket at some count),
and hands the judge only sent, latency and status. A correct target must draw no
finding, whatever the answers, the target or the generator did to the timing; a wrong
one draws exactly the findings the truth implies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from judge_synth import BASE, Call, decide, steady, to_samples, tokens_at

from harness.analysis.conformance import NOT_TESTED, RULE, check_conformance
from harness.limits import LimitsTable, parse_limits
from harness.record import Samples

PROBE = 0.31  # 3.2 calls/s: above the documented 2/s
RESPECT = 1 / 1.96  # 98 % of the documented rate


def table(model: str = "sliding", count: int = 30) -> LimitsTable:
    return parse_limits({"window_model": model, "limits": {"device.sendState": {"count": count}}})


def slow_answers(calls: list[Call]) -> list[Call]:
    """1 % of the calls answered 120 ms after the server decided (held on the way back)."""
    for n, c in enumerate(calls):
        if n % 100 == 37:
            c.answered += 0.120
    return calls


def target_pause(calls: list[Call], start: float = 20.0, length: float = 2.0) -> list[Call]:
    """The target stops for ``length`` s: every call sent in the span is decided and answered at its end."""
    held = sorted((c for c in calls if start <= c.sent < start + length), key=lambda c: c.sent)
    for n, c in enumerate(held):
        c.decided = start + length + 0.0005 * n
        c.answered = c.decided + 0.003
    return calls


def generator_stall(calls: list[Call], start: float = 20.0, length: float = 3.0) -> list[Call]:
    """The harness blocks for ``length`` s: the calls due in the span go out bunched at its end."""
    late = sorted((c for c in calls if start <= c.sent < start + length), key=lambda c: c.sent)
    for n, c in enumerate(late):
        c.sent = start + length + 0.001 * n
        c.decided, c.answered = c.sent + 0.002, c.sent + 0.005
    return calls


def lost_answers(calls: list[Call]) -> list[Call]:
    """Every 50th answer never arrives (status 0); the server did decide the call."""
    for n, c in enumerate(calls):
        if n % 50 == 11:
            c.lost = True
            c.answered = c.sent + 0.5
    return calls


def served(calls: list[Call], count: int = 30, model: str = "sliding", window: float = 15.0) -> Samples:
    decide(calls, count, window, model)
    return to_samples(calls)


@dataclass
class Case:
    name: str
    calls: Callable[[], list[Call]]
    model: str = "sliding"
    count: int = 30  # the target's true count; documented is always 30


CORRECT = [
    Case("steady probe", lambda: steady(4, PROBE, 60.0)),
    Case("slow answers, probe", lambda: slow_answers(steady(4, PROBE, 60.0))),
    Case("slow answers, respect rate", lambda: slow_answers(steady(4, RESPECT, 60.0))),
    Case("target pause", lambda: target_pause(steady(4, PROBE, 60.0))),
    Case("target pause, respect rate", lambda: target_pause(steady(4, RESPECT, 60.0))),
    Case("generator stall", lambda: generator_stall(steady(4, PROBE, 60.0))),
    Case("generator stall, respect rate", lambda: generator_stall(steady(4, RESPECT, 60.0))),
    Case("answers lost", lambda: lost_answers(steady(4, PROBE, 60.0))),
    Case("fixed window", lambda: slow_answers(steady(4, PROBE, 60.0, stagger=3.7)), model="fixed"),
    Case("fixed window, pause", lambda: target_pause(steady(4, PROBE, 60.0, stagger=3.7), 29.0), model="fixed"),
    Case("token bucket", lambda: slow_answers(steady(4, 0.1, 40.0, stagger=3.7)), model="token_bucket"),
    Case("token bucket, stall", lambda: generator_stall(steady(4, PROBE, 60.0)), model="token_bucket"),
]


@pytest.mark.parametrize("case", CORRECT, ids=lambda c: c.name)
def test_correct_target_is_never_accused(case: Case) -> None:
    samples = served(case.calls(), case.count, case.model)
    result = check_conformance(samples, table(case.model), "probe")
    assert result.findings_total == 0, result.findings[:3]
    assert result.tested
    assert result.rule == RULE


@pytest.mark.parametrize("count", [29, 30, 31])
@pytest.mark.parametrize("shape", [slow_answers, target_pause, generator_stall])
def test_correct_target_at_its_own_count(count: int, shape: Callable[[list[Call]], list[Call]]) -> None:
    samples = served(shape(steady(4, PROBE, 60.0)), count)
    result = check_conformance(samples, table(count=count), "probe")
    assert result.findings_total == 0


def test_respect_run_close_to_the_limit_is_tested_and_clean() -> None:
    samples = served(slow_answers(steady(8, RESPECT, 60.0)))
    assert not (samples.status == 429).any()
    result = check_conformance(samples, table(), "respect")
    assert (result.findings_total, result.tested, result.undecided_total) == (0, True, 0)
    (report,) = result.limits
    # 29.4 per window on average, but 30 evenly spaced sends span 14.8 s: a window holds 30 (29 before the last)
    assert report.tested and report.max_accepted_in_window == 30


def test_respect_run_far_from_the_limit_is_not_tested() -> None:
    samples = served(steady(4, 1.0, 60.0))  # 15 per window, half the limit
    result = check_conformance(samples, table(), "respect")
    assert (result.findings_total, result.tested, result.not_tested_reason) == (0, False, NOT_TESTED)
    assert result.not_tested_reason == "no key came within 10% of a limit"
    # 15 in any window, and the call 15 s earlier may have reached it within its bounds: 16 at most
    assert not result.limits[0].tested and result.limits[0].max_possible_in_window == 16


def test_target_at_25_gives_exactly_its_429s_as_false_throttles() -> None:
    # every 429 of a target at 25 had 25 accepted calls in its true window; the bounds
    # (5 ms wide, calls 0.31 s apart) cannot make that 30, so each one is proven false
    samples = served(slow_answers(steady(4, PROBE, 60.0)), 25)
    result = check_conformance(samples, table(), "probe")
    n429 = int((samples.status == 429).sum())
    assert n429 > 100
    assert result.findings_by_kind == {"false_throttle": n429}
    assert result.findings_total == n429 and result.limits[0].false_throttles == n429
    assert result.undecided_total == 0
    assert {f.in_window for f in result.findings} == {25.0}


def _true_missed(calls: list[Call], count: int, window: float) -> int:
    """Accepted calls whose true window (by decision instant) already held ``count`` accepted ones."""
    out = 0
    for c in calls:
        if not c.ok:
            continue
        before = sum(1 for d in calls if d.key == c.key and d.ok and c.decided - window < d.decided < c.decided)
        out += before >= count
    return out


def test_target_at_35_gives_exactly_the_true_missed_throttles() -> None:
    calls = steady(4, PROBE, 60.0)
    samples = served(calls, 35)
    expected = _true_missed(calls, 30, 15.0)
    assert expected > 20
    result = check_conformance(samples, table(), "probe")
    assert result.findings_by_kind == {"missed_throttle": expected}
    assert result.limits[0].max_accepted_in_window == 35


def test_fixed_target_at_25_gives_exactly_its_429s_as_false_throttles() -> None:
    samples = served(steady(4, PROBE, 60.0, stagger=3.7), 25, "fixed")
    n429 = int((samples.status == 429).sum())
    result = check_conformance(samples, table("fixed"), "probe")
    assert result.findings_by_kind == {"false_throttle": n429}


def test_bucket_target_at_20_gives_exactly_the_provable_false_throttles() -> None:
    calls = steady(4, 0.1, 40.0, stagger=3.7)
    samples = served(calls, 20, "token_bucket")
    expected = 0
    for c in calls:
        if c.ok:
            continue
        accepted = [BASE + d.decided for d in calls if d.key == c.key and d.ok]
        tokens = tokens_at(accepted, BASE + c.decided, 30, 15.0)
        assert not 0.97 < tokens < 1.03  # nothing within the bounds' reach of the edge: the count is exact
        expected += tokens >= 1.0
    assert expected > 20
    result = check_conformance(samples, table("token_bucket"), "probe")
    assert result.findings_by_kind == {"false_throttle": expected}


@pytest.mark.parametrize("count", [29, 31])
def test_inference_finds_the_count_of_a_steady_probe(count: int) -> None:
    samples = served(steady(4, PROBE, 60.0), count)
    inference = check_conformance(samples, table(), "probe").limits[0].inference
    assert inference["count"] == count, inference
    assert "sliding" in inference["consistent"]
    assert inference["window_s"] == 15.0


@pytest.mark.parametrize("model", ["sliding", "fixed", "token_bucket"])
@pytest.mark.parametrize("count", [29, 30, 31])
def test_inference_names_model_and_count_from_bursts(model: str, count: int) -> None:
    # 10/s bursts from keys starting 3.7 s apart: the three models refuse different calls
    calls = slow_answers(steady(4, 0.1, 40.0, stagger=3.7, start=5.0))
    result = check_conformance(served(calls, count, model), table(model), "probe")
    inference = result.limits[0].inference
    assert (inference["model"], inference["count"]) == (model, count), inference
    assert inference["inferred"] == model


def test_inference_says_undetermined_without_a_number_when_nothing_fits() -> None:
    calls = steady(4, PROBE, 60.0)
    decide(calls, 30, 15.0)
    for c in calls[::7]:  # a target that refuses at random: no model at any count explains it
        c.ok = not c.ok
    inference = check_conformance(to_samples(calls), table(), "probe").limits[0].inference
    assert (inference["model"], inference["count"], inference["consistent"]) == ("undetermined", None, [])


def test_undecided_calls_are_counted_not_reported() -> None:
    # a correct target whose answers all take 0.4 s: near the limit, the bounds cannot say
    # which of two calls a window held, so some calls are undecided, none are findings
    calls = steady(4, PROBE, 60.0, decide_after=0.2, answer_after=0.2)
    result = check_conformance(served(calls), table(), "probe")
    report = result.limits[0]
    assert result.findings_total == 0
    assert result.undecided_total == report.undecided_throttles + report.undecided_accepted > 0
    assert result.undecided_by_kind == {"throttled": report.undecided_throttles,
                                        "accepted": report.undecided_accepted}


def test_counts_are_true_when_the_list_is_cut() -> None:
    samples = served(steady(4, PROBE, 60.0), 25)
    result = check_conformance(samples, table(), "probe", max_findings=10)
    assert len(result.findings) == 10
    assert result.findings_total == int((samples.status == 429).sum()) > 10


@pytest.mark.parametrize("shape", [target_pause, generator_stall], ids=["target pause", "generator stall"])
def test_respect_run_429s_after_bunching_are_never_blamed_on_a_correct_target(
        shape: Callable[[list[Call]], list[Call]]) -> None:
    # sends bunched after a pause (here 8 keys at 99% of the rate, 10 s held): a correct target
    # may refuse some; those 429s judge the pacer (throttled while respecting), never the target
    calls = steady(8, 1 / 1.98, 60.0)
    samples = served(shape(calls) if shape is generator_stall else target_pause(calls, 20.0, 10.0))
    result = check_conformance(samples, table(), "respect")
    kinds = result.findings_by_kind
    assert "false_throttle" not in kinds and "missed_throttle" not in kinds
    assert kinds.get("throttled_while_respecting", 0) == int((samples.status == 429).sum())
