"""The report's MQTT section, junit.xml and the terminal say what summary.json's ``mqtt`` block says."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.console import format_summary
from harness.report import write_report
from harness.report.junit import junit_xml
from harness.report.synthetic import Shape
from harness.report.synthetic import write_run as write_rest_run
from harness.report.synthetic_mqtt import MqttLog, storm, write_mqtt_run

LIMITS = {"limits": {"mqtt.newConnections": {"count": 20}}}


def _section(html: str) -> str:
    m = re.search(r'<section id="mqtt">.*?</section>', html, re.S)
    assert m, "no MQTT section"
    return m.group(0)


def test_storm_section_figures_equal_summary(tmp_path: Path) -> None:
    run = write_mqtt_run(tmp_path / "run", storm(devices=60, limit=20), LIMITS)
    html = write_report(run).read_text(encoding="utf-8")
    block = json.loads((run / "summary.json").read_text())["mqtt"]
    sec = _section(html)
    assert '<a href="#mqtt">MQTT</a>' in html
    (st,) = block["storms"]
    assert f"{st['recovery_s']:,.1f} s" in sec and f"{st['least_by_limit_s']:,.1f} s" in sec
    assert "data:image/svg+xml;base64," in sec  # the connections chart, self-contained
    for reason, n in block["disconnects"]["by_reason"].items():
        assert f"<td>{reason}</td><td class=\"n\">{n:,}</td>" in sec
    assert f"<span>{block['connected']['peak']:,}</span>" in sec
    assert 'id="mqtt-status">No MQTT finding' in sec
    assert f"<span>{block['findings_total']:,} / {block['undecided_total']:,}</span>" in sec


def test_findings_show_as_true_counts_everywhere(tmp_path: Path) -> None:
    log = MqttLog()
    for i in range(3):
        dev = f"d{i}"
        log.connect(dev, i * 0.1)
        log.publish(dev, 1.0, 0.002)
        log.disconnect(dev, 5.0, 1)  # closed by the broker with nothing to explain it
    run = write_mqtt_run(tmp_path / "run", log)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["mqtt"]["findings_total"] == 3 and summary["conformance"]["findings_total"] == 3
    assert summary["passed"] is False
    sec = _section(write_report(run).read_text(encoding="utf-8"))
    assert "3 MQTT findings: 3 mqtt unexplained disconnect" in sec
    assert sec.count('<td class="bad">mqtt_unexplained_disconnect</td>') == 3
    root = ET.fromstring(junit_xml(summary))
    case = next(c for c in root.iter("testcase") if c.get("name") == "broker-side disconnects")
    fail = case.find("failure")
    assert fail is not None and fail.get("message") == "3 findings"
    text = format_summary(summary, run)
    assert "broker judge: 3 findings (mqtt_unexplained_disconnect 3)" in text
    assert "throttle conformance: 3 findings" in text and " - FAILED" in text


def test_no_mqtt_samples_no_section(tmp_path: Path) -> None:
    run = write_rest_run(tmp_path / "rest", Shape(devices=5, duration=5.0))
    html = write_report(run).read_text(encoding="utf-8")
    assert 'id="mqtt"' not in html and 'href="#mqtt"' not in html
    summary = json.loads((run / "summary.json").read_text())
    assert "mqtt" not in summary
    assert not any((c.get("classname") or "").endswith(".mqtt") for c in ET.fromstring(junit_xml(summary)).iter("testcase"))


def test_junit_cases_add_up_to_the_findings_total(tmp_path: Path) -> None:
    from harness.report.junit import mqtt_cases

    log = MqttLog()
    log.connect("a", 0.0)
    log.disconnect("a", 5.0, 1)  # unexplained
    log.connect("b", 0.0)
    for k in range(31):  # the 31st acknowledged: missed
        log.publish("b", 1.0 + k * 0.05, 0.002)
    log.connect("c", 0.0)
    for k in range(30):
        log.publish("c", 1.0 + k * 0.05, 0.002)
    log.publish("c", 2.6, 0.01, status=0)
    log.disconnect("c", 2.61, 1)
    log.connect("c", 5.0)  # accepted while surely banned
    log.connect("d", 20.0, status=1003)  # refused far from the limit, never disconnected: false
    for pacing in ("off", "respect"):
        run = write_mqtt_run(tmp_path / pacing, log, pacing=pacing)
        summary = json.loads((run / "summary.json").read_text())
        cases = mqtt_cases(summary)
        assert sum(found for _, found, _, _ in cases) == summary["mqtt"]["findings_total"] >= 4
        failures = [c for c in ET.fromstring(junit_xml(summary)).iter("testcase")
                    if (c.get("classname") or "").endswith(".mqtt") and c.find("failure") is not None]
        assert sum(int(str(c.find("failure").get("message")).split()[0]) for c in failures  # type: ignore[union-attr]
                   ) == summary["conformance"]["findings_total"]
