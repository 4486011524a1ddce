"""The MQTT judge on synthetic samples whose causes are known: findings only where the bounds prove them."""

from __future__ import annotations

import numpy as np

from harness.analysis.mqtt import analyze_mqtt, has_mqtt, merge_into_conformance
from harness.analysis.summary import build_summary
from harness.limits import LimitsTable, parse_limits
from harness.report.synthetic_mqtt import MqttLog, storm

LAT = 0.002


def _judge(log: MqttLog, table: LimitsTable | None = None, **kw: object) -> dict:
    return analyze_mqtt(log.samples(), table or LimitsTable(), **kw)  # type: ignore[arg-type]


def _kinds(out: dict) -> dict[str, int]:
    return dict(out["findings_by_kind"])


def _burst(log: MqttLog, dev: str, start: float, n: int, gap: float = 0.05) -> float:
    """n acknowledged publishes ``gap`` apart; returns the time after the last."""
    for k in range(n):
        log.publish(dev, start + k * gap, LAT)
    return start + n * gap


def test_unexplained_disconnect_is_a_finding() -> None:
    log = MqttLog()
    log.connect("d1", 0.0)
    for t in (1.0, 3.0, 5.0):
        log.publish("d1", t, LAT)
    log.disconnect("d1", 7.0, 1)
    out = _judge(log)
    assert _kinds(out) == {"mqtt_unexplained_disconnect": 1}
    assert out["disconnects"]["unexplained"] == 1 and out["undecided_total"] == 0
    assert out["findings"][0]["key"] == "d1" and out["findings"][0]["op"] == "mqtt.disconnect"


def test_disconnect_explained_by_a_31st_publish_is_not_a_finding() -> None:
    log = MqttLog()
    log.connect("d1", 0.0)
    t = _burst(log, "d1", 1.0, 30)
    log.publish("d1", t, latency=0.01, status=0)  # the 31st: dropped, no PUBACK, the connection lost
    log.disconnect("d1", t + 0.01, 1)
    out = _judge(log)
    assert out["findings_total"] == 0 and out["undecided_total"] == 0
    assert out["disconnects"]["explained_by_limit"] == 1 and out["disconnects"]["explained"] == 1
    rule = next(r for r in out["rules"] if r["limit"] == "mqtt.publishIn")
    assert rule["tested"] and rule["max_surely_in_window"] == 30


def test_disconnect_the_timing_cannot_decide_is_undecided() -> None:
    log = MqttLog()
    log.connect("d1", 0.0)
    log.publish("d1", 0.0, latency=0.5)  # decided somewhere in [0, 0.5]: in or out of the 31st's window
    _burst(log, "d1", 10.0, 29)
    log.publish("d1", 15.2, latency=0.1, status=0)
    log.disconnect("d1", 15.3, 1)
    out = _judge(log)
    assert out["findings_total"] == 0
    assert out["disconnects"]["undecided"] == 1 and out["undecided_by_kind"]["disconnects"] == 1
    # the same run with the first publish surely out of the window: now provably unexplained
    log2 = MqttLog()
    log2.connect("d1", 0.0)
    log2.publish("d1", 0.0, latency=0.001)
    _burst(log2, "d1", 10.0, 29)
    log2.publish("d1", 15.2, latency=0.1, status=0)
    log2.disconnect("d1", 15.3, 1)
    assert _kinds(_judge(log2)) == {"mqtt_unexplained_disconnect": 1}


def test_exceeded_but_not_disconnected_is_a_finding() -> None:
    log = MqttLog()
    log.connect("d1", 0.0)
    _burst(log, "d1", 1.0, 31)  # the 31st acknowledged, well inside the window
    out = _judge(log)
    assert _kinds(out) == {"mqtt_missed_disconnect": 1}
    f = out["findings"][0]
    assert f["limit"] == "mqtt.publishIn" and f["in_window"] == 30


