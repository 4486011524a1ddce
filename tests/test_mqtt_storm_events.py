"""The scenario's ``events`` (a reconnect storm at a stated time): parsed, checked, and given a user."""

from __future__ import annotations

from typing import Any

import pytest

from harness.errors import ConfigError
from harness.scenario import parse_scenario, user_counts


def _scenario(events: Any, kind: str = "emulator", transport: str = "mqtt") -> dict[str, Any]:
    target: dict[str, Any] = {"kind": kind}
    if kind == "live":
        target.update(url="https://api.losant.com", auth="token")
    return {"name": "s", "target": target, "duration": "60s",
            "fleet": {"classes": [{"name": "m", "count": 3, "transport": transport, "report_interval": "5s"}]},
            "events": events}


def test_events_parse_sorted_and_round_trip() -> None:
    s = parse_scenario(_scenario([{"at": "40s", "action": "drop_mqtt"}, {"at": 10, "action": "drop_mqtt"}]))
    assert [(e.at, e.action) for e in s.events] == [(10.0, "drop_mqtt"), (40.0, "drop_mqtt")]
    assert s.to_dict()["events"] == [{"at": "10s", "action": "drop_mqtt"}, {"at": "40s", "action": "drop_mqtt"}]
    assert parse_scenario(s.to_dict()).events == s.events
    assert user_counts(s)["events"] == 1
    assert "events" not in user_counts(parse_scenario(_scenario(None)))


@pytest.mark.parametrize(("events", "kind", "transport", "message"), [
    ([{"at": "70s", "action": "drop_mqtt"}], "emulator", "mqtt", "events[0].at: '70s' is not allowed; expected a time "
                                                                  "before the run's end (60 s)"),
    ([{"at": "5s", "action": "drop_mqt"}], "emulator", "mqtt", "did you mean 'drop_mqtt'?"),
    ([{"at": "5s"}], "emulator", "mqtt", "events[0].action: is required"),
    ([{"at": "5s", "action": "drop_mqtt", "when": 1}], "emulator", "mqtt", "events[0]"),
    ("drop", "emulator", "mqtt", "events: 'drop' is not allowed; expected a list"),
    ([{"at": "5s", "action": "drop_mqtt"}], "live", "mqtt", "drop_mqtt needs the embedded emulator"),
    ([{"at": "5s", "action": "drop_mqtt"}], "emulator", "rest", "drop_mqtt with MQTT devices"),
])
def test_bad_events_name_the_field(events: Any, kind: str, transport: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_scenario(_scenario(events, kind, transport), "x.yaml")
    assert message in str(err.value) and "x.yaml: " in str(err.value)
