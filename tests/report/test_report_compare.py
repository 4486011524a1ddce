"""Comparison: known effects on synthetic runs (seeded, so every verdict here is fixed).

A 20 % or 30 ms slowdown of state calls is a regression; identical distributions, and a
run-level shift below the floors, are not; a statistic with too few samples is "not
enough samples", never a regression; runs of different scenarios or targets are refused
unless forced. The false-alarm and detection rates on real runs are measured by
bench/compare_calibration.py (docs/BENCHMARKS.md), not here.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.console import format_summary, regression_lines
from harness.record import Samples
from harness.report import compare_runs, main_compare, write_report
from harness.report.compare import (
    CompareRefused,
    apply_baseline,
    compare_samples,
    format_comparison,
    holm,
    mann_whitney_greater,
    steady_window,
)
from harness.report.synthetic import Shape, make_rows, write_run

SHAPE = {"devices": 200, "duration": 60}  # ~1,700 state calls per block: tight block percentiles


def samples(shape: Shape) -> Samples:
    rows, ops, keys = make_rows(shape)
    return Samples.from_rows(rows, tuple(ops), tuple(keys))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    return {
        "base": write_run(root / "base", Shape(**SHAPE, seed=11), summary=False),
        "same": write_run(root / "same", Shape(**SHAPE, seed=12), summary=False),
        "same2": write_run(root / "same2", Shape(**SHAPE, seed=13), summary=False),
        "slow20": write_run(root / "slow20", Shape(**SHAPE, seed=14, state_scale=1.2), summary=False),
        "slow30ms": write_run(root / "slow30ms", Shape(**SHAPE, seed=15, state_add_ms=30), summary=False),
        "judged": write_run(root / "judged", Shape(**SHAPE, seed=16, state_scale=1.2), summary=False),
        "other": write_run(root / "other", Shape(**SHAPE, seed=17, name="another-scenario"), summary=False),
    }


def flagged(result: dict) -> set[tuple[str, str, str]]:
    return {(r["op"], r["metric"], r["label"]) for r in result["regressions"]}


def test_a_20_percent_slowdown_of_state_calls_is_a_regression(runs) -> None:
    result = compare_runs(runs["base"], runs["slow20"])
    assert result["verdict"] == "regression"
    got = flagged(result)
    for metric in ("response", "corrected"):
        for label in ("p50", "p90"):
            assert ("device.sendState", metric, label) in got
    assert not any(op != "device.sendState" for op, _, _ in got), got  # only state calls got slower
    row = next(r for r in result["operations"] if r["op"] == "device.sendState")
    assert row["response"]["p50"]["change"] == pytest.approx(0.2, abs=0.03)
    assert row["response"]["p50"]["p_value"] < 1e-4
    assert row["throughput"]["status"] == "no regression"


def test_a_30_ms_slowdown_of_state_calls_is_a_regression(runs) -> None:
    result = compare_runs(runs["base"], runs["slow30ms"])
    assert result["verdict"] == "regression"
    row = next(r for r in result["operations"] if r["op"] == "device.sendState")
    assert row["response"]["p50"]["delta"] == pytest.approx(0.030, abs=0.002)
    assert ("device.sendState", "response", "p99") in flagged(result)


@pytest.mark.parametrize("other", ["same", "same2"])
def test_identical_distributions_flag_nothing(runs, other: str) -> None:
    result = compare_runs(runs["base"], runs[other])
    assert result["regressions"] == [], result["regressions"]
    assert result["verdict"] == "no regression"
    assert result["tests"] > 10 and result["not_enough_samples"] > 0  # p99.9 of 6,000 samples is not judged


def test_a_run_level_shift_below_the_floors_is_not_a_regression() -> None:
    """A 5 % shift (0.6 ms) that every block shows: a difference, but smaller than allowed."""
    base = samples(Shape(devices=200, duration=120, seed=21))
    cur = samples(Shape(devices=200, duration=120, seed=22, latency_scale=1.05))
    result = compare_samples(base, cur)
    row = next(r for r in result["operations"] if r["op"] == "device.sendState")
    assert row["response"]["p50"]["change"] == pytest.approx(0.05, abs=0.01)
    assert not row["response"]["p50"]["significant"] and result["verdict"] == "no regression", result["regressions"]
    exact = compare_samples(base, cur, threshold=0.0, min_change_ms=0.0)  # no allowed change: the shift is seen
    assert exact["verdict"] == "regression"
    assert ("device.sendState", "response", "p50") in flagged(exact)


def test_the_absolute_floor_keeps_out_small_changes_of_fast_calls() -> None:
    """+1 ms on a 3 ms call is +33 %, but below the 2 ms floor."""
    base = samples(Shape(devices=100, duration=60, seed=31, latency_ms=3.0))
    cur = samples(Shape(devices=100, duration=60, seed=32, latency_ms=3.0, state_add_ms=1.0))
    assert compare_samples(base, cur)["verdict"] == "no regression"
    lowered = compare_samples(base, cur, min_change_ms=0.5)
    assert lowered["verdict"] == "regression"
    assert {r["op"] for r in lowered["regressions"]} == {"device.sendState"}


def test_few_samples_are_not_enough_never_a_regression(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tiny = {"devices": 1, "duration": 6, "operators": 1, "events_rate": 0.5}  # about a dozen calls per operation
    base = write_run(tmp_path / "b", Shape(**tiny, seed=41), summary=False)
    cur = write_run(tmp_path / "c", Shape(**tiny, seed=42, latency_scale=3.0), summary=False)  # 3x slower
    result = compare_runs(base, cur)
    assert result["regressions"] == [] and result["verdict"] == "undecided"
    assert result["tests"] == 0 and result["not_enough_samples"] == 3 * (1 + 2 * 5)
    statuses = {e["status"] for row in result["operations"] for m in ("corrected", "response")
                for e in (row.get(m) or {}).values()}
    assert "not enough samples" in statuses and "regression" not in statuses
    for row in result["operations"]:
        for m in ("corrected", "response"):
            assert row[m]["p99"]["status"] == "not enough samples"  # 1,000 samples needed
    assert main_compare([str(base), str(cur)]) == 0
    out = capsys.readouterr().out
    assert "not enough samples" in out and "verdict: undecided" in out and "REGRESSION" not in out


def test_different_scenarios_are_refused_unless_forced(runs, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CompareRefused, match="another-scenario"):
        compare_runs(runs["base"], runs["other"])
    assert main_compare([str(runs["base"]), str(runs["other"])]) == 2
    err = capsys.readouterr().err
    assert "'synthetic'" in err and "'another-scenario'" in err and "--force" in err
    assert "differ in: name" in err
    assert main_compare([str(runs["base"]), str(runs["other"]), "--force"]) == 0
    assert "WARNING (--force)" in capsys.readouterr().out


def test_different_targets_are_refused_but_a_loopback_port_is_not_a_target(runs, tmp_path: Path) -> None:
    def retarget(name: str, url: str) -> Path:
        folder = write_run(tmp_path / name, Shape(**SHAPE, seed=12), summary=False)
        data = yaml.safe_load((folder / "scenario.yaml").read_text())
        data["target"] = {"kind": "live", "url": url, "auth": "user"}
        (folder / "scenario.yaml").write_text(yaml.safe_dump(data))
        return folder

    a = retarget("a", "http://127.0.0.1:40001")
    b = retarget("b", "http://localhost:40999/")  # the emulator takes a free port each time
    c = retarget("c", "https://api.losant.com")
    assert compare_runs(a, b)["verdict"] == "no regression"
    with pytest.raises(CompareRefused, match="api.losant.com"):
        compare_runs(a, c)
    with pytest.raises(CompareRefused, match="embedded emulator"):
        compare_runs(runs["base"], a)


def test_cli_exit_codes_output_and_json(runs, capsys: pytest.CaptureFixture[str]) -> None:
    assert main_compare([str(runs["base"]), str(runs["slow20"])]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[-1].startswith("verdict: REGRESSION")
    first_op = next(i for i, line in enumerate(lines) if line.startswith("  device."))
    assert lines[first_op].startswith("  device.sendState")  # operations with a regression first
    assert "REGRESSION device.sendState response p50" in out and "steady windows:" in out
    assert main_compare([str(runs["base"]), str(runs["same"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "no regression" and data["options"]["blocks"] == 10
    assert main_compare([str(runs["base"]), str(runs["base"] / "nope")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert main_compare([str(runs["base"]), str(runs["same"]), "--threshold", "-1"]) == 2
    assert main_compare([str(runs["base"]), str(runs["slow20"]), "--threshold", "0.5"]) == 0  # a 20 % change
    assert main_compare([str(runs["base"]), str(runs["slow30ms"]), "--min-change-ms", "50"]) == 0  # a 30 ms change


def test_help_explains_the_method(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main_compare(["--help"])
    text = capsys.readouterr().out
    for word in ("Mann-Whitney", "Holm", "allowed change", "--min-change-ms", "--threshold", "--force", "not enough samples",
                 "steady window", "Exit codes"):
        assert word in text


def test_steady_window_leaves_out_the_ramp_up() -> None:
    s = samples(Shape(devices=60, duration=60, seed=11))  # devices start over the first 12 s
    w = steady_window(s)
    assert 12.0 <= w["offset_s"] <= 15.0 and 40 <= w["duration_s"] <= 46
    assert "ramp-up" in w["how"]
    spawned = datetime.fromtimestamp(Shape().start + 20, UTC).isoformat()  # run.json's ramp-up end
    w = steady_window(s, {"spawning_complete": spawned})
    assert w["offset_s"] == pytest.approx(22.0, abs=0.6) and "run.json" in w["how"]  # + 2 s settling


def test_mann_whitney_is_exact_against_enumeration() -> None:
    rng = np.random.default_rng(5)
    for n1, n2 in ((3, 4), (5, 5), (4, 6)):
        x, y = rng.normal(size=n1), rng.normal(size=n2) + 0.7
        both = np.concatenate((x, y))
        u_obs = (y[None, :] > x[:, None]).sum()
        hits = total = 0
        for pick in itertools.combinations(range(n1 + n2), n2):
            yy = both[list(pick)]
            xx = np.delete(both, list(pick))
            hits += (yy[None, :] > xx[:, None]).sum() >= u_obs
            total += 1
        assert mann_whitney_greater(x, y) == pytest.approx(hits / total, rel=1e-12)
    assert mann_whitney_greater(np.arange(10.0), np.arange(10.0) + 20) == pytest.approx(1 / 184756)
    tied = mann_whitney_greater(np.array([5.0] * 10), np.array([5.0] * 9 + [6.0]))
    assert 0.1 < tied < 0.5  # ties: normal approximation
    assert holm([0.001, 0.03, 0.03], 0.05) == [True, False, False]


def test_one_verdict_everywhere_for_a_run_with_a_baseline(runs) -> None:
    """--baseline: summary.json fails with the reason, the terminal says FAILED: regression, the badge too."""
    run = runs["judged"]
    summary = {"passed": True, "failed_because": [], "scenario": {"name": "synthetic"}, "verdicts": [
        {"name": "device.sendState p99", "passed": True, "measured": 40.0, "bound": 250.0}]}  # criteria passed
    result = apply_baseline(summary, runs["base"], run)
    assert result is not None and result["verdict"] == "regression"
    assert summary["passed"] is False and "regression" in summary["failed_because"]
    reg = summary["regression"]
    assert reg["verdict"] == "regression" and reg["regressions_total"] == len(result["regressions"])
    assert 1 <= len(reg["top"]) <= 5 and reg["top"][0]["op"] == "device.sendState"
    assert {"op", "metric", "percentile", "baseline_ms", "current_ms", "change"} <= set(reg["top"][0])
    lines = regression_lines(summary)
    assert lines[0].startswith("  FAILED: regression against baseline") and "device.sendState" in lines[1]
    text = format_summary(summary, run)
    assert "FAILED" in text.splitlines()[1] and "regression" in text.splitlines()[1]
    (run / "summary.json").write_text(json.dumps(summary))
    html = write_report(run, runs["base"], result).read_text()
    assert 'id="verdict-word">FAIL: REGRESSION<' in html and 'id="regression"' in html
    assert 'id="comparison-verdict"' in html and "Mann-Whitney" in html

    same = dict(summary, passed=True, failed_because=[])
    apply_baseline(same, runs["base"], runs["same"])
    assert same["passed"] is True and same["regression"]["verdict"] == "no regression"
    assert "no regression" in regression_lines(same)[0]
    missing = dict(summary)
    assert apply_baseline(missing, runs["base"] / "gone", run) is None
    assert missing["regression"]["verdict"] == "not compared"


def test_report_with_baseline_has_comparison_and_overlays(runs) -> None:
    out = write_report(runs["slow20"], baseline=runs["base"])
    html = out.read_text()

    class P(HTMLParser):
        ids: set[str] = set()
        imgs: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if a.get("id"):
                self.ids.add(a["id"] or "")
            if tag == "img":
                self.imgs.append(a.get("alt") or "")

    p = P()
    p.feed(html)
    assert {"comparison", "comparison-verdict"} <= p.ids
    assert "throughput overlay" in p.imgs and "latency distribution overlay" in p.imgs
    assert "REGRESSION" in html and "n/a" in html  # p99.9: not enough samples


def test_a_rise_the_generator_shares_is_undecided_not_a_regression() -> None:
    """State calls +30 ms, but the generator sent them 30 ms late as well (its CPU, not the target)."""
    base = samples(Shape(**SHAPE, seed=51))
    rows, ops, keys = make_rows(Shape(**SHAPE, seed=52))
    state = rows["op"] == 0
    slower = rows.copy()
    slower["latency"][state] += 0.030
    assert compare_samples(base, Samples.from_rows(slower, tuple(ops), tuple(keys)))["verdict"] == "regression"
    starved = slower.copy()
    starved["sent"][state] += 0.030  # lateness +30 ms at every percentile
    result = compare_samples(base, Samples.from_rows(starved, tuple(ops), tuple(keys)))
    assert result["verdict"] == "undecided" and result["regressions"] == []
    assert result["generator_late"] >= 5
    row = next(r for r in result["operations"] if r["op"] == "device.sendState")
    assert row["response"]["p50"]["status"] == "generator late too"
    assert row["lateness"]["p50"]["current"] - row["lateness"]["p50"]["baseline"] == pytest.approx(0.030, abs=0.002)
    assert "generator late too" in format_comparison({**result, "baseline": "b", "current": "c"})


def test_analyze_keeps_the_baseline_verdict(runs, tmp_path: Path) -> None:
    """``losant-load analyze`` re-judges the criteria and, for a run judged against --baseline, the regression."""
    from harness.analysis.summary import write_summary
    from harness.judge import rejudge

    run = write_run(tmp_path / "r", Shape(**SHAPE, seed=61, state_scale=1.2), summary=False)
    summary = {"passed": True, "failed_because": [], "scenario": {"name": "synthetic"}, "verdicts": []}
    apply_baseline(summary, runs["base"], run, min_change_ms=3.0)
    write_summary(run, summary)
    again = rejudge(run)
    assert again["regression"]["verdict"] == "regression" and again["regression"]["min_change_ms"] == 3.0
    assert again["passed"] is False and "regression" in again["failed_because"]


def test_a_throughput_drop_is_judged_between_blocks() -> None:
    base = samples(Shape(**SHAPE, seed=71))
    fewer = samples(Shape(devices=150, duration=60, seed=72))  # a quarter of the state calls missing
    result = compare_samples(base, fewer)
    row = next(r for r in result["operations"] if r["op"] == "device.sendState")
    assert row["throughput"]["change"] == pytest.approx(-0.25, abs=0.02) and row["throughput"]["regression"]
    assert ("device.sendState", "throughput", "req/s") in flagged(result)
    slight = samples(Shape(devices=190, duration=60, seed=73))  # -5 %: below the floor
    assert not next(r for r in compare_samples(base, slight)["operations"]
                    if r["op"] == "device.sendState")["throughput"]["regression"]