def test_exactly_thirty_is_fine_and_a_slow_thirty_first_is_undecided() -> None:
    log = MqttLog()
    log.connect("d1", 0.0)
    _burst(log, "d1", 1.0, 30)
    assert _judge(log)["findings_total"] == 0
    log = MqttLog()
    log.connect("d1", 0.0)
    log.publish("d1", 1.0, latency=0.5)
    _burst(log, "d1", 5.0, 29)
    log.publish("d1", 16.2, LAT)  # the first may have left its window, or not
    out = _judge(log)
    assert out["findings_total"] == 0 and out["undecided_by_kind"]["messages"] == 1


def test_refusals_within_the_connection_limit_are_findings_beyond_it_are_not() -> None:
    table = parse_limits({"limits": {"mqtt.newConnections": {"count": 5}}})
    log = MqttLog()
    for i in range(3):
        log.connect(f"d{i}", i * 0.1)
    log.connect("d3", 1.0, status=1003)  # only 3 accepted in the window: the limit cannot explain it
    out = _judge(log, table)
    assert _kinds(out) == {"mqtt_false_refusal": 1}
    log = MqttLog()
    for i in range(5):
        log.connect(f"d{i}", i * 0.1)
    log.connect("d5", 1.0, status=1003)
    log.connect("d6", 1.1, status=1003)
    out = _judge(log, table)
    assert out["findings_total"] == 0
    rule = next(r for r in out["rules"] if r["limit"] == "mqtt.newConnections")
    assert rule["justified"] == 2 and rule["refused"] == 2


def test_accepted_over_the_connection_limit_is_a_finding() -> None:
    table = parse_limits({"limits": {"mqtt.newConnections": {"count": 5}}})
    log = MqttLog()
    for i in range(6):
        log.connect(f"d{i}", i * 0.1)
    out = _judge(log, table)
    assert _kinds(out) == {"mqtt_missed_refusal": 1}


def test_a_ban_explains_refusals_only_while_it_can_last() -> None:
    log = MqttLog()
    log.connect("d1", 0.0)
    t = _burst(log, "d1", 1.0, 30)
    log.publish("d1", t, latency=0.01, status=0)
    log.disconnect("d1", t + 0.01, 1)
    log.connect("d1", t + 5.0, status=1003)  # banned: 30 s for a first offence
    log.connect("d1", t + 100.0, status=1003)  # no ban lasts that long after one offence
    log.connect("d1", t + 101.0)
    out = _judge(log)
    assert _kinds(out) == {"mqtt_false_refusal": 1}
    assert out["bans"]["episodes"] == 1 and out["bans"]["refusals_only_a_ban_explains"] == 1
    assert out["findings"][0]["time"] > log.rows[0][3] + 100


def test_accepted_during_a_certain_ban_is_a_finding() -> None:
    log = MqttLog()
    log.connect("d1", 0.0)
    t = _burst(log, "d1", 1.0, 30)
    log.publish("d1", t, latency=0.01, status=0)
    log.disconnect("d1", t + 0.01, 1)
    log.connect("d1", t + 5.0)
    out = _judge(log)
    assert _kinds(out) == {"mqtt_missed_refusal": 1}
    assert out["findings"][0]["limit"] == "mqtt.ban"


def test_a_drop_on_purpose_explains_its_disconnects_and_a_second_connect_replaces() -> None:
    log = MqttLog()
    for i in range(4):
        log.connect(f"d{i}", i * 0.1)
    log.drop(5.0)
    for i in range(4):
        log.disconnect(f"d{i}", 5.01, 1)
    log.connect("e", 6.0)
    log.connect("e", 8.0)  # a second connection of the same device: the broker closes the first
    log.disconnect("e", 8.003, 1)  # seen after the new connection's CONNACK: surely replaced
    out = _judge(log)
    assert out["findings_total"] == 0 and out["undecided_total"] == 0
    assert out["disconnects"]["explained_by_drop"] == 4 and out["disconnects"]["explained"] == 5


def test_idle_past_the_keepalive_is_undecided_not_a_finding() -> None:
    log = MqttLog()
    log.connect("d1", 0.0)
    log.disconnect("d1", 200.0, 1)
    out = _judge(log, keepalive_s=60)
    assert out["findings_total"] == 0 and out["disconnects"]["undecided"] == 1


