"""Comparison: a deliberate +50 % latency regression is flagged; same-distribution runs flag nothing."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from harness.report import compare_runs, main_compare, write_report
from harness.report.compare import METHOD, bootstrap_percentile
from harness.report.synthetic import Shape, write_run

BASE = Shape(devices=60, duration=60, seed=11)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    return {
        "base": write_run(root / "base", BASE, summary=False),
        "same": write_run(root / "same", Shape(devices=60, duration=60, seed=12), summary=False),
        "same2": write_run(root / "same2", Shape(devices=60, duration=60, seed=13), summary=False),
        "slow": write_run(root / "slow", Shape(devices=60, duration=60, seed=14, latency_scale=1.5), summary=False),
    }


def test_latency_regression_is_flagged(runs) -> None:
    result = compare_runs(runs["base"], runs["slow"])
    assert result["verdict"] == "regression"
    flagged = {(r["op"], r["metric"], r["label"]) for r in result["regressions"]}
    for label in ("p50", "p90", "p95", "p99"):
        assert ("device.sendState", "response", label) in flagged
        assert ("device.sendState", "corrected", label) in flagged
    row = next(r for r in result["operations"] if r["op"] == "device.sendState")
    assert row["response"]["p50"]["change"] == pytest.approx(0.5, abs=0.05)
    assert row["response"]["p50"]["ci_low"] > 0
    assert not row["throughput"]["regression"]
    assert result["method"] == METHOD and "bootstrap" in METHOD


@pytest.mark.parametrize("other", ["same", "same2"])
def test_same_distribution_flags_nothing(runs, other: str) -> None:
    result = compare_runs(runs["base"], runs[other])
    assert result["regressions"] == [], result["regressions"]
    assert result["verdict"] == "ok"


def test_threshold_is_respected(runs) -> None:
    regs = compare_runs(runs["base"], runs["slow"], threshold=0.8)["regressions"]
    assert all(r["change"] > 0.8 for r in regs)  # only a noisy extreme tail can pass +80 %
    assert not any(r["label"] in ("p50", "p90") for r in regs)


def test_cli_exit_codes_and_json(runs, capsys: pytest.CaptureFixture[str]) -> None:
    assert main_compare([str(runs["base"]), str(runs["slow"])]) == 1
    assert "REGRESSION device.sendState" in capsys.readouterr().out
    assert main_compare([str(runs["base"]), str(runs["same"]), "--threshold", "0.1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "ok"
    assert main_compare([str(runs["base"]), str(runs["base"] / "nope")]) == 2


def test_report_with_baseline_has_comparison_and_overlays(runs) -> None:
    out = write_report(runs["slow"], baseline=runs["base"])
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
    assert "REGRESSION" in html and "bootstrap" in html


def test_bootstrap_interval_covers_the_truth() -> None:
    """For samples of a known distribution, the 99 % interval of p99 holds the true p99 most of the time."""
    rng = np.random.default_rng(0)
    true_p99 = float(np.exp(2.3263 * 1.0))  # lognormal(0, 1)
    hits = 0
    for _ in range(40):
        x = np.sort(rng.lognormal(0, 1, 5000))
        reps = bootstrap_percentile(x, "p99", 2000, rng)
        lo, hi = np.quantile(reps, [0.005, 0.995])
        hits += lo <= true_p99 <= hi
    assert hits >= 36
