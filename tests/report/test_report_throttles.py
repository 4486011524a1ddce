"""The report's throttle section: the rule, not-tested runs, probe results and the accepted-per-window chart."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import yaml

from harness.analysis.summary import build_summary, write_summary
from harness.limits import LimitsTable
from harness.record import (
    COLUMNS,
    FORMAT_VERSION,
    ROW_DTYPE,
    Recorder,
    Samples,
    read_samples,
)
from harness.report import write_report
from harness.report.figures import accepted_windows

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "analysis"))
from judge_synth import decide, steady, to_samples
from test_report_html import parse


def write_samples_run(run_dir: Path, samples: Samples, pacing: str) -> Path:
    run_dir.mkdir(parents=True)
    rows = np.zeros(len(samples), ROW_DTYPE)
    for name, _ in COLUMNS:
        rows[name] = getattr(samples, name)
    rec = Recorder(run_dir)
    rec.ingest({"format": FORMAT_VERSION, "n": len(rows), "rows": rows.tobytes(),
                "ops": [[i, n] for i, n in enumerate(samples.op_names)],
                "keys": [[i, n] for i, n in enumerate(samples.key_names)]})
    rec.close()
    scenario = {"name": f"{pacing} run", "target": {"kind": "emulator"}, "duration": "60s"}
    (run_dir / "scenario.yaml").write_text(yaml.safe_dump(scenario), encoding="utf-8")
    summary = build_summary(read_samples(run_dir), LimitsTable(), scenario, None, None, pacing_mode=pacing,
                            series=False)
    write_summary(run_dir, summary)
    return run_dir


def test_probe_results_and_accepted_chart(tmp_path: Path) -> None:
    calls = steady(4, 0.31, 60.0)
    decide(calls, 31, 15.0)  # a target at 31 where 30 is documented
    folder = write_samples_run(tmp_path / "probe", to_samples(calls), "probe")
    summary = json.loads((folder / "summary.json").read_text())
    page = parse(write_report(folder))
    text = " ".join(page.text)
    probe = {a["data-probe"]: cells for a, cells in page.rows if "data-probe" in a}
    cells = probe["device.sendState"]
    report = summary["conformance"]["limits"][0]
    assert cells[1] == "4"
    assert cells[2].startswith("31")  # onset: 31 accepted before the first 429
    assert cells[3].endswith(")") and " s (" in cells[3]  # recovery median and range
    assert cells[4] == report["inference"]["model"] and cells[5] == "31"
    assert "Rule." in text and "under every arrival order" in text
    assert any("accepted calls per window" in img.get("alt", "") for img in page.images)
    assert "missed throttle" in text  # the documented 30 was exceeded, provably


def test_respect_run_far_from_limits_says_not_tested(tmp_path: Path) -> None:
    calls = steady(4, 1.0, 60.0)  # 15 per 15 s window: half the documented 30
    decide(calls, 30, 15.0)
    folder = write_samples_run(tmp_path / "idle", to_samples(calls), "respect")
    page = parse(write_report(folder))
    text = " ".join(page.text)
    assert "throttle-status" in page.ids
    assert "Not tested: no key came within 10% of a limit." in text
    assert "exactly as documented" not in text
    limits = {a["data-limit"]: cells for a, cells in page.rows if "data-limit" in a}
    assert limits["device.sendState"][9] == "no: not near"


def test_undecided_counts_are_shown(tmp_path: Path) -> None:
    calls = steady(4, 0.31, 60.0, decide_after=0.2, answer_after=0.2)  # slow answers near the limit
    decide(calls, 30, 15.0)
    folder = write_samples_run(tmp_path / "slow", to_samples(calls), "probe")
    summary = json.loads((folder / "summary.json").read_text())
    conf = summary["conformance"]
    assert conf["findings_total"] == 0 and conf["undecided_total"] > 0
    page = parse(write_report(folder))
    text = " ".join(page.text)
    assert "No finding: no call proves the target departed from the documented limits." in text
    by = conf["undecided_by_kind"]
    assert f"Undecided (not findings): {by['throttled']:,} 429s and {by['accepted']:,} accepted calls" in text
    limits = {a["data-limit"]: cells for a, cells in page.rows if "data-limit" in a}
    r = conf["limits"][0]
    assert limits["device.sendState"][8] == f"{r['undecided_throttles']} / {r['undecided_accepted']}"


def test_accepted_windows_against_brute_force() -> None:
    calls = steady(3, 0.31, 40.0, stagger=1.3)
    decide(calls, 25, 15.0)
    s = to_samples(calls)
    series = accepted_windows(s, [0], 15.0, top=3)
    t = s.sent + s.latency / 2
    t0 = float(min(s.planned.min(), s.sent.min()))
    assert len(series) == 3
    for name, ta, ca, tr, cr in series:
        k = s.key_names.index(name)
        acc = np.sort(t[(s.key == k) & (s.status == 200)])
        ref = np.sort(t[(s.key == k) & (s.status == 429)])
        assert np.allclose(ta, acc - t0) and np.allclose(tr, ref - t0)
        assert ca.tolist() == [sum(1 for u in acc if x - 15 < u <= x) for x in acc]
        assert cr.tolist() == [sum(1 for u in acc if x - 15 < u < x) for x in ref]
        assert int(ca.max()) == 25  # the accepted calls, never the 429s, reach the limit line


def test_findings_table_states_how_many_of_the_true_total_it_shows() -> None:
    from harness.report.tables import findings

    items = [{"kind": "false_throttle", "limit": "device.sendState", "op": "device.sendState", "key": f"d{i}",
              "time": 10.0 + i, "in_window": 25, "count": 30, "detail": "x"} for i in range(1000)]
    html = findings(items, 1198, 0.0)
    assert html.count("<tr>") == 1 + 200  # header row + the rows shown
    assert "The first 200 of 1,198 findings are shown; summary.json lists the first 1,000." in html
    assert "shown" not in findings(items[:3], 3, 0.0)
