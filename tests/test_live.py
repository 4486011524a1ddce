"""The live Throttles tab's figures, computed from recent samples."""

from harness.limits import LimitsTable
from harness.live import live_snapshot
from harness.record import Recorder


def test_busiest_keys_and_recent_percentiles() -> None:
    rec = Recorder(None)
    op = rec.op_code("device.sendState")
    get = rec.op_code("device.get")
    now = 1000.0
    for i in range(20):  # dev-a: 20 calls in the last 15 s, the last two throttled
        rec.record(op, rec.key_code("dev-a"), now - 14 + i * 0.5, now - 14 + i * 0.5, 0.002, 429 if i >= 18 else 200, 10, 0)
    for i in range(5):  # dev-b: 5 recent calls and 10 old ones outside the window
        rec.record(op, rec.key_code("dev-b"), now - 1 - i, now - 1 - i, 0.001, 200, 10, 0)
    for i in range(10):
        rec.record(op, rec.key_code("dev-b"), now - 100 - i, now - 100 - i, 0.001, 200, 10, 0)
    rec.record(get, rec.key_code("dev-a"), now - 2, now - 1.9, 0.05, 200, 10, 0)  # 100 ms late, 50 ms response
    snap = live_snapshot(rec.samples(), LimitsTable(), now=now)
    (state,) = [lim for lim in snap["limits"] if lim["name"] == "device.sendState"]
    assert state["count"] == 30 and state["window"] == 15.0
    assert state["busiest"] == [{"key": "dev-a", "calls": 20}, {"key": "dev-b", "calls": 5}]
    assert state["throttled"] == 2 and snap["throttled_total"] == 2
    assert abs(snap["corrected_p99_ms"]["device.get"] - 150.0) < 1e-6
    assert abs(snap["lateness_p99_ms"] - 100.0) < 1e-6


def test_empty_run_has_an_empty_snapshot() -> None:
    snap = live_snapshot(Recorder(None).samples(), LimitsTable(), now=1.0)
    assert snap["limits"] == [] and snap["throttled_total"] == 0


def test_history_counts_calls_and_429s_per_step_oldest_first() -> None:
    rec = Recorder(None)
    op = rec.op_code("device.sendState")
    now = 1000.0
    for t, status in ((now - 290, 200), (now - 200, 429), (now - 200, 200), (now - 5, 200), (now - 400, 200)):
        rec.record(op, rec.key_code("dev-a"), t, t, 0.001, status, 10, 0)
    snap = live_snapshot(rec.samples(), LimitsTable(), now=now)
    (state,) = [lim for lim in snap["limits"] if lim["name"] == "device.sendState"]
    hist = state["history"]
    assert hist["step"] == 15.0 and len(hist["calls"]) == 20  # the last 5 minutes; the call 400 s ago is older
    assert sum(hist["calls"]) == 4 and hist["calls"][0] == 1 and hist["calls"][-1] == 1
    assert sum(hist["throttled"]) == 1 and hist["throttled"][6] == 1  # 200 s ago: bar 6 of 0..19


def test_the_tab_shows_names_next_to_ids_and_a_sparkline() -> None:
    from harness.webui import rows, sparkline

    snap = {"limits": [{"name": "device.sendState", "count": 30, "window": 15, "throttled": 1,
                        "busiest": [{"key": "64f0aa", "name": "sensor-7", "calls": 12}],
                        "history": {"step": 15.0, "calls": [0, 3, 6, 12], "throttled": [0, 0, 1, 0]}}]}
    table = rows(snap)
    assert any(r["key"] == "sensor-7 (64f0aa)" for r in table)
    (hist,) = [r for r in table if r["what"].startswith("  ↳ last")]
    assert hist["key"] == sparkline([0, 3, 6, 12]) == " ▂▄█" and hist["throttled"] == "  █ "
