"""The terminal's words and figures: true counts (never a truncated list's length), one vocabulary
(errors = failures other than 429; throttled = 429), "not tested" when nothing came near a limit,
throughput over the steady window, and the same verdict as summary.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.scenario.criteria import parse_criteria
from harness.analysis.criteria import evaluate, passed
from harness.console import PROGRESS_LEGEND, format_summary, progress_line, verdict_word


def summary(**over: Any) -> dict[str, Any]:
    s: dict[str, Any] = {
        "scenario": {"name": "smoke"},
        "run": {"duration_s": 15.2},
        "overall": {"count": 1234, "errors": 4, "throttled": 30, "error_rate": 4 / 1234, "throttled_rate": 30 / 1234,
                    "throughput_rps": 66.0,
                    "response_time_ms": {"p50": 1.5, "p99": 12.0}, "corrected_latency_ms": {"p50": 1.7, "p99": 14.0}},
        "conformance": {"findings_total": 0, "findings_by_kind": {}, "findings": []},
        "integrity": {"checked": False, "reason": "the read-back was not run"},
        "verdicts": [],
        "passed": True,
    }
    s.update(over)
    return s


def text(s: dict[str, Any], tmp_path: Path) -> str:
    return format_summary(s, tmp_path)


# -- the progress line --------------------------------------------------------------------------

def test_progress_line_errors_exclude_429s() -> None:
    # Locust counts 429s as failures: 10 failures of which 7 were 429s are 3 errors and 7 throttled
    line = progress_line(20.0, 60.0, 206, 1500, 10, 7, 29.4, 12.0)
    assert "errors     3" in line and "throttled     7" in line
    assert "errors    10" not in line
    assert progress_line(5.0, None, 1, 10, 2, 5, 1.0, None).count("errors     0") == 1  # never negative
    assert "errors = failed requests other than 429" in PROGRESS_LEGEND
    assert "throttled = answered 429" in PROGRESS_LEGEND


def test_overall_line_uses_the_same_words(tmp_path: Path) -> None:
    out = text(summary(), tmp_path)
    assert ("requests 1,234 in 15.2 s: errors 4 (0.32%, failures other than 429), "
            "throttled 30 (2.43%, answered 429)") in out


# -- true counts ----------------------------------------------------------------------------------

def findings(n: int) -> list[dict[str, Any]]:
    return [{"kind": "false_throttle", "limit": "device.state", "key": f"dev-{i}", "detail": "d"} for i in range(n)]


def test_conformance_counts_are_not_capped(tmp_path: Path) -> None:
    conf = {"findings_total": 1198, "findings_by_kind": {"false_throttle": 1100, "missed_throttle": 98},
            "findings": findings(1000), "undecided_total": 12, "undecided_by_kind": {"throttled": 10, "accepted": 2},
            "tested": True}
    out = text(summary(conformance=conf), tmp_path)
    assert "throttle conformance: 1,198 findings (false_throttle 1,100, missed_throttle 98)" in out
    assert "12 undecided (throttled 10, accepted 2)" in out
    assert "first 5 of 1,198:" in out and out.count("    - false_throttle") == 5
    assert "1000" not in out and "1,000" not in out


def test_conformance_without_undecided_fields(tmp_path: Path) -> None:
    # a summary from before the undecided counts (or a judge that does not produce them)
    conf = {"findings_total": 3, "findings_by_kind": {"false_throttle": 3}, "findings": findings(3)}
    out = text(summary(conformance=conf), tmp_path)
    assert "throttle conformance: 3 findings (false_throttle 3)" in out and "undecided" not in out
    assert "first 3 of 3:" in out
    clean = text(summary(conformance={"findings_total": 0, "findings": [], "undecided_total": 0}), tmp_path)
    assert "throttle conformance: no findings" in clean


def test_integrity_prints_the_statement_or_true_counts(tmp_path: Path) -> None:
    statement = "every accepted state of all 218 devices (840 states) read back: 236 lost"
    integ = {"checked": True, "statement": statement, "lost_writes": 236, "lost": [{}] * 100}
    assert f"  integrity: {statement}" in text(summary(integrity=integ), tmp_path)
    # no statement: the true counts, not the length of the truncated list nor the accepted count as "read back"
    old = {"checked": True, "devices": 218, "accepted": 840, "read_back": 604, "lost_writes": 236, "lost": [{}] * 100}
    out = text(summary(integrity=old), tmp_path)
    assert "integrity: 840 accepted states of 218 devices checked, 604 states read back, 236 lost" in out
    assert "100 lost" not in out
    assert "integrity: not checked (the read-back was not run)" in text(summary(), tmp_path)


# -- not tested -------------------------------------------------------------------------------------

def test_respect_run_near_no_limit_says_not_tested(tmp_path: Path) -> None:
    conf = {"findings_total": 0, "findings_by_kind": {}, "findings": [], "tested": False,
            "not_tested_reason": "no key came within 10% of a limit"}
    s = summary(conformance=conf)
    verdicts = [v.to_dict() for v in evaluate(parse_criteria({}, "t"), s)]
    s.update(verdicts=verdicts, passed=passed(evaluate(parse_criteria({}, "t"), s)))
    out = text(s, tmp_path)
    assert "  throttle conformance: not tested: no key came within 10% of a limit" in out
    assert "[n/a ] throttle conformance findings: not tested: no key came within 10% of a limit" in out
    assert "[PASS] throttle conformance" not in out and "no findings" not in out


# -- throughput over the steady window --------------------------------------------------------------

def test_throughput_line_states_the_steady_window(tmp_path: Path) -> None:
    window = {"start": 1.0, "end": 2.0, "start_offset_s": 4.1, "end_offset_s": 15.0, "duration_s": 10.9,
              "how": "all users started .. users told to stop", "whole_run": False, "requests": 316}
    over = dict(summary()["overall"], steady_throughput_rps=29.0, steady_window=window)
    s = summary(overall=over)
    verdicts = [v.to_dict() for v in evaluate(parse_criteria({"min_throughput": 10}, "t"), s)]
    out = text(summary(overall=over, verdicts=verdicts), tmp_path)
    assert ("  throughput 29.0 req/s over the steady window 4.1 s .. 15.0 s (all users started .. users told to "
            "stop); 66.0 req/s over the whole run") in out
    assert "[PASS] throughput: measured 29.0 req/s (bound 10.0 req/s) over the steady window 4.1 s .. 15.0 s" in out
    # an old summary: the whole run, said as such
    assert "throughput 66.0 req/s over the whole run, ramp-up and stop included" in text(summary(), tmp_path)


# -- one verdict ------------------------------------------------------------------------------------

def test_top_word_follows_summary_passed(tmp_path: Path) -> None:
    assert verdict_word(summary()) == "PASSED"
    assert verdict_word(summary(passed=False, failed_because=["regression"])) == "FAILED: regression"
    failed = summary(passed=False, verdicts=[{"name": "throughput", "passed": False, "status": "fail"}])
    assert verdict_word(failed) == "FAILED: criteria"
    assert verdict_word(summary(passed=False, complete=False, incomplete_reason="interrupted")) \
        == "INCOMPLETE (interrupted)"
    assert text(summary(passed=False, failed_because=["regression"]), tmp_path).splitlines()[1] \
        == "losant-load: smoke - FAILED: regression"


def test_progress_line_counts_mqtt_devices_apart_from_http_requests() -> None:
    line = progress_line(10.0, 60.0, 3, 2, 0, 0, 0.2, None, mqtt=(250, 12_000, 49.5, 3))
    assert "requests        2" in line  # HTTP only, as Locust counts them
    assert "mqtt: connected    250  states acknowledged    12,000     49.5/s  disconnects     3" in line
    assert "mqtt" not in progress_line(10.0, 60.0, 3, 2, 0, 0, 0.2, None)


def test_http_totals_leave_out_locust_mqtt_entries() -> None:
    """MQTT samples reach Locust's statistics (the web UI) but the progress line's HTTP counts stay HTTP."""
    from types import SimpleNamespace

    from harness.console import http_totals
    from harness.record import LOCUST_MQTT_TYPE

    def entry(n: int, failed: int, rps: float) -> SimpleNamespace:  # the StatsEntry fields http_totals reads
        return SimpleNamespace(num_requests=n, num_failures=failed, current_rps=rps,
                               get_current_response_time_percentile=lambda q: 12.0)

    entries = {("device.sendState", "POST"): entry(7, 1, 2.0), ("mqtt.publishState", LOCUST_MQTT_TYPE): entry(40, 0, 8.0),
               ("mqtt.disconnect", LOCUST_MQTT_TYPE): entry(5, 5, 0.5)}
    stats = SimpleNamespace(entries=entries, total=entry(52, 6, 10.5))  # Locust's total holds both kinds
    assert http_totals(stats) == (7, 1, 2.0, 12.0, True)
    only_http = SimpleNamespace(entries={("device.get", "GET"): entry(3, 0, 1.0)}, total=entry(3, 0, 1.0))
    assert http_totals(only_http) == (3, 0, 1.0, 12.0, False)
    assert "p99 (last 10 s, HTTP+MQTT) 3 ms" in progress_line(5, 60, 1, 7, 1, 0, 1.0, 3.0, (1, 40, 8.0, 0), True)
    assert "p99 (last 10 s) 3 ms" in progress_line(5, 60, 1, 7, 1, 0, 1.0, 3.0)
