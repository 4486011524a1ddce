"""The MQTT judge against a reference broker on random runs: a broker that keeps the documented rules
draws no finding whatever the timing; one that breaks them is caught where the bounds prove it.

The reference broker decides each message at a known instant inside the bounds the judge sees
(after the send, before the acknowledgement or the loss), in send order per connection, with a
sliding log per device topic, a disconnect and a ban over the count, and refuses connects while
a ban lasts. The judge sees only send times, latencies and statuses.
"""

from __future__ import annotations

import random
from collections import deque

import pytest

from harness.analysis.mqtt import analyze_mqtt
from harness.limits import parse_limits
from harness.report.synthetic_mqtt import MqttLog

COUNT, WINDOW, BAN = 5, 2.0, 1.0
TABLE = parse_limits({"limits": {"mqtt.publishIn": {"count": COUNT, "window": WINDOW}},
                      "mqtt": {"ban_seconds": BAN, "ban_factor": 1.0}})


def simulate(seed: int, devices: int = 12, end: float = 30.0, broker_count: int | None = COUNT,
             bans: bool = True) -> tuple[MqttLog, int, int]:
    """A run against the reference broker; (log, rate disconnects, refusals). ``broker_count`` is the
    count the broker really enforces (None: never disconnects)."""
    rng = random.Random(seed)
    log = MqttLog()
    rate_disconnects = refusals = 0
    for d in range(devices):
        dev = f"d{d}"
        rate = rng.choice((1.0, 2.0, 3.0, 4.0))  # messages/s: the limit allows 2.5/s sustained
        window: deque[float] = deque()  # the broker's accepted decision instants, across reconnects
        banned_until = -1.0
        t = rng.uniform(0.0, 1.0)
        while t < end:
            # connect (retried while refused)
            lat = rng.uniform(0.001, 0.05)
            decided = t + rng.uniform(0.0, lat)
            if bans and decided < banned_until:
                log.connect(dev, t, lat, 1003)
                refusals += 1
                t += lat + rng.uniform(0.2, 0.8)
                continue
            log.connect(dev, t, lat, 200)
            t += lat
            last_decision = t
            lost_at = None
            while t < end:
                t += rng.expovariate(rate)
                if t >= end:
                    break
                lat = rng.uniform(0.001, 0.08)
                decided = max(last_decision, t + rng.uniform(0.0, lat))  # in send order on the connection
                last_decision = decided
                while window and window[0] <= decided - WINDOW:
                    window.popleft()
                if broker_count is not None and len(window) >= broker_count:
                    # over the count: dropped, disconnected, banned; the client sees the loss a little later
                    lost_at = decided + rng.uniform(0.0005, 0.03)
                    log.publish(dev, t, lost_at - t, status=0)
                    rate_disconnects += 1
                    banned_until = decided + BAN
                    break
                window.append(decided)
                log.publish(dev, t, min(decided + rng.uniform(0.0, 0.03), t + lat) - t + 1e-6)
            if lost_at is None:
                log.disconnect(dev, end + 0.5, 2)
                break
            log.disconnect(dev, lost_at, 1)
            t = lost_at + rng.uniform(0.1, 0.6)
    return log, rate_disconnects, refusals


@pytest.mark.parametrize("seed", range(12))
def test_a_broker_keeping_the_rules_draws_no_finding(seed: int) -> None:
    log, disconnects, refusals = simulate(seed)
    out = analyze_mqtt(log.samples(), TABLE)
    assert out["findings_total"] == 0, out["findings"][:3]
    assert disconnects > 0 and out["disconnects"]["broker_closed_judged"] == disconnects
    assert out["disconnects"]["explained"] + out["disconnects"]["undecided"] == disconnects
    assert out["bans"]["refusals"] == refusals


def test_the_rules_are_not_vacuous_on_these_runs() -> None:
    """Most rate disconnects are surely explained, most refusals surely justified by a ban."""
    explained = judged = justified = refused = 0
    for seed in range(12):
        out = analyze_mqtt(simulate(seed)[0].samples(), TABLE)
        explained += out["disconnects"]["explained"]
        judged += out["disconnects"]["broker_closed_judged"]
        justified += out["bans"]["refusals_justified"]
        refused += out["bans"]["refusals"]
    assert judged and explained >= 0.8 * judged
    assert refused and justified >= 0.5 * refused


def test_a_broker_disconnecting_early_is_caught() -> None:
    found = 0
    for seed in range(12):
        log, _, _ = simulate(seed, broker_count=COUNT - 3)  # disconnects at the 3rd message in a window
        found += analyze_mqtt(log.samples(), TABLE)["findings_by_kind"].get("mqtt_unexplained_disconnect", 0)
    assert found > 0


def test_a_broker_never_disconnecting_is_caught() -> None:
    found = 0
    for seed in range(6):
        log, disconnects, _ = simulate(seed, broker_count=None)
        assert disconnects == 0
        found += analyze_mqtt(log.samples(), TABLE)["findings_by_kind"].get("mqtt_missed_disconnect", 0)
    assert found > 0


def test_a_broker_forgetting_its_bans_is_caught() -> None:
    found = 0
    for seed in range(4):
        log, _, refusals = simulate(seed, bans=False)
        assert refusals == 0
        kinds = analyze_mqtt(log.samples(), TABLE)["findings_by_kind"]
        assert set(kinds) <= {"mqtt_missed_refusal"}  # reconnects accepted inside a certain ban, nothing else
        found += kinds.get("mqtt_missed_refusal", 0)
    assert found > 0
