"""Criteria: every parse problem named with where, field and what is allowed; verdicts with figures."""

from __future__ import annotations

import pytest

from harness.analysis.criteria import evaluate, passed
from harness.scenario.criteria import Criteria, parse_criteria
from harness.errors import ConfigError

WHERE = "scenarios/x.yaml: criteria"


def test_full_section_parses() -> None:
    c = parse_criteria({
        "latency": {"device.sendState": {"p99": 250, "p50": 50}, "*": {"p95": 1000}},
        "latency_basis": "response", "max_error_rate": 0.01, "max_throttled_rate": 0,
        "lost_writes": 2, "conformance_findings": None, "min_throughput": 20,
    }, WHERE)
    assert c.latency == (("device.sendState", "p99", 250.0), ("device.sendState", "p50", 50.0), ("*", "p95", 1000.0))
    assert (c.latency_basis, c.max_error_rate, c.max_throttled_rate) == ("response", 0.01, 0.0)
    assert (c.lost_writes, c.conformance_findings, c.min_throughput) == (2, None, 20.0)


def test_defaults() -> None:
    assert parse_criteria(None, WHERE) == parse_criteria({}, WHERE) == Criteria()
    assert Criteria().lost_writes == 0 and Criteria().conformance_findings == 0
    assert Criteria().latency_basis == "corrected"


