"""The report's throttle section: the rule, not-tested runs, probe results and the accepted-per-window chart."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
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


def _mixed_run() -> Samples:
    """A send-state probe at the documented 30, one application export refused while its first job runs
    (a correct target, jobs of 2 s), one file upload over the cap accepted (a finding), and a time series
    query; everything else of the documented table is left undriven."""
    calls = steady(2, 0.31, 40.0)
    decide(calls, 30, 15.0)
    s = to_samples(calls)
    t = float(s.sent.max()) + 1.0
    extra = [("application.export", "app-1", t, 202, 60), ("application.export", "app-1", t + 0.5, 429, 80),
             ("files.post", "file-over@10486784", t + 1.0, 201, 10 * 1024 * 1024 + 1024),
             ("data.timeSeriesQuery", "tsq", t + 2.0, 200, 5000)]
    ops = list(s.op_names) + sorted({e[0] for e in extra})
    keys = list(s.key_names) + list(dict.fromkeys(e[1] for e in extra))
    n = len(extra)
    return Samples(np.concatenate([s.op, [ops.index(e[0]) for e in extra]]),
                   np.concatenate([s.key, [keys.index(e[1]) for e in extra]]),
                   np.concatenate([s.planned, [e[2] for e in extra]]), np.concatenate([s.sent, [e[2] for e in extra]]),
                   np.concatenate([s.latency, [0.01] * n]), np.concatenate([s.status, [e[3] for e in extra]]),
                   np.concatenate([s.nbytes, [e[4] for e in extra]]),
                   np.concatenate([s.error, [2 if e[3] == 429 else 0 for e in extra]]),
                   op_names=tuple(ops), key_names=tuple(keys))


def test_the_throttle_section_lists_every_documented_row(tmp_path: Path) -> None:
    from harness.analysis.documented import ROWS
    from harness.report.junit import junit_xml

    folder = write_samples_run(tmp_path / "mixed", _mixed_run(), "probe")
    summary = json.loads((folder / "summary.json").read_text())
    conf = summary["conformance"]
    rows = {r["row"]: r for r in conf["documented_rows"]}
    assert sorted(rows) == list(range(1, 19)) and len(ROWS) == 18
    page = parse(write_report(folder))
    shown = {a["data-row"]: (a["data-verdict"], cells) for a, cells in page.rows if "data-row" in a}
    assert sorted(shown, key=int) == [str(i) for i in range(1, 19)]
    for number, row in rows.items():
        verdict, cells = shown[str(number)]
        assert verdict == row["verdict"] and cells[1] == row["name"] and cells[5] == f"{row['calls']:,}"
    # what this run did to each kind of row
    assert rows[1]["verdict"] == "conforms" and rows[1]["driven"] == "yes" and rows[1]["refused"] > 0
    assert rows[11]["driven"] == "partly" and rows[11]["verdict"] == "undecided"  # no job length stated: see below
    assert rows[11]["statuses"] == {"202": 1, "429": 1} and rows[11]["refused"] == 1
    assert "jobs last" in rows[11]["judged"] and "conservative" in rows[11]["judged"]
    assert rows[11]["basis"] == "jobs up to 3600 s (assumed); missed not judged"
    assert shown["11"][1][-1].endswith("jobs up to 3600 s (assumed); missed not judged")  # said on the row
    assert rows[18]["verdict"] == "findings" and rows[18]["findings_by_kind"] == {"accepted_over_cap": 1}
    assert rows[16]["verdict"] == "not tested"
    assert all(rows[n]["verdict"] == "not driven" and shown[str(n)][0] == "not driven"
               for n in (2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 17))
    assert conf["rows_summary"] == {"rows": 18, "driven": 4, "fully_driven": 3,
                                    "by_verdict": {"conforms": 1, "findings": 1, "undecided": 1, "not tested": 1,
                                                   "not driven": 14}}
    text = " ".join(page.text)
    assert "18 documented rows: 4 driven by this run (3 with every operation)" in text
    sizes = {a["data-size"]: cells for a, cells in page.rows if "data-size" in a}
    assert sizes["files.post"][8] == "1 accepted over cap"
    assert {a["data-concurrency"] for a, _ in page.rows if "data-concurrency" in a} == {"application.export"}
    # one verdict everywhere: the finding fails the run, the criterion, and the row's junit case
    assert conf["findings_total"] == 1 and summary["passed"] is False
    suite = ET.fromstring(junit_xml(summary)).find("testsuite")
    cases = {c.get("name"): c for c in suite.iter("testcase") if c.get("classname", "").endswith(".limits")}
    assert set(cases) == {"row 1: Device: Send State", "row 11: " + rows[11]["name"],
                          "row 16: Data: Time Series Query", "row 18: File upload"}  # the rows this run drove
    assert cases["row 18: File upload"].find("failure") is not None
    assert cases["row 16: Data: Time Series Query"].find("skipped").get("message").startswith("not tested")
    assert cases["row 1: Device: Send State"].find("failure") is None


def test_an_emulator_target_judges_jobs_with_its_job_seconds(tmp_path: Path) -> None:
    samples = _mixed_run()
    info = {"name": "emu", "target_kind": "emulator"}
    summary = build_summary(samples, LimitsTable(), info, None, None, pacing_mode="probe", series=False)
    rows = {r["row"]: r for r in summary["conformance"]["documented_rows"]}
    assert rows[11]["verdict"] == "conforms"  # the 429 came 0.5 s into a 2 s job: justified
    assert summary["conformance"]["job_length"] == {"min_s": 2.0, "max_s": 2.0,
                                                    "basis": "the emulator's job_seconds (limits table)"}
    stated = build_summary(samples, LimitsTable(), {**info, "job_seconds": {"min": 0.1, "max": 0.2}}, None, None,
                           pacing_mode="probe", series=False)
    assert stated["conformance"]["findings_by_kind"] == {"false_throttle": 1, "accepted_over_cap": 1}
