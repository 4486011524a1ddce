"""``pacing.probe.limits`` may name the broker's per-topic row when the fleet has MQTT devices."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.scenario import parse_scenario


def _scenario(transport: str, limits: list[str]) -> dict:
    return {"name": "p", "duration": "10s",
            "fleet": {"classes": [{"name": "m", "count": 1, "transport": transport, "report_interval": "1m"}]},
            "pacing": {"throttle": "probe", "probe": {"limits": limits}}}


def test_mqtt_publish_in_is_a_probe_limit_of_an_mqtt_fleet() -> None:
    s = parse_scenario(_scenario("mqtt", ["mqtt.publishIn"]), "p.yaml")
    assert s.pacing.probe_limits == ("mqtt.publishIn",)


def test_without_mqtt_devices_or_for_a_row_no_probe_pushes_the_error_says_why() -> None:
    with pytest.raises(ConfigError) as err:
        parse_scenario(_scenario("rest", ["mqtt.publishIn"]), "p.yaml")
    assert "p.yaml: pacing.probe.limits[0]: 'mqtt.publishIn': MQTT devices push it; expected a fleet class with " \
           "transport: mqtt" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_scenario(_scenario("mqtt", ["mqtt.newConnections"]), "p.yaml")
    assert "'mqtt.newConnections' is not a limit" in str(err.value) and "mqtt.publishIn" in str(err.value)