@pytest.mark.parametrize("data, message", [
    # one wording for every input file (harness.checking): the path ends with the unknown name
    ({"max_eror_rate": 0.1}, "criteria.max_eror_rate: unknown field (did you mean 'max_error_rate'?); allowed: latency,"),
    ({"latency": {"*": {"p98": 5}}}, "criteria.latency.*.p98: unknown percentile (did you mean 'p99'?); allowed: p50,"),
    ({"latency": {"*": {"p99": -5}}}, "criteria.latency.*.p99: -5 is not allowed; expected a number > 0"),
    ({"latency": {"*": 5}}, "criteria.latency.*: 5 is not allowed; expected a mapping of percentile"),
    ({"latency": [1]}, "criteria.latency: [1] is not allowed"),
    ({"latency_basis": "corected"},
     "criteria.latency_basis: 'corected' is not allowed (did you mean 'corrected'?); expected one of corrected | response"),
    ({"max_error_rate": 1.5}, "criteria.max_error_rate: 1.5 is not allowed; expected a number from 0 to 1"),
    ({"max_throttled_rate": True}, "criteria.max_throttled_rate: True is not allowed"),
    ({"lost_writes": 0.5}, "criteria.lost_writes: 0.5 is not allowed; expected a whole number >= 0"),
    ({"min_throughput": 0}, "criteria.min_throughput: 0 is not allowed; expected a number > 0"),
    ({"min_throughput": float("nan")}, "criteria.min_throughput: nan is not allowed; expected a number > 0"),
])
def test_errors_name_where_field_and_allowed(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_criteria(data, WHERE)
    assert message in str(err.value)
    assert str(err.value).startswith(WHERE)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        parse_criteria({"bogus": 1, "max_error_rate": -1, "latency": {"*": {"p1000": 1}}}, WHERE)
    assert len(str(err.value).splitlines()) == 3


def test_unknown_operation_with_did_you_mean() -> None:
    with pytest.raises(ConfigError, match="latency.device.sendStat: unknown operation \\(did you mean 'device.sendState'"):
        parse_criteria({"latency": {"device.sendStat": {"p99": 1}}}, WHERE, known_ops=["device.sendState"])


def summary(**over) -> dict:  # type: ignore[no-untyped-def]
    s = {
        "overall": {"count": 1000, "error_rate": 0.02, "throttled_rate": 0.0, "throughput_rps": 25.0,
                    "corrected_latency_ms": {"p95": 900.0, "p99": 1500.0},
                    "response_time_ms": {"p95": 100.0, "p99": 200.0}},
        "operations": {"device.sendState": {"corrected_latency_ms": {"p99": 300.0, "p50": 40.0},
                                            "response_time_ms": {"p99": 120.0, "p50": 10.0}}},
        "conformance": {"findings_total": 3},
        "integrity": {"checked": False, "reason": "the read-back was not run"},
    }
    s.update(over)
    return s


def test_evaluate_reports_measured_values() -> None:
    c = parse_criteria({"latency": {"device.sendState": {"p99": 250, "p50": 50}, "*": {"p95": 1000}},
                        "max_error_rate": 0.01, "max_throttled_rate": 0.0, "min_throughput": 20}, WHERE)
    verdicts = {v.name: v for v in evaluate(c, summary())}
    v = verdicts["corrected latency p99 of device.sendState"]
    assert (v.bound, v.measured, v.passed, v.status, v.unit) == (250.0, 300.0, False, "fail", "ms")
    assert verdicts["corrected latency p50 of device.sendState"].passed
    assert verdicts["corrected latency p95 of all requests"].measured == 900.0
    assert verdicts["error rate (errors other than 429)"].measured == 0.02
    assert not verdicts["error rate (errors other than 429)"].passed
    assert verdicts["throttled rate (429s)"].passed
    assert verdicts["throughput"].passed and verdicts["throughput"].measured == 25.0
    lost = verdicts["lost writes"]
    assert (lost.passed, lost.status, lost.measured) == (None, "not checked", None)
    assert verdicts["throttle conformance findings"].measured == 3
    assert not passed(list(verdicts.values()))


def test_basis_response_and_not_checked_does_not_fail() -> None:
    c = parse_criteria({"latency": {"device.sendState": {"p99": 250}}, "latency_basis": "response",
                        "conformance_findings": 5}, WHERE)
    verdicts = evaluate(c, summary())
    assert [v.status for v in verdicts] == ["pass", "not checked", "pass"]
    assert verdicts[0].name == "response time p99 of device.sendState" and verdicts[0].measured == 120.0
    assert passed(verdicts)


def test_integrity_checked_and_missing_operation() -> None:
    c = parse_criteria({"latency": {"events.post": {"p99": 1}}}, WHERE)
    verdicts = evaluate(c, summary(integrity={"checked": True, "lost_writes": 2},
                                   conformance={"findings_total": 0}))
    assert verdicts[0].status == "fail" and "no samples" in verdicts[0].detail
    assert (verdicts[1].name, verdicts[1].measured, verdicts[1].passed) == ("lost writes", 2, False)
    assert verdicts[2].passed


def test_throughput_is_judged_over_the_steady_window() -> None:
    c = parse_criteria({"min_throughput": 20}, WHERE)
    window = {"start": 1.0, "end": 2.0, "start_offset_s": 12.0, "end_offset_s": 58.0, "duration_s": 46.0,
              "how": "all users started .. users told to stop", "whole_run": False}
    over = dict(summary()["overall"], throughput_rps=66.0, steady_throughput_rps=18.5, steady_window=window)
    v = {v.name: v for v in evaluate(c, summary(overall=over))}["throughput"]
    assert (v.measured, v.passed) == (18.5, False)  # the whole run's 66/s (ramp-up and stop) does not count
    assert v.detail == "over the steady window 12.0 s .. 58.0 s (all users started .. users told to stop)"
    # an old summary without a steady window: the whole run, and it says so
    old = {v.name: v for v in evaluate(c, summary())}["throughput"]
    assert old.measured == 25.0 and "whole run" in old.detail


def test_conformance_not_tested_is_not_a_pass() -> None:
    c = parse_criteria({}, WHERE)
    conf = {"findings_total": 0, "tested": False, "not_tested_reason": "no key came within 10% of a limit"}
    v = {v.name: v for v in evaluate(c, summary(conformance=conf))}["throttle conformance findings"]
    assert (v.status, v.passed) == ("not checked", None)
    assert v.detail == "not tested: no key came within 10% of a limit"
    tested = {v.name: v for v in evaluate(c, summary(conformance={**conf, "tested": True}))}
    assert tested["throttle conformance findings"].status == "pass"
    # findings are judged whatever ``tested`` says
    found = {v.name: v for v in evaluate(c, summary(conformance={**conf, "findings_total": 2}))}
    assert found["throttle conformance findings"].status == "fail"
