"""MQTT pacing on a fake clock: connects within the broker's new-connection limit, publishes within
the per-topic and per-connection limits, the reconnect back-off, and the scenario's transport field."""

from __future__ import annotations

import random

import numpy as np
import pytest

from harness.limits import LimitsTable, parse_limits
from harness.scenario import ScenarioError, parse_scenario, user_counts
from harness.schedule import Ledger, backoff_delay, full_connection_seconds
from harness.schedule.mqtt import BACKOFF_CAP


def most_in_window(times: list[float], window: float) -> int:
    """The most instants any closed interval of length ``window`` holds."""
    order = np.sort(np.asarray(times))
    return int((np.searchsorted(order, order + window, side="right") - np.arange(len(order))).max())


def connect_fleet(ledger: Ledger, devices: int, latency: float) -> list[float]:
    """A connector on a fake clock: each CONNECT as soon as the ledger admits it, CONNACK ``latency`` later."""
    keys = {"application": "app"}
    now, sends = 0.0, []
    while len(sends) < devices:
        ticket = ledger.admit("mqtt.connect", keys, now)
        if isinstance(ticket, tuple):
            sends.append(now)
            ledger.done(ticket, now + latency)
        else:
            assert ticket > now
            now = ticket
    return sends


def test_a_thousand_connects_keep_300_per_15_s_and_take_three_windows() -> None:
    sends = connect_fleet(Ledger(LimitsTable(), "respect"), 1000, latency=0.005)
    assert most_in_window(sends, 15.0) == 300  # the limit, never more, in any closed 15 s interval
    expected = full_connection_seconds(1000, 300, 15.0)
    assert expected == 45.0
    # each window starts a window after the last CONNACK of the previous one (plus EPSILON)
    assert expected <= sends[-1] <= expected + 3 * (0.005 + 2e-4)


def test_connects_follow_an_overridden_limit() -> None:
    table = parse_limits({"limits": {"mqtt.newConnections": {"count": 8, "window": 1.0}}})
    sends = connect_fleet(Ledger(table, "respect"), 20, latency=0.01)
    assert most_in_window(sends, 1.0) == 8
    assert sends[-1] == pytest.approx(2.0, abs=0.05)


def test_slow_connacks_hold_their_places_until_answered() -> None:
    """A CONNECT in flight counts until its CONNACK: 300 unanswered ones block the 301st."""
    ledger = Ledger(LimitsTable(), "respect")
    keys = {"application": "app"}
    tickets = [ledger.admit("mqtt.connect", keys, 0.0) for _ in range(300)]
    assert all(isinstance(t, tuple) for t in tickets)
    assert not isinstance(ledger.admit("mqtt.connect", keys, 20.0), tuple)  # still in flight at 20 s
    for t in tickets:
        ledger.done(t, 21.0)
    assert not isinstance(ledger.admit("mqtt.connect", keys, 35.0), tuple)
    assert isinstance(ledger.admit("mqtt.connect", keys, 36.001), tuple)


def test_publishes_keep_both_the_topic_and_the_connection_limit() -> None:
    ledger = Ledger(LimitsTable(), "respect")
    rules = {r.limit: (r.key, r.allowed, r.span) for r in ledger.rules("mqtt.publishState")}
    assert rules == {"mqtt.publishIn": ("device_topic", 30, 15.0), "mqtt.connectionMessages": ("connection", 300, 15.0)}
    # one device asking for 10 states/s on its topic gets 30 per 15 s
    now, sends = 0.0, []
    keys = {"device_topic": "d1:losant/d1/state", "connection": "d1#1"}
    while now < 60.0:
        ticket = ledger.admit("mqtt.publishState", keys, now)
        if isinstance(ticket, tuple):
            sends.append(now)
            ledger.done(ticket, now + 0.002)
            now += 0.1
        else:
            now = ticket
    assert most_in_window(sends, 15.0) == 30
    # a gateway's connection publishing for 20 peripherals: 300 per 15 s across its topics
    ledger = Ledger(LimitsTable(), "respect")  # a fresh one: the fake clock starts again at 0
    now, sends = 0.0, []
    for k in range(400):
        keys = {"device_topic": f"p{k % 20}:losant/p{k % 20}/state", "connection": "gw#1"}
        ticket = ledger.admit("mqtt.publishState", keys, now)
        while not isinstance(ticket, tuple):
            now = ticket
            ticket = ledger.admit("mqtt.publishState", keys, now)
        sends.append(now)
        ledger.done(ticket, now + 0.002)
    assert most_in_window(sends, 15.0) == 300


