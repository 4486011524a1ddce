"""The concurrency judge on synthetic runs whose true decision instants and job lengths are known.

``serve`` is a one-running-job server: it decides each call at a known instant sigma
(its own arrival order) and accepts it when fewer than ``count`` jobs of its key are
running, a job lasting a known time; the judge sees only sent, latency and status.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from judge_synth import brute_could, brute_sure

from harness.analysis.concurrency import ASSUMED_MAX_JOB_S, JobLength, job_length
from harness.analysis.conformance import check_conformance
from harness.analysis.windows import SLACK
from harness.errors import ConfigError
from harness.limits import Limit, LimitsTable, parse_limits
from harness.record import Samples, classify

BASE = 1_700_000_000.0
TABLE = LimitsTable()
EXACT = JobLength(2.0, 2.0, "the emulator's job_seconds (limits table)")


@dataclass
class Job:
    key: str
    sent: float
    decided: float
    answered: float
    status: int = 0  # set by serve (or by hand: a 400 that starts no job)
    length: float = 2.0  # how long the job runs once accepted


def serve(calls: list[Job], count: int = 1) -> list[Job]:
    """Decide in sigma order: accept (202) when fewer than ``count`` jobs of the key still run, else 429."""
    ends: dict[str, list[float]] = {}
    for c in sorted(calls, key=lambda c: c.decided):
        if c.status:
            continue
        running = [e for e in ends.get(c.key, []) if e > c.decided]
        if len(running) < count:
            c.status = 202
            running.append(c.decided + c.length)
        else:
            c.status = 429
        ends[c.key] = running
    return calls


def samples_of(calls: list[Job], op: str = "application.export") -> Samples:
    keys = sorted({c.key for c in calls})
    rows = [(0, keys.index(c.key), BASE + c.sent, BASE + c.sent, c.answered - c.sent, c.status, 60,
             classify(c.status, None if c.status else ConnectionError())) for c in sorted(calls, key=lambda c: c.sent)]
    cols = list(zip(*rows))
    return Samples(*(np.array(col) for col in cols), op_names=(op,), key_names=tuple(keys))


def quick(key: str, sent: float, length: float = 2.0, latency: float = 0.01) -> Job:
    return Job(key, sent, sent + latency / 2, sent + latency, length=length)


def conc_report(result):  # type: ignore[no-untyped-def]
    (report,) = result.concurrency
    return report


def test_target_holding_one_job_as_the_judge_knows_has_no_findings() -> None:
    # a second call 0.7 s and 1.4 s after the first is refused; one 2.1 s after is accepted
    calls = serve([quick("app-1", t) for t in (0.0, 0.7, 1.4, 2.1, 2.8, 4.3)])
    assert [c.status for c in calls] == [202, 429, 429, 202, 429, 202]
    result = check_conformance(samples_of(calls), TABLE, "probe", jobs=EXACT)
    r = conc_report(result)
    assert result.findings_total == 0 and result.undecided_total == 0
    assert (r.calls, r.accepted, r.throttled, r.justified_throttles) == (6, 3, 3, 3)
    assert r.tested and r.missed_judged
    row = {d["row"]: d for d in result.documented_rows}[11]
    assert row["verdict"] == "conforms" and row["driven"] == "partly"
    assert "application.archiveData" in row["operations_not_driven"]


def test_refusal_after_every_job_surely_ended_is_a_false_throttle() -> None:
    # the target's jobs run 4 s; the judge knows they run at most 2 s: the call at 2.8 s was refused falsely
    calls = serve([quick("app-1", 0.0, length=4.0), quick("app-1", 2.8, length=4.0)])
    assert [c.status for c in calls] == [202, 429]
    result = check_conformance(samples_of(calls), TABLE, "probe", jobs=EXACT)
    assert result.findings_by_kind == {"false_throttle": 1}
    (f,) = result.findings
    assert (f.limit, f.op, f.key, f.in_window, f.count) == ("application.export", "application.export", "app-1", 0, 1)
    assert "no earlier job of its key could still be running" in f.detail and "2 s" in f.detail
    assert conc_report(result).false_throttles == 1
    row = {d["row"]: d for d in result.documented_rows}[11]
    assert row["verdict"] == "findings" and row["findings"] == 1 and row["refused"] == 1


def test_acceptance_while_a_job_surely_ran_is_a_missed_throttle() -> None:
    # the target's jobs run 1 s; the judge knows they run 2 s: the call at 1.4 s should have been refused
    calls = serve([quick("dash-1", 0.0, length=1.0), quick("dash-1", 1.4, length=1.0)])
    assert [c.status for c in calls] == [202, 202]
    result = check_conformance(samples_of(calls, "dashboard.sendReport"), TABLE, "probe", jobs=EXACT)
    assert result.findings_by_kind == {"missed_throttle": 1}
    (f,) = result.findings
    assert (f.limit, f.key, f.in_window) == ("dashboard.sendReport", "dash-1", 1)
    assert "surely still running" in f.detail
    row = {d["row"]: d for d in result.documented_rows}[13]
    assert (row["verdict"], row["driven"], row["findings_by_kind"]) == ("findings", "yes", {"missed_throttle": 1})


def test_refusal_while_an_earlier_job_might_still_run_is_undecided() -> None:
    # a live target, no job length stated: jobs may run up to an hour, so a 429 at 2.8 s proves nothing
    calls = serve([quick("app-1", 0.0, length=4.0), quick("app-1", 2.8, length=4.0)])
    jobs = job_length(None, "live", TABLE)
    assert (jobs.min_s, jobs.max_s) == (None, ASSUMED_MAX_JOB_S) and "conservative" in jobs.basis
    result = check_conformance(samples_of(calls), TABLE, "probe", jobs=jobs)
    r = conc_report(result)
    assert result.findings_total == 0
    assert result.undecided_by_kind["throttled"] == 1 and r.undecided_throttles == 1
    assert not r.missed_judged
    row = {d["row"]: d for d in result.documented_rows}[11]
    assert row["verdict"] == "undecided" and "cannot be called missed" in row["judged"]


def test_refusal_a_long_time_after_is_false_even_without_a_stated_length() -> None:
    calls = serve([quick("app-1", 0.0, length=5000.0), quick("app-1", 3700.0, length=5000.0)])
    result = check_conformance(samples_of(calls), TABLE, "probe", jobs=job_length(None, "live", TABLE))
    assert result.findings_by_kind == {"false_throttle": 1}


def test_acceptance_when_the_earlier_job_might_have_ended_is_undecided() -> None:
    # stated 1 to 5 s: at 2.8 s the first job may have ended (after 1 s) or not (5 s)
    calls = serve([quick("inst-1", 0.0, length=2.0), quick("inst-1", 2.8, length=2.0)])
    assert [c.status for c in calls] == [202, 202]
    jobs = job_length({"min": 1, "max": 5}, "live", TABLE)
    result = check_conformance(samples_of(calls, "instance.generateReport"), TABLE, "probe", jobs=jobs)
    assert result.findings_total == 0 and result.undecided_by_kind["accepted"] == 1
    assert conc_report(result).undecided_accepted == 1


def test_without_a_minimum_nothing_is_called_missed() -> None:
    calls = serve([quick("app-1", 0.0, length=0.1), quick("app-1", 0.5, length=0.1)])
    result = check_conformance(samples_of(calls), TABLE, "probe", jobs=job_length(None, "live", TABLE))
    assert result.findings_total == 0 and result.undecided_by_kind["accepted"] == 1


def test_overlapping_bounds_leave_a_refusal_undecided() -> None:
    # the first call's answer comes back after the second was sent: it may have been decided after it
    first = Job("app-1", 0.0, 0.001, 3.0, length=2.0)
    second = Job("app-1", 0.5, 0.5, 0.51, length=2.0)
    calls = serve([first, second])
    assert [first.status, second.status] == [202, 429]
    result = check_conformance(samples_of(calls), TABLE, "probe", jobs=EXACT)
    assert result.findings_total == 0 and conc_report(result).undecided_throttles == 1


def test_error_answers_start_no_job() -> None:
    bad = Job("app-1", 0.0, 0.005, 0.01, status=400)  # a validation error: no job queued
    calls = serve([bad, quick("app-1", 0.5)])
    assert calls[1].status == 202
    result = check_conformance(samples_of(calls), TABLE, "probe", jobs=EXACT)
    assert result.findings_total == 0 and conc_report(result).calls == 1


def test_a_server_error_may_have_started_a_job() -> None:
    crashed = Job("app-1", 0.0, 0.005, 0.01, status=500)  # the job may or may not have been queued
    calls = serve([crashed, quick("app-1", 0.5)])
    result = check_conformance(samples_of(calls), TABLE, "probe", jobs=EXACT)
    r = conc_report(result)
    assert result.findings_total == 0 and (r.calls, r.no_response, r.undecided_accepted) == (2, 1, 1)


def test_keys_are_independent() -> None:
    calls = serve([quick(f"table-{i}", 0.1 * i) for i in range(5)])
    result = check_conformance(samples_of(calls, "dataTableRows.export"), TABLE, "probe", jobs=EXACT)
    r = conc_report(result)
    assert result.findings_total == 0 and (r.keys, r.accepted) == (5, 5)
    assert not r.tested  # no call came while another job of its key could run


def test_a_shared_owner_slot_is_one_counter() -> None:
    """A limit naming both owner operations (the issue's reading) judges them on one counter."""
    shared = Limit("owner.jobs", ("application.clone", "applications.import"), "concurrency", 1, "owner")
    table = LimitsTable(tuple(lim for lim in TABLE.limits
                              if lim.name not in ("application.clone", "applications.import")) + (shared,))
    clone, imp = quick("owner-1", 0.0), quick("owner-1", 0.7)
    serve([clone, imp])
    assert imp.status == 429
    s = samples_of([clone], "application.clone")
    t = samples_of([imp], "applications.import")
    merged = Samples(np.concatenate([s.op, t.op + 1]), np.concatenate([s.key, t.key]),
                     np.concatenate([s.planned, t.planned]), np.concatenate([s.sent, t.sent]),
                     np.concatenate([s.latency, t.latency]), np.concatenate([s.status, t.status]),
                     np.concatenate([s.nbytes, t.nbytes]), np.concatenate([s.error, t.error]),
                     op_names=("application.clone", "applications.import"), key_names=("owner-1",))
    result = check_conformance(merged, table, "probe", jobs=EXACT)
    assert result.findings_total == 0 and conc_report(result).justified_throttles == 1
    row = {d["row"]: d for d in result.documented_rows}[12]
    assert row["limits"] == ["owner.jobs"] and row["verdict"] == "conforms" and row["driven"] == "yes"


def test_job_length_sources() -> None:
    table = parse_limits({"job_seconds": 7})
    assert job_length(None, "emulator", table) == JobLength(7.0, 7.0, "the emulator's job_seconds (limits table)")
    assert job_length(3, "live", table).text == "3 s"
    assert job_length({"min": "500ms", "max": "10m"}, "live", table).text == "0.5 to 600 s"
    assert job_length("30s", "emulator", table) == JobLength(30.0, 30.0, "stated by the scenario (target.job_seconds)")
    for bad in ("long", {"min": 5, "max": 2}, {"min": 1}, {"min": 0, "max": 0}, True):
        with pytest.raises(ConfigError, match="target.job_seconds"):
            job_length(bad, "live", table)


@given(st.lists(st.tuples(st.floats(0, 6), st.floats(0, 0.6), st.floats(0, 0.6), st.floats(1.0, 3.0),
                          st.integers(0, 1), st.booleans()), min_size=1, max_size=14))
def test_a_target_within_the_stated_lengths_draws_no_finding_and_counts_match_the_rule(
        spec: list[tuple[float, float, float, float, int, bool]]) -> None:
    """True job lengths anywhere in [1, 3] s, overlapping calls and lost answers: never a finding, and
    the verdict of every call is the literal rule's (``brute_could`` / ``brute_sure``)."""
    calls = [Job(f"k{key}", sent, sent + d1, sent + d1 + d2, length=length)
             for sent, d1, d2, length, key, _ in spec]
    serve(calls)
    for c, (*_, lost) in zip(calls, spec):
        if lost:
            c.status = 0
    s = samples_of(calls)
    jobs = JobLength(1.0, 3.0, "test")
    result = check_conformance(s, TABLE, "probe", jobs=jobs)
    assert result.findings_total == 0
    r = conc_report(result)
    und_t = und_a = 0
    for x in range(len(s)):
        if s.status[x] == 429:
            could = brute_could(s, x, 3.0, slack=SLACK)
            sure = brute_sure(s, x, 1.0, slack=SLACK)
            assert could >= 1
            und_t += sure < 1
        elif s.status[x] == 202:
            could = brute_could(s, x, 3.0, slack=SLACK)
            sure = brute_sure(s, x, 1.0, slack=SLACK)
            assert sure < 1
            und_a += could >= 1
    assert (r.undecided_throttles, r.undecided_accepted) == (und_t, und_a)


def test_calls_keyed_by_another_kind_are_not_judged() -> None:
    calls = serve([quick("app-1", 0.0, length=4.0), quick("app-1", 2.8, length=4.0)])
    result = check_conformance(samples_of(calls, "device.export"), TABLE, "probe",
                               key_kinds={"device.export": "application"}, jobs=EXACT)
    r = conc_report(result)
    assert result.findings_total == 0 and not r.checked and "counts per device" in r.reason
    row = {d["row"]: d for d in result.documented_rows}[7]
    assert row["verdict"] == "not judged" and "counts per device" in row["note"]
