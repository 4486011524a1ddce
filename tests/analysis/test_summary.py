"""summary.json: the document's shape, its figures and its verdicts, end to end from samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from analysis_synth import BASE, every, run

from harness.analysis import build_summary, integrity_block, parse_criteria, write_summary
from harness.limits import LimitsTable
from harness.record import Recorder, Samples, read_samples


def samples() -> Samples:
    return run({f"dev-{i}": every(0.31, 30.0, start=0.07 * i) for i in range(3)}, 25)  # throttles early


def test_document_shape_and_figures(tmp_path: Path) -> None:
    s = samples()
    crit = parse_criteria({"latency": {"device.sendState": {"p99": 5}}, "max_throttled_rate": 0.5}, "t")
    integ = integrity_block({"dev-0": [1, 2]}, {"dev-0": [1]})
    doc = build_summary(s, LimitsTable(), {"name": "probe-test"}, crit, integ, pacing_mode="probe")
    assert (doc["schema"], doc["version"], doc["scenario"]) == ("losant-load/summary", 1, {"name": "probe-test"})
    op = doc["operations"]["device.sendState"]
    assert op["count"] == len(s) == doc["overall"]["count"] == doc["run"]["samples"]
    assert op["throttled"] == int((s.status == 429).sum()) and op["status_counts"]["429"] == op["throttled"]
    for name, label in (("response_time_ms", "response time (from actual send)"),
                        ("corrected_latency_ms", "corrected latency (from planned send)"),
                        ("lateness_ms", "lateness (actual send - planned send)")):
        assert op[name]["label"] == label == doc["figures"][name]
        assert set(op[name]) == {"label", "p50", "p90", "p95", "p99", "p99.9", "max"}
    assert op["response_time_ms"]["p99"] == pytest.approx(10.0)
    assert doc["lateness"]["max"] == 0.0 and doc["lateness"]["share_later_than_ms"]["10"] == 0.0
    conf = doc["conformance"]
    assert conf["findings_by_kind"]["false_throttle"] == conf["findings_total"] > 0
    assert conf["limits"][0]["probe"]["onset_count"]["median"] == 25
    series = doc["series"]
    assert series["buckets"] == len(series["sent"]) == len(series["corrected_latency_ms"]["p99"])
    assert sum(series["sent"]) == len(s) and sum(series["throttled"]) == op["throttled"]
    verdicts = {v["name"]: v for v in doc["verdicts"]}
    assert verdicts["corrected latency p99 of device.sendState"]["passed"] is False  # 10 ms > 5 ms
    assert verdicts["lost writes"]["measured"] == 1 and verdicts["lost writes"]["passed"] is False
    assert doc["passed"] is False
    path = write_summary(tmp_path, doc)
    again = json.loads(path.read_text())
    assert again["overall"]["count"] == len(s) and again["passed"] is False


def test_run_folder_to_passing_summary(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, chunk_rows=64)
    op, t = rec.op_code("device.sendState"), BASE
    for i in range(600):  # 2 devices at 1/s for 300 s, 15 ms each
        k = rec.key_code(f"dev-{i % 2}")
        rec.record(op, k, t + i // 2, t + i // 2 + 0.002, 0.015, 200, 40, 0)
    rec.close()
    s = read_samples(tmp_path)
    crit = parse_criteria({"latency": {"*": {"p99": 50}}, "max_error_rate": 0.0, "min_throughput": 1.5}, "t")
    doc = build_summary(s, LimitsTable(), {"name": "ok"}, crit, pacing_mode="respect")
    assert doc["passed"] is True, doc["verdicts"]
    assert doc["overall"]["corrected_latency_ms"]["p99"] == pytest.approx(17.0, abs=1e-3)  # epoch float: ~0.2 us
    assert doc["overall"]["throughput_rps"] == pytest.approx(600 / 299.015)  # first send to last end
    assert doc["integrity"]["checked"] is False
    assert [v["status"] for v in doc["verdicts"]] == ["pass", "pass", "pass", "not checked", "pass"]
    write_summary(tmp_path, doc)


def test_empty_run_is_json_and_does_not_crash(tmp_path: Path) -> None:
    doc = build_summary(Samples.empty(), LimitsTable(), {}, None)
    write_summary(tmp_path, doc)
    assert doc["overall"]["count"] == 0 and doc["overall"]["response_time_ms"]["p99"] is None
    assert "series" not in doc


def test_stall_shows_in_the_series_where_the_calls_were_due() -> None:
    n = 400
    planned = BASE + np.arange(n) * 0.05  # 20/s for 20 s
    sent = planned.copy()
    sent[100:200] = planned[200]  # the sender stalls from t = 5 s to t = 10 s
    latency = np.full(n, 0.002)
    s = Samples(np.zeros(n), np.arange(n) % 50, planned, sent, latency, np.full(n, 200), np.zeros(n),
                np.zeros(n), op_names=("devices.get",), key_names=tuple(str(i) for i in range(50)))
    series = build_summary(s, LimitsTable(), {}, None)["series"]
    corrected = series["corrected_latency_ms"]["p99"]
    response = series["response_time_ms"]["p99"]
    assert response[6:10] == [None] * 4  # nothing was sent during the stall
    assert max(r for r in response if r is not None) == pytest.approx(2.0, abs=1e-3)
    assert corrected[5] > 4000 and corrected[12] == pytest.approx(2.0, abs=1e-3)
    assert series["sent"][10] == 120  # the backlog went out in second 10
