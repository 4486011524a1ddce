"""The MQTT probe block on synthetic probe rounds whose outcome is known: the verdict follows the judge's
findings and undecided counts, the onset is reported as bounds, the ban steps are counted."""

from __future__ import annotations

from harness.analysis.mqtt import analyze_mqtt, probe_statement
from harness.limits import LimitsTable
from harness.report.synthetic_mqtt import MqttLog

LAT = 0.002
GAP = 0.007  # a round's messages: each sent after the previous PUBACK


def _probe(log: MqttLog, **kw: object) -> dict:
    out = analyze_mqtt(log.samples(), LimitsTable(), pacing_mode="probe", probe_limits=("mqtt.publishIn",), **kw)
    return out["probe"]  # type: ignore[no-any-return]


def _round(log: MqttLog, dev: str, start: float, n: int, last_lost: bool = True) -> float:
    """n messages back to back, the last one unanswered when ``last_lost``; returns its send time."""
    t = start
    for k in range(n):
        lost = last_lost and k == n - 1
        log.publish(dev, t, LAT, status=0 if lost else 200)
        if not lost:
            t += GAP
    return t


def test_a_round_disconnected_at_the_31st_then_refused_in_the_ban_and_accepted_after_it_conforms() -> None:
    log = MqttLog()
    log.connect("d1", 0.0)
    t = _round(log, "d1", 1.0, 31)
    log.disconnect("d1", t + 0.003, 1)
    log.connect("d1", t + 15.0, status=1003)  # during the 30 s ban
    log.connect("d1", t + 30.3)  # after it
    p = _probe(log)
    assert p["verdict"] == "conforms" and p["note"] == "", p
    assert p["over_the_count"] == p["disconnected_at_the_limit"] == p["onset_exact"] == 1
    assert p["onset"] == {"min": 30, "max": 30}
    assert p["ban"]["refused_during"] == 1 and p["ban"]["reconnected_after"] == 1
    (episode,) = p["episodes"]
    assert episode["state"] == "conforms" and episode["ban_s"] == {"least": 30.0, "most": 30.0}
    assert "conforms" in probe_statement(p) and "after 30 accepted messages" in probe_statement(p)


def test_the_31st_acknowledged_is_a_finding() -> None:
    log = MqttLog()
    log.connect("d1", 0.0)
    _round(log, "d1", 1.0, 31, last_lost=False)
    p = _probe(log)
    assert p["verdict"] == "findings" and p["not_disconnected"] == 1 and p["findings"] == 1


def test_a_disconnect_before_the_count_is_a_finding() -> None:
    log = MqttLog()
    log.connect("d1", 0.0)
    t = _round(log, "d1", 1.0, 21)  # the 21st dropped: the broker counted 20
    log.disconnect("d1", t + 0.003, 1)
    p = _probe(log)
    assert p["verdict"] == "findings" and p["disconnected_early"] == 1
    assert p["episodes"][0]["state"] == "finding" and p["episodes"][0]["onset"] == {"sure": 20, "could": 20}


def test_a_reconnect_accepted_in_the_ban_and_one_refused_after_it_are_findings() -> None:
    log = MqttLog()
    log.connect("d1", 0.0)
    t = _round(log, "d1", 1.0, 31)
    log.disconnect("d1", t + 0.003, 1)
    log.connect("d1", t + 15.0)  # accepted during the ban
    assert _probe(log)["ban"]["accepted_during"] == 1
    log2 = MqttLog()
    log2.connect("d1", 0.0)
    t = _round(log2, "d1", 1.0, 31)
    log2.disconnect("d1", t + 0.003, 1)
    log2.connect("d1", t + 31.0, status=1003)  # refused after the longest ban of a first offence
    p = _probe(log2)
    assert p["verdict"] == "findings" and p["ban"]["refused_after"] == 1


def test_timing_that_cannot_decide_is_undecided_and_no_round_over_the_count_is_not_tested() -> None:
    log = MqttLog()
    log.connect("d1", 0.0)
    log.publish("d1", 0.0, latency=0.5)  # decided anywhere in [0, 0.5]: in or out of the last one's window
    t = _round(log, "d1", 15.0, 30)  # 29 acknowledged, the 30th dropped at about 15.2
    log.disconnect("d1", t + 0.003, 1)
    assert _probe(log)["verdict"] == "undecided"
    quiet = MqttLog()
    quiet.connect("d1", 0.0)
    _round(quiet, "d1", 1.0, 10, last_lost=False)
    p = _probe(quiet)
    assert p["verdict"] == "not tested" and "no message went over the count" in p["note"]


def test_no_probe_block_outside_a_probe_of_the_row() -> None:
    log = MqttLog()
    log.connect("d1", 0.0)
    _round(log, "d1", 1.0, 5, last_lost=False)
    assert "probe" not in analyze_mqtt(log.samples(), LimitsTable(), pacing_mode="respect")
    assert "probe" not in analyze_mqtt(log.samples(), LimitsTable(), pacing_mode="probe",
                                       probe_limits=("device.sendState",))