def test_oversize_and_command_limits() -> None:
    log = MqttLog()
    log.connect("d1", 0.0)
    log.publish("d1", 1.0, LAT, nbytes=300_000)  # acknowledged over the 256 KB cap
    log.connect("d2", 0.0)
    log.publish("d2", 1.0, 0.01, status=0, nbytes=300_000)
    log.disconnect("d2", 1.01, 1)
    log.connect("d3", 0.0)
    for k in range(31):  # 31 commands received within a second: publishOut missed
        log.command("d3", 1.0 + k * 0.02)
    out = _judge(log)
    assert _kinds(out) == {"mqtt_missed_disconnect": 2}
    assert {f["limit"] for f in out["findings"]} == {"mqtt.messageSize", "mqtt.publishOut"}
    assert out["disconnects"]["explained"] == 1


def test_storm_recovery_is_shaped_by_the_limit() -> None:
    table = parse_limits({"limits": {"mqtt.newConnections": {"count": 20}}})
    out = analyze_mqtt(storm(devices=60, limit=20).samples(), table)
    assert out["findings_total"] == 0 and out["undecided_total"] == 0
    (st,) = out["storms"]
    assert st["dropped"] == 60 and st["recovered"]
    assert st["least_by_limit_s"] == 30.0 and st["recovery_s"] >= st["least_by_limit_s"]
    assert max(out["series"]["new_connections"]) == 20 and out["series"]["new_connection_limit"] == 20
    assert out["connected"]["peak"] == 60 and out["bans"]["refusals_the_connection_limit_explains"] == 120


def test_summary_block_only_with_mqtt_samples_and_findings_join_the_verdict() -> None:
    log = MqttLog()
    log.connect("d1", 0.0)
    log.publish("d1", 1.0, LAT)
    log.disconnect("d1", 7.0, 1)
    s = log.samples()
    assert has_mqtt(s)
    summary = build_summary(s, LimitsTable(), {"name": "t"}, None, None, series=False)
    assert summary["mqtt"]["findings_total"] == 1
    conf = summary["conformance"]
    assert conf["findings_total"] == 1 and conf["findings_by_kind"] == {"mqtt_unexplained_disconnect": 1}
    assert conf["tested"] is True
    verdict = next(v for v in summary["verdicts"] if v["name"] == "throttle conformance findings")
    assert verdict["passed"] is False and verdict["measured"] == 1 and summary["passed"] is False
    rest = MqttLog()
    rest.add("device.sendState", "x", 0.0, LAT, 200)
    assert not has_mqtt(rest.samples())
    assert "mqtt" not in build_summary(rest.samples(), LimitsTable(), {"name": "t"}, None, None, series=False)


def test_merge_keeps_true_counts_when_the_list_is_cut() -> None:
    conf = {"findings_total": 2, "findings_by_kind": {"false_throttle": 2},
            "findings": [{"time": 5.0}, {"time": 1.0}], "undecided_total": 1, "undecided_by_kind": {"throttled": 1}}
    block = {"findings_total": 3, "findings_by_kind": {"mqtt_missed_disconnect": 3},
             "findings": [{"time": 2.0}], "undecided_total": 4, "tested": True}
    merge_into_conformance(conf, block, max_findings=2)
    assert conf["findings_total"] == 5 and len(conf["findings"]) == 2
    assert [f["time"] for f in conf["findings"]] == [1.0, 2.0]
    assert conf["undecided_total"] == 5 and conf["undecided_by_kind"] == {"throttled": 1, "mqtt": 4}


def test_many_devices_stay_quick_and_exact() -> None:
    log = MqttLog()
    for i in range(300):
        dev = f"d{i}"
        log.connect(dev, i * 0.001)
        for t in np.arange(1.0, 60.0, 5.0).tolist():
            log.publish(dev, t + i * 0.001, LAT)
        log.disconnect(dev, 61.0, 2)
    out = _judge(log)
    assert out["findings_total"] == 0 and out["publishes"]["sent"] == 300 * 12
    assert out["disconnects"]["by_reason"] == {"closed by the client": 300}


