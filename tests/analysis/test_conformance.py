"""Throttle conformance on synthetic targets whose behaviour we know exactly."""

from __future__ import annotations

import numpy as np
import pytest
from analysis_synth import BASE, every, run, target_decisions

from harness.analysis.conformance import check_conformance
from harness.limits import LimitsTable, parse_limits
from harness.record import Samples

TABLE = LimitsTable()
DEVICES = [f"dev-{i}" for i in range(4)]


def probe(threshold: int, model: str = "sliding", interval: float = 0.31, duration: float = 40.0) -> Samples:
    """Each device sends every ``interval`` s (3.2/s, above 2/s; no call lands exactly one window
    after another), staggered by 0.05 s."""
    return run({d: every(interval, duration, start=0.05 * i) for i, d in enumerate(DEVICES)}, threshold,
               model=model)


def kinds(result) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return result.findings_by_kind


def test_correct_target_has_no_findings() -> None:
    result = check_conformance(probe(30), TABLE, "probe")
    assert result.findings_total == 0
    (report,) = result.limits
    assert (report.limit, report.keys, report.keys_throttled) == ("device.sendState", 4, 4)
    assert report.max_accepted_in_window == 30
    assert report.false_throttles == report.missed_throttles == 0


def test_target_throttling_at_25_gives_false_throttles() -> None:
    result = check_conformance(probe(25), TABLE, "probe")
    assert kinds(result).get("false_throttle", 0) > 0
    assert "missed_throttle" not in kinds(result)
    first = result.findings[0]
    assert (first.kind, first.limit, first.op, first.count) == ("false_throttle", "device.sendState",
                                                                "device.sendState", 30)
    assert first.key == "dev-0" and first.in_window == 25  # the 26th call of dev-0 (t = 7.75 s) is refused
    assert first.time == pytest.approx(BASE + 25 * 0.31 + 0.005)
    assert result.limits[0].probe["onset_count"] == {"min": 25.0, "median": 25.0, "max": 25.0}


def test_target_accepting_35_gives_missed_throttles() -> None:
    result = check_conformance(probe(35), TABLE, "probe")
    assert kinds(result).get("missed_throttle", 0) > 0
    assert "false_throttle" not in kinds(result)
    # calls 31..35 of each device's first window: 5 per device at least
    assert result.limits[0].missed_throttles >= 5 * len(DEVICES)
    assert result.limits[0].max_accepted_in_window == 35
    first = result.findings[0]
    assert first.kind == "missed_throttle" and first.in_window == 30


def test_probe_onset_and_recovery_match_the_target() -> None:
    samples = probe(30, duration=30.0)
    result = check_conformance(samples, TABLE, "probe")
    p = result.limits[0].probe
    assert p["onset_count"]["median"] == 30
    # independently: device 0 sends at 0.31 k; call 30 (t = 9.3) is the first refused and the next
    # accepted is the first after the oldest (t = 0) leaves the 15 s window: call 49, t = 15.19
    times = every(0.31, 30.0)
    ok = target_decisions([t + 0.005 for t in times], 30, 15.0)
    first_refused = ok.index(False)
    next_ok = ok.index(True, first_refused)
    assert (first_refused, next_ok) == (30, 49)
    assert p["recovery_s"]["median"] == pytest.approx(times[49] - times[30], abs=1e-6)
    assert p["recovered_keys"] == len(DEVICES)


def test_respect_mode_429_is_a_finding() -> None:
    # 2.2/s against a correct target: the 429s are justified by the window, but the pacer promised none
    samples = run({"dev-a": every(1 / 2.2, 30.0)}, 30)
    assert (samples.status == 429).any()
    respect = check_conformance(samples, TABLE, "respect")
    assert kinds(respect) == {"throttled_while_respecting": int((samples.status == 429).sum())}
    f = respect.findings[0]
    assert (f.key, f.limit) == ("dev-a", "device.sendState") and f.in_window >= 29
    assert check_conformance(samples, TABLE, "probe").findings_total == 0


