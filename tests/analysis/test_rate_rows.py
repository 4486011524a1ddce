"""Rate rows beyond the four device/event ones: long windows (1 per 5 min, 1 per 15 min), counts of 100,
and keys that are buttons, topics, applications and notebooks, through the same judge."""

from __future__ import annotations

import numpy as np
import pytest
from analysis_synth import every, run

from harness.analysis.conformance import check_conformance
from harness.limits import LimitsTable
from harness.record import Samples

TABLE = LimitsTable()


def only(result, name):  # type: ignore[no-untyped-def]
    (report,) = [r for r in result.limits if r.limit == name]
    return report


def row(result, number):  # type: ignore[no-untyped-def]
    return {d["row"]: d for d in result.documented_rows}[number]


@pytest.mark.parametrize(("op", "window", "number", "key"), [
    ("embeddedDeployments.export", 300.0, 9, "app-1"),
    ("notebook.requestInputDataExport", 900.0, 10, "notebook-1"),
])
def test_one_call_per_long_window(op: str, window: float, number: int, key: str) -> None:
    # a call every window/3 for 3 windows: the first of each window accepted, the two after it refused
    times = every(window / 3 + 0.7, 3 * window)
    right = check_conformance(run({key: times}, 1, window, op=op), TABLE, "probe")
    assert right.findings_total == 0
    rep = only(right, op)
    assert (rep.count, rep.window, rep.key) == (1, window, TABLE.by_name(op).key)
    assert rep.justified_throttles == rep.throttled > 0 and rep.tested
    assert row(right, number)["verdict"] == "conforms"
    # a target counting a shorter window (1 per window / 2) accepts calls the documented window refuses
    short = check_conformance(run({key: times}, 1, window / 2, op=op), TABLE, "probe")
    assert short.findings_by_kind.get("missed_throttle", 0) > 0 and "false_throttle" not in short.findings_by_kind
    assert all(f.window == window and f.count == 1 for f in short.findings)
    # a target counting a longer window refuses calls the documented window allows
    long = check_conformance(run({key: times}, 1, window * 2, op=op), TABLE, "probe")
    assert long.findings_by_kind.get("false_throttle", 0) > 0 and "missed_throttle" not in long.findings_by_kind
    assert row(long, number)["verdict"] == "findings"


def test_notebooks_are_separate_keys() -> None:
    s = run({"notebook-a": [0.0, 400.0], "notebook-b": [1.0, 401.0]}, 1, 900.0, op="notebook.requestInputDataExport")
    result = check_conformance(s, TABLE, "probe")
    rep = only(result, "notebook.requestInputDataExport")
    assert (rep.keys, rep.accepted, rep.throttled, rep.keys_throttled) == (2, 2, 2, 2)
    assert result.findings_total == 0 and rep.justified_throttles == 2


def test_virtual_button_100_per_10_s_per_button() -> None:
    buttons = {f"flow-{i}:btn": every(0.08, 30.0, start=0.01 * i) for i in range(3)}  # 12.5/s each, over 10/s
    right = check_conformance(run(buttons, 100, 10.0, op="flow.pressVirtualButton"), TABLE, "probe")
    rep = only(right, "flow.pressVirtualButton")
    assert right.findings_total == 0 and rep.keys == 3 and rep.keys_throttled == 3
    assert rep.max_accepted_in_window == 100 and rep.probe["onset_count"]["median"] == 100
    early = check_conformance(run(buttons, 90, 10.0, op="flow.pressVirtualButton"), TABLE, "probe")
    assert early.findings_by_kind.get("false_throttle", 0) >= 3
    late = check_conformance(run(buttons, 110, 10.0, op="flow.pressVirtualButton"), TABLE, "probe")
    assert late.findings_by_kind.get("missed_throttle", 0) >= 30  # 10 per button in each first window
    assert row(late, 6)["verdict"] == "findings" and row(late, 6)["driven"] == "yes"


def test_mqtt_publish_per_topic() -> None:
    topics = {f"app-1:sensors/{i}": every(0.31, 40.0, start=0.05 * i) for i in range(4)}
    right = check_conformance(run(topics, 30, 15.0, op="application.mqttPublishMessage"), TABLE, "probe")
    assert right.findings_total == 0 and only(right, "application.mqttPublishMessage").keys == 4
    # a target counting per application (all topics on one counter) refuses far below 30 per topic
    merged = run({"app-1": sorted(t for ts in topics.values() for t in ts)}, 30, 15.0,
                 op="application.mqttPublishMessage")
    per_topic = Samples(merged.op, np.array([list(topics).index(k) for k in _topic_of(topics, merged)]),
                        merged.planned, merged.sent, merged.latency, merged.status, merged.nbytes, merged.error,
                        op_names=merged.op_names, key_names=tuple(topics))
    wrong = check_conformance(per_topic, TABLE, "probe")
    assert wrong.findings_by_kind.get("false_throttle", 0) > 0


def _topic_of(topics: dict[str, list[float]], merged: Samples) -> list[str]:
    """Which topic each call of the merged (one counter) run was for, by its planned time."""
    from analysis_synth import BASE

    owner = {round(t, 6): name for name, ts in topics.items() for t in ts}
    return [owner[round(p - BASE, 6)] for p in merged.planned.tolist()]


def test_events_key_by_application_stays_judged() -> None:
    s = run({"app-1": every(0.9, 40.0)}, 15, 15.0, op="events.post")
    result = check_conformance(s, TABLE, "probe")
    assert result.findings_total == 0 and only(result, "events.post").key == "application"
