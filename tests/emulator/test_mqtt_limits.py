"""Every MQTT limit at its exact boundary, on a fake clock: disconnect, ban, ban growth and end."""

from __future__ import annotations

from typing import Iterator

import pytest
from mqtt_support import World, wait_until

BANNED = "Server unavailable"


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.close()


def _flood(world: World, dev: str, n: int) -> list[bool]:
    """Publish ``n`` QoS 1 states on the device's state topic; which ones were acknowledged."""
    d = world.connected(dev)
    infos = [d.publish(f"losant/{dev}/state", {"data": {"temp": i}}) for i in range(n)]
    d.wait_gone() if n > 30 else infos[-1].wait_for_publish(10)
    return [i.is_published() for i in infos]


def test_31st_message_on_a_topic_disconnects_and_bans(world: World) -> None:
    dev = world.devices[0]
    acked = _flood(world, dev, 31)
    assert acked[:30] == [True] * 30 and not acked[30]
    stats = world.stats()
    assert stats["bans"] == 1 and stats["disconnects"] == {"over a message rate limit": 1}
    logs = world.rest.call("GET", f"/applications/{world.app}/devices/{dev}/logs?limit=5")
    assert logs[0]["disconnectReason"] == "over a message rate limit"
    assert world.device(dev).connect() == BANNED  # may not reconnect for 30 s
    assert world.connected(world.devices[1])  # another device of the application is unaffected


def test_30_messages_in_the_window_are_fine(world: World) -> None:
    dev = world.devices[0]
    assert _flood(world, dev, 30) == [True] * 30
    assert world.stats()["bans"] == 0


def test_the_ban_ends_after_30_s_and_a_repeat_offence_doubles_it(world: World) -> None:
    dev = world.devices[0]
    _flood(world, dev, 31)
    world.clock.advance(29.9)
    assert world.device(dev).connect() == BANNED
    world.clock.advance(0.2)  # 30.1 s after the offence; the topic window (15 s) has moved on too
    d = world.connected(dev)
    d.close()
    _flood(world, dev, 31)  # second offence: 60 s
    world.clock.advance(59.9)
    assert world.device(dev).connect() == BANNED
    world.clock.advance(0.2)
    assert world.device(dev).connect() == "Success"


def test_ban_growth_is_capped_and_configurable() -> None:
    w = World(limits={"mqtt": {"ban_seconds": 2, "ban_factor": 3, "ban_max_seconds": 10}})
    try:
        dev = w.devices[0]
        for expected in (2, 6, 10, 10):
            _flood(w, dev, 31)
            w.clock.advance(expected - 0.1)
            assert w.device(dev).connect() == BANNED, expected
            w.clock.advance(15.2)  # past the ban and the topic window
    finally:
        w.close()


def test_301st_message_on_one_connection_disconnects() -> None:
    w = World(limits={})
    try:
        key = w.rest.key(w.app, filterType="all")
        d = w.connected(w.devices[0], key=key)
        infos = [d.publish(f"t/{i % 10}", b"x") for i in range(300)]  # 30 per topic: no topic limit reached
        infos[-1].wait_for_publish(10)
        assert all(i.is_published() for i in infos)
        extra = d.publish("t/other", b"x")
        d.wait_gone()
        assert not extra.is_published()
        assert w.stats()["disconnects"] == {"over a message rate limit": 1}
    finally:
        w.close()


def test_messages_to_a_device_count_too(world: World) -> None:
    key = world.rest.key(world.app, filterType="all")
    sub = world.connected(world.devices[0], key=key)
    sub.subscribe("alerts", qos=0)  # QoS 0: the subscriber writes no PUBACK into the socket the broker closes
    pubs = [world.connected(world.rest.device(world.app, f"p{i}"), key=key) for i in range(2)]
    for i in range(31):  # 15 + 16 from two publishers: the subscriber's 31st on "alerts" is over
        pubs[i % 2].publish("alerts", b"%d" % i).wait_for_publish(10)
    sub.wait_gone()
    got = []
    while not sub.messages.empty():
        got.append(sub.next_message())
    assert len(got) == 30 and world.stats()["delivered"] == 30
    assert world.device(world.devices[0], key=key).connect() == BANNED


def _connect_once(world: World, dev: str) -> str | None:
    d = world.device(dev)
    answer = d.connect()
    d.close()
    world.clients.remove(d)
    if answer == "Success":  # its disconnect is done before the next connect
        wait_until(lambda: world.stats()["connected"] == 0, "the disconnect")
    return answer


def test_301st_new_connection_of_an_application_in_15_s_is_refused(world: World) -> None:
    dev = world.devices[0]
    answers = [_connect_once(world, dev) for _ in range(300)]
    assert answers == ["Success"] * 300
    assert _connect_once(world, world.devices[1]) == BANNED  # over the application's limit, not banned
    assert world.stats()["refused_rate"] == 1 and world.stats()["bans"] == 0
    world.clock.advance(15.0)
    assert _connect_once(world, world.devices[1]) == "Success"


def test_message_of_256_kb_is_accepted_and_257_kb_disconnects(world: World) -> None:
    key = world.rest.key(world.app, filterType="all")
    d = world.connected(world.devices[0], key=key)
    ok = d.publish("big", b"x" * 256 * 1024)
    ok.wait_for_publish(10)
    assert ok.is_published()
    too_big = d.publish("big", b"x" * 257 * 1024)
    d.wait_gone()
    assert not too_big.is_published()
    stats = world.stats()
    assert stats["disconnects"] == {"message too large": 1} and stats["bans"] == 0
    assert world.device(world.devices[0], key=key).connect() == "Success"  # not banned


def test_limits_file_shortens_windows() -> None:
    w = World(limits={"limits": {"mqtt.publishIn": {"count": 3, "window": 1.0}}})
    try:
        dev = w.devices[0]
        d = w.connected(dev)
        infos = [d.publish(f"losant/{dev}/state", {"data": {"temp": i}}) for i in range(3)]
        infos[-1].wait_for_publish(10)
        w.clock.advance(1.0)  # the window has moved: three more are fine
        infos = [d.publish(f"losant/{dev}/state", {"data": {"temp": i}}) for i in range(3)]
        infos[-1].wait_for_publish(10)
        d.publish(f"losant/{dev}/state", {"data": {"temp": 9}})
        d.wait_gone()
    finally:
        w.close()