def test_lone_429_in_empty_window_is_false_even_when_respecting() -> None:
    samples = run({"dev-a": every(1.0, 20.0)}, 30)
    samples.status[10] = 429
    result = check_conformance(samples, TABLE, "respect")
    assert kinds(result) == {"false_throttle": 1}
    assert result.findings[0].time == pytest.approx(samples.sent[10] + 0.005)
    assert result.findings[0].in_window == 10


def test_429_without_documented_limit_is_undocumented() -> None:
    samples = run({"app": every(1.0, 5.0)}, 30, op="devices.get")
    samples.status[2] = 429
    result = check_conformance(samples, TABLE, "off")
    assert kinds(result) == {"undocumented_throttle": 1}
    assert result.limits == []


def test_timing_noise_within_the_bounds_is_not_a_finding() -> None:
    # exactly 2/s: with latency jitter some sliding windows may hold 31 calls; a correct target may
    # accept or refuse those boundary calls, and no arrival order proves either wrong
    rng = np.random.default_rng(7)
    samples = run({"dev-a": every(0.5, 60.0)}, 1000)  # target never throttles
    samples.latency[:] = rng.uniform(0.005, 0.03, len(samples))
    result = check_conformance(samples, TABLE, "respect")
    assert result.findings_total == 0


def test_shared_counter_limit_counts_all_its_operations() -> None:
    table = parse_limits({"device_counter": "shared"})
    a = run({"d": every(0.6, 15.0)}, 1000, op="device.sendState")  # 25 calls
    b = run({"d": every(0.6, 15.0, start=0.3)}, 1000, op="device.sendCommand")  # 25 more, interleaved
    both = Samples(*(np.concatenate([getattr(a, c), getattr(b, c)]) for c in
                     ("op", "key", "planned", "sent", "latency", "status", "nbytes", "error")),
                   op_names=("device.sendState", "device.sendCommand"), key_names=("d",))
    both.op[len(a):] = 1
    result = check_conformance(both, table, "probe")
    (report,) = result.limits
    assert report.limit == "device.messages" and report.calls == 50
    assert report.missed_throttles == 20  # calls 31..50 in one 15 s window
    assert check_conformance(both, TABLE, "probe").findings_total == 0  # separate counters: 25 each


def test_key_kind_mismatch_is_not_checked() -> None:
    samples = run({"dev-a": every(0.1, 5.0)}, 1000, op="events.post")
    result = check_conformance(samples, TABLE, "probe", key_kinds={"events.post": "device"})
    (report,) = result.limits
    assert not report.checked and "application" in report.reason
    assert result.findings_total == 0


@pytest.mark.parametrize("model", ["sliding", "fixed", "token_bucket"])
def test_window_model_is_inferred_from_a_burst(model: str) -> None:
    # 10/s for 40 s, keys starting 3.7 s apart: the three models refuse different calls. Under
    # steady pressure a sliding log repeats every window from the key's first call, which one
    # key alone cannot tell from a fixed window; fixed windows share one phase across keys.
    keys = {d: every(0.1, 40.0, start=5.0 + 3.7 * i) for i, d in enumerate(DEVICES)}
    samples = run(keys, 30, model=model)
    result = check_conformance(samples, LimitsTable(window_model=model), "probe")  # type: ignore[arg-type]
    inference = result.limits[0].inference
    assert inference["inferred"] == model, inference
    assert result.findings_total == 0


def test_steady_probe_cannot_tell_models_apart_or_says_so() -> None:
    result = check_conformance(probe(30, duration=20.0), TABLE, "probe")
    inference = result.limits[0].inference
    assert "sliding" in inference["consistent"] or inference["inferred"] == "sliding"


def test_inference_uses_the_observed_count() -> None:
    keys = {d: every(0.1, 40.0, start=5.0 + 3.7 * i) for i, d in enumerate(DEVICES)}
    result = check_conformance(run(keys, 25), TABLE, "probe")
    inference = result.limits[0].inference
    assert 25 in inference["counts_tried"] and 30 in inference["counts_tried"]
    assert (inference["count"], inference["inferred"]) == (25, "sliding"), inference
    assert result.findings_by_kind.get("false_throttle", 0) > 0  # against the documented 30
