"""throttle: every window model at exactly its count, window and key, on a fake clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.emulator.errors import ApiError
from harness.emulator.throttle import Throttle
from harness.limits import LimitsTable, parse_limits

from emulator_support import FakeClock


def admitted(t: Throttle, op: str, keys: dict[str, str]) -> bool:
    try:
        t.check(op, keys)
        return True
    except ApiError as exc:
        assert exc.status == 429 and exc.body() == {"type": "TooManyRequests", "message": "Over rate limit, request throttled"}
        return False


@pytest.mark.parametrize("model", ["sliding", "fixed", "token_bucket"])
def test_send_state_30_per_15s_then_429_per_device(model: str) -> None:
    clock = FakeClock(1_000_000.0)  # aligned to 15 s, so the fixed window starts here too
    t = Throttle(replace(LimitsTable(), window_model=model), clock)
    assert all(admitted(t, "device.sendState", {"device": "A"}) for _ in range(30))
    assert not admitted(t, "device.sendState", {"device": "A"})  # the 31st
    assert admitted(t, "device.sendState", {"device": "B"})  # another device is unaffected
    clock.advance(15.0)
    assert admitted(t, "device.sendState", {"device": "A"})


def test_sliding_window_edges() -> None:
    clock = FakeClock(100.0)
    t = Throttle(LimitsTable(), clock)
    for _ in range(15):
        assert admitted(t, "events.post", {"application": "app"})
        clock.advance(0.5)  # 15 calls over 7.5 s
    assert not admitted(t, "events.post", {"application": "app"})
    clock.t = 100.0 + 15.0 - 0.001  # first call still inside (t - 15, t]
    assert not admitted(t, "events.post", {"application": "app"})
    clock.t = 115.0  # the first call leaves the window exactly at +15 s
    assert admitted(t, "events.post", {"application": "app"})
    assert not admitted(t, "events.post", {"application": "app"})


def test_refused_calls_do_not_consume_quota() -> None:
    clock = FakeClock(0.0)
    t = Throttle(LimitsTable(), clock)
    for _ in range(30):
        t.check("device.sendState", {"device": "A"})
        clock.advance(0.1)
    for _ in range(100):  # hammering while refused must not extend the ban
        assert not admitted(t, "device.sendState", {"device": "A"})
    clock.t = 15.0 + 0.0001  # the first accepted call (t=0) has left the window
    assert admitted(t, "device.sendState", {"device": "A"})


def test_five_minute_window_embedded_export() -> None:
    clock = FakeClock(0.0)
    t = Throttle(LimitsTable(), clock)
    assert admitted(t, "embeddedDeployments.export", {"application": "app"})
    clock.advance(299.9)
    assert not admitted(t, "embeddedDeployments.export", {"application": "app"})
    assert admitted(t, "embeddedDeployments.export", {"application": "other"})
    clock.advance(0.1)
    assert admitted(t, "embeddedDeployments.export", {"application": "app"})


def test_virtual_button_100_per_10s_per_flow_and_key() -> None:
    clock = FakeClock(0.0)
    t = Throttle(LimitsTable(), clock)
    assert all(admitted(t, "flow.pressVirtualButton", {"virtual_button": "f:k1"}) for _ in range(100))
    assert not admitted(t, "flow.pressVirtualButton", {"virtual_button": "f:k1"})
    assert admitted(t, "flow.pressVirtualButton", {"virtual_button": "f:k2"})
    clock.advance(10.0)
    assert admitted(t, "flow.pressVirtualButton", {"virtual_button": "f:k1"})


def test_concurrency_slot_held_for_job_seconds() -> None:
    clock = FakeClock(0.0)
    t = Throttle(LimitsTable(), clock, job_seconds=3.0)
    assert admitted(t, "devices.export", {"application": "app"})
    clock.advance(2.9)
    assert not admitted(t, "devices.export", {"application": "app"})
    assert admitted(t, "events.export", {"application": "app"})  # separate operation, separate slot
    clock.advance(0.1)
    assert admitted(t, "devices.export", {"application": "app"})


def test_token_bucket_refills_at_rate() -> None:
    clock = FakeClock(0.0)
    t = Throttle(replace(LimitsTable(), window_model="token_bucket"), clock)
    for _ in range(30):
        t.check("device.sendState", {"device": "A"})
    assert not admitted(t, "device.sendState", {"device": "A"})
    clock.advance(0.5)  # 2 per second -> one token back
    assert admitted(t, "device.sendState", {"device": "A"})
    assert not admitted(t, "device.sendState", {"device": "A"})


def test_shared_device_counter_merges_the_three_ops() -> None:
    clock = FakeClock(0.0)
    t = Throttle(parse_limits({"device_counter": "shared"}), clock)
    for op in ["device.sendState"] * 10 + ["device.sendCommand"] * 10 + ["device.setConnectionStatus"] * 10:
        t.check(op, {"device": "A"})
    assert not admitted(t, "device.sendCommand", {"device": "A"})
    separate = Throttle(LimitsTable(), clock)
    for _ in range(30):
        separate.check("device.sendState", {"device": "A"})
    assert admitted(separate, "device.sendCommand", {"device": "A"})


def test_limits_file_override_count_window_key() -> None:
    clock = FakeClock(0.0)
    table = parse_limits({"limits": {"device.sendState": {"count": 5, "window": 1.0},
                                     "application.mqttPublishMessage": {"key": "application"}}})
    t = Throttle(table, clock)
    assert all(admitted(t, "device.sendState", {"device": "A"}) for _ in range(5))
    assert not admitted(t, "device.sendState", {"device": "A"})
    clock.advance(1.0)
    assert admitted(t, "device.sendState", {"device": "A"})
    keys = {"application": "app", "topic": "app:x"}
    assert all(admitted(t, "application.mqttPublishMessage", {**keys, "topic": f"app:{i}"}) for i in range(30))
    assert not admitted(t, "application.mqttPublishMessage", {**keys, "topic": "app:new"})


def test_idle_keys_are_swept() -> None:
    clock = FakeClock(0.0)
    t = Throttle(LimitsTable(), clock)
    for i in range(10_000):
        t.check("device.sendState", {"device": f"d{i}"})
    clock.advance(16.0)
    t.check("device.sendState", {"device": "fresh"})
    t.sweep()
    assert len(t) == 1
