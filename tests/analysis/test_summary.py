"""summary.json: the document's shape, its figures and its verdicts, end to end from samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from analysis_synth import BASE, every, run

from harness.analysis import build_summary, integrity_block, write_summary
from harness.scenario.criteria import parse_criteria
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
    # 15 calls per 15 s window at most (16 possible): no key came within 10% of the limit of 30,
    # so the conformance criterion is "not checked" (not tested), not a pass
    assert doc["conformance"]["tested"] is False
    assert [v["status"] for v in doc["verdicts"]] == ["pass", "pass", "pass", "not checked", "not checked"]
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


# -- the steady window: throughput after the ramp-up, before the stop ------------------------------

def ramp_steady_tail() -> Samples:
    """A 60 s run: 200 start-up calls in the first 4 s (users starting), 10 calls/s from 5 s to
    55 s (the plan), 150 stop-time calls in the last second (users leaving)."""
    rng = np.random.default_rng(11)
    ramp = np.sort(rng.uniform(0.0, 4.0, 200))
    ramp[0] = 0.0  # second 0 of the run (t0) is BASE
    steady = 5.0 + np.arange(500) * 0.1  # 5.0 .. 54.9
    tail = np.sort(rng.uniform(59.0, 59.9, 150))
    sent = BASE + np.concatenate((ramp, steady, tail))
    n = len(sent)
    op = np.concatenate((np.ones(200), np.zeros(500), np.ones(150))).astype(np.uint16)
    return Samples(op, np.zeros(n, np.int32), sent.copy(), sent, np.full(n, 0.01), np.full(n, 200, np.int16),
                   np.full(n, 20, np.int64), np.zeros(n, np.uint8), op_names=("device.sendState", "auth.device"),
                   key_names=("dev-0",))


def test_steady_window_from_measured_ramp_and_stop_times() -> None:
    s = ramp_steady_tail()
    crit = parse_criteria({"min_throughput": 9.0}, "t")
    hints = {"started": BASE - 0.5, "spawned": BASE + 4.5, "stopping": BASE + 58.0, "planned_duration": 60.0}
    doc = build_summary(s, LimitsTable(), {"name": "steady"}, crit, steady=hints)
    window = doc["overall"]["steady_window"]
    assert (window["start"], window["end"]) == (BASE + 4.5, BASE + 58.0)
    assert window["start_offset_s"] == pytest.approx(4.5) and window["end_offset_s"] == pytest.approx(58.0)
    assert window["duration_s"] == pytest.approx(53.5) and window["requests"] == 500 and not window["whole_run"]
    assert window["how"] == "all users started .. users told to stop"
    assert doc["overall"]["steady_throughput_rps"] == pytest.approx(500 / 53.5)
    assert doc["operations"]["device.sendState"]["steady_throughput_rps"] == pytest.approx(500 / 53.5)
    assert doc["operations"]["auth.device"]["steady_throughput_rps"] == 0.0
    # the whole-run figure is kept (and is inflated by the ramp-up and the stop)
    assert doc["overall"]["throughput_rps"] == pytest.approx(850 / (float(s.sent.max() - BASE) + 0.01))
    verdict = {v["name"]: v for v in doc["verdicts"]}["throughput"]
    assert verdict["measured"] == pytest.approx(500 / 53.5) and verdict["passed"] is True
    assert verdict["detail"].startswith("over the steady window 4.5 s .. 58.0 s (")


def test_steady_window_from_the_plan_when_nothing_was_measured() -> None:
    s = ramp_steady_tail()
    crit = parse_criteria({"min_throughput": 12.0}, "t")  # the whole run's 14 req/s would pass; the plan's 10 fails
    hints = {"started": BASE, "planned_duration": 58.5, "ramp_s": 4.5, "ramp_note": "225 users at 50/s"}
    doc = build_summary(s, LimitsTable(), {"name": "steady"}, crit, steady=hints)
    window = doc["overall"]["steady_window"]
    assert (window["start_offset_s"], window["end_offset_s"]) == (pytest.approx(4.5), pytest.approx(58.5))
    assert window["how"] == ("run start + 4.5 s planned ramp-up (225 users at 50/s) .. "
                             "run start + 58.5 s planned duration")
    assert doc["overall"]["throughput_rps"] > 12.0
    verdict = {v["name"]: v for v in doc["verdicts"]}["throughput"]
    assert verdict["measured"] == pytest.approx(500 / 54.0) and verdict["passed"] is False


def test_steady_window_falls_back_to_the_whole_run() -> None:
    s = ramp_steady_tail()
    doc = build_summary(s, LimitsTable(), {}, None)  # no hints: nothing known of ramp-up or stop
    window = doc["overall"]["steady_window"]
    assert window["whole_run"] and window["requests"] == len(s) and "no ramp-up or stop times" in window["how"]
    assert doc["overall"]["steady_throughput_rps"] == pytest.approx(doc["overall"]["throughput_rps"])
    # a ramp-up as long as the run: the whole run, and it says why
    short = build_summary(s, LimitsTable(), {}, None, steady={"spawned": BASE + 59.5, "stopping": BASE + 59.9})
    assert short["overall"]["steady_window"]["whole_run"]
    assert "shorter than 1 s" in short["overall"]["steady_window"]["how"]
    assert build_summary(Samples.empty(), LimitsTable(), {}, None)["overall"]["steady_window"]["requests"] == 0


def test_steady_hints_read_the_run_folder(tmp_path: Path) -> None:
    from harness.judge import steady_hints

    meta = {"started": "2026-01-01T00:00:00.000+00:00", "spawning_complete": "2026-01-01T00:00:04.500+00:00",
            "stopping": "2026-01-01T00:01:00.000+00:00", "duration": 60, "users": 225, "spawn_rate": 50}
    hints = steady_hints(tmp_path, meta, {})
    assert hints["spawned"] - hints["started"] == pytest.approx(4.5)
    assert hints["stopping"] - hints["started"] == pytest.approx(60.0)
    assert hints["ramp_s"] == pytest.approx(4.5) and hints["ramp_note"] == "225 users at 50/s"
    # an old folder: no measured times, no user count, a scenario that does not load
    old = steady_hints(tmp_path, {"started": "2026-01-01T00:00:00.000+00:00", "duration": 15}, {"ramp_up": 50})
    assert set(old) == {"started", "planned_duration"}


def test_steady_hints_plan_the_ramp_from_the_scenario(tmp_path: Path) -> None:
    import shutil

    from harness.judge import steady_hints

    shutil.copy(Path(__file__).parents[2] / "scenarios" / "smoke.yaml", tmp_path / "scenario.yaml")
    hints = steady_hints(tmp_path, {"started": 1_700_000_000.0, "duration": 15}, {"ramp_up": 50})
    assert hints["ramp_note"] == "206 users at 50/s"  # 200 sensors + 3 gateways + 3 operators
    assert hints["ramp_s"] == pytest.approx(206 / 50)