def test_publishes_off_any_known_connection_leave_disconnects_undecided() -> None:
    log = MqttLog()
    log.connect("gw", 0.0)
    log.publish("p1", 1.0, LAT)  # a peripheral's state keyed by its own id: which connection carried it?
    log.disconnect("gw", 5.0, 1)
    out = _judge(log)
    assert out["findings_total"] == 0 and out["disconnects"]["undecided"] == 1


def test_respect_mode_judges_the_pacer_too() -> None:
    table = parse_limits({"limits": {"mqtt.newConnections": {"count": 2}}})
    log = MqttLog()
    log.connect("d1", 0.0)
    t = _burst(log, "d1", 1.0, 30)
    log.publish("d1", t, latency=0.01, status=0)
    log.disconnect("d1", t + 0.01, 1)  # a rate disconnect: right by the broker, wrong by the pacer
    log.connect("d2", 0.1)
    log.connect("d3", 0.2, status=1003)  # justified by the limit, still a pacing failure
    assert _judge(log, table)["findings_total"] == 0
    out = _judge(log, table, pacing_mode="respect")
    assert _kinds(out) == {"mqtt_limited_while_respecting": 2}
    assert out["disconnects"]["limited_while_respecting"] == 1 and out["bans"]["refusals_while_respecting"] == 1


def test_an_oversize_disconnect_bans_nothing() -> None:
    log = MqttLog()
    log.connect("d1", 0.0)
    log.publish("d1", 1.0, 0.01, status=0, nbytes=300_000)
    log.disconnect("d1", 1.01, 1)
    log.connect("d1", 2.0)  # accepted at once: right, the size cap disconnects without a ban
    log.connect("d2", 0.0)
    log.publish("d2", 1.0, 0.01, status=0, nbytes=300_000)
    log.disconnect("d2", 1.01, 1)
    log.connect("d2", 2.0, status=1003)  # refused: no ban and no connection limit can explain it
    out = _judge(log)
    assert _kinds(out) == {"mqtt_false_refusal": 1} and out["disconnects"]["explained_by_limit"] == 2


def test_a_loss_the_drop_caused_is_not_judged_and_one_shortly_after_it_is() -> None:
    """Reason 5 is labelled from the drop's answer (the devices the broker closed), so it is not judged;
    a rate offence right after the drop keeps reason 1 and is judged (explained: a 31st message, then a ban)."""
    log = MqttLog()
    log.connect("d0", 0.0)
    log.drop(5.0, latency=0.01)
    log.disconnect("d0", 5.005, 5)
    log.connect("d1", 5.1)  # after the drop's answer
    t = _burst(log, "d1", 5.2, 30, gap=0.02)
    log.publish("d1", t, latency=0.01, status=0)
    log.disconnect("d1", t + 0.01, 1)
    log.connect("d1", t + 1.0, status=1003)  # banned
    out = _judge(log)
    assert out["findings_total"] == 0 and out["disconnects"]["explained_by_limit"] == 1
    assert out["disconnects"]["broker_closed_judged"] == 1 and out["bans"]["refusals_only_a_ban_explains"] == 1
    assert out["disconnects"]["by_reason"]["dropped on purpose (storm)"] == 1


def test_connections_shorter_than_a_bucket_show_in_the_per_bucket_peak() -> None:
    """A device connected 0.3 s inside a second is missed by the count at the second's end, not by the peak."""
    log = MqttLog()
    log.connect("d1", 0.0)  # held to the end
    log.connect("d2", 2.2)
    log.disconnect("d2", 2.5, 1)
    log.connect("d3", 2.3)
    log.disconnect("d3", 2.6, 1)
    log.publish("d1", 6.0, LAT)
    series = _judge(log)["series"]
    assert series["bucket_s"] == 1.0
    peak, at_end = series["connected_peak"], series["connected"]
    assert len(peak) == len(at_end)
    assert peak[2] == 3 and at_end[2] == 1  # d2 and d3 overlapped with d1 in [2, 3)
    assert peak[0] == 1 and peak[1] == 1 and peak[3] == 1
    assert all(p >= e for p, e in zip(peak, at_end))