def test_off_mode_paces_no_mqtt_call() -> None:
    ledger = Ledger(LimitsTable(), "off")
    assert ledger.rules("mqtt.connect") == () and ledger.rules("mqtt.publishState") == ()


def test_backoff_doubles_with_equal_jitter_up_to_the_cap() -> None:
    rng = random.Random(7)
    for attempt in range(1, 40):
        step = min(BACKOFF_CAP, 2.0 ** (attempt - 1))
        for _ in range(50):
            delay = backoff_delay(attempt, rng.random())
            assert step / 2 <= delay < step or delay == step / 2
    assert [backoff_delay(n, 0.5) for n in (1, 2, 3, 4)] == [0.75, 1.5, 3.0, 6.0]
    assert backoff_delay(100, 0.999) < BACKOFF_CAP
    # a fleet losing its connections at once spreads its first retries over half a step
    firsts = [backoff_delay(1, rng.random()) for _ in range(1000)]
    assert min(firsts) >= 0.5 and max(firsts) < 1.0 and np.std(firsts) > 0.1
    with pytest.raises(ValueError):
        backoff_delay(0, 0.5)
    with pytest.raises(ValueError):
        backoff_delay(1, 1.0)


def _scenario(cls: dict, target: dict | None = None) -> dict:
    return {"name": "m", "target": target or {"kind": "emulator"},
            "fleet": {"classes": [{"name": "s", "count": 2500, "report_interval": "5s", **cls}]}}


def test_transport_field_is_validated_and_sizes_mqtt_users() -> None:
    s = parse_scenario(_scenario({"transport": "mqtt"}))
    assert s.fleet.classes[0].transport == "mqtt"
    assert user_counts(s)["mqtt"] == 2 and user_counts(s)["standalone"] == 0
    assert parse_scenario(s.to_dict()) == s
    assert "transport" not in parse_scenario(_scenario({})).to_dict()["fleet"]["classes"][0]
    with pytest.raises(ScenarioError) as err:
        parse_scenario(_scenario({"transport": "mqt", "connection_status": True}), "f.yaml")
    assert "f.yaml: fleet.classes[0].transport: 'mqt' is not allowed (did you mean 'mqtt'?); expected one of rest | mqtt" \
        in str(err.value)
    with pytest.raises(ScenarioError) as err:
        parse_scenario(_scenario({"transport": "mqtt", "command_poll_interval": "5s", "batch_size": 3}), "f.yaml")
    assert "fleet.classes[0].command_poll_interval: is only allowed with transport: rest" in str(err.value)
    assert "fleet.classes[0].batch_size" in str(err.value)


def test_mqtt_url_is_live_only_and_checked() -> None:
    live = {"kind": "live", "url": "https://api.losant.com"}
    s = parse_scenario(_scenario({"transport": "mqtt"}, {**live, "mqtt_url": "mqtts://broker.losant.com:8883"}))
    assert s.target.mqtt_url == "mqtts://broker.losant.com:8883"
    for bad in ("http://broker.losant.com", "mqtt://host:70000", "mqtts://"):
        with pytest.raises(ScenarioError, match="target.mqtt_url"):
            parse_scenario(_scenario({"transport": "mqtt"}, {**live, "mqtt_url": bad}))
    with pytest.raises(ScenarioError, match="target.mqtt_url: is only allowed with kind: live"):
        parse_scenario(_scenario({"transport": "mqtt"}, {"kind": "emulator", "mqtt_url": "mqtt://127.0.0.1:1883"}))


def test_live_plan_counts_mqtt_rows_and_connection_time() -> None:
    from dataclasses import replace

    from harness.safety import pacing_warnings, plan_budget

    data = _scenario({"transport": "mqtt", "count": 1000}, {"kind": "live", "url": "https://api.losant.com"})
    s = parse_scenario(data)
    budget = plan_budget(s, LimitsTable())
    peaks = {p.limit: p.planned_peak_per_s for p in budget.limits}
    assert peaks["mqtt.newConnections"] == 20.0 and peaks["mqtt.publishIn"] == 0.2 and "device.sendState" not in peaks
    assert not budget.exceeds
    assert budget.payloads >= 2 * 1000  # a connect and a disconnect per device are payloads
    assert plan_budget(replace(s, pacing=replace(s.pacing, throttle="off")), LimitsTable()).exceeds  # all at once
    assert pacing_warnings(s, LimitsTable())[0].startswith(
        "1000 MQTT connections within mqtt.newConnections (300 per 15 s per application): the fleet is fully "
        "connected after about 45 s")
