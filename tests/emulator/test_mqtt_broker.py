"""The emulator's MQTT broker against paho-mqtt 2.x: auth, states into the REST store, commands, status."""

from __future__ import annotations

import asyncio
import json
from typing import Iterator

import pytest
from mqtt_support import World, wait_until


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.close()


def test_connect_with_key_and_secret_is_accepted(world: World) -> None:
    assert world.device(world.devices[0]).connect() == "Success"
    assert world.stats()["connected"] == 1


@pytest.mark.parametrize("case", ["wrong secret", "unknown device", "unknown key", "no credentials"])
def test_bad_credentials_get_connack_5_not_authorized(world: World, case: str) -> None:
    client_id = "0123456789abcdef01234567" if case == "unknown device" else world.devices[0]
    key = {"key": "no-such-key", "secret": "x"} if case == "unknown key" else world.key
    d = world.device(client_id, key=None if case != "unknown key" else key,
                     secret="wrong" if case == "wrong secret" else None)
    if case == "no credentials":
        d.client.username_pw_set(None, None)
    assert d.connect() == "Not authorized"
    d.wait_gone()
    assert world.stats()["refused_credentials"] == 1


def test_key_restricted_to_other_devices_is_refused(world: World) -> None:
    restricted = world.rest.key(world.app, deviceIds=[world.devices[1]])
    assert world.device(world.devices[0], key=restricted).connect() == "Not authorized"
    assert world.device(world.devices[1], key=restricted).connect() == "Success"


def test_tag_restricted_key_admits_only_tagged_devices() -> None:
    w = World(devices=0)
    try:
        tagged = w.rest.device(w.app, "tagged", tags=[{"key": "floor", "value": "8"}])
        other = w.rest.device(w.app, "other")
        key = w.rest.key(w.app, deviceTags=[{"key": "floor", "value": "8"}])
        assert w.device(tagged, key=key).connect() == "Success"
        assert w.device(other, key=key).connect() == "Not authorized"
    finally:
        w.close()


def test_refusal_can_drop_the_socket_instead() -> None:
    w = World(limits={"mqtt": {"refuse_credentials": "drop"}})
    try:
        d = w.device(w.devices[0], secret="wrong")
        assert d.connect() is None  # no CONNACK: the socket closed
        assert d.gone.is_set()
    finally:
        w.close()


def test_published_state_is_stored_and_visible_to_rest(world: World) -> None:
    dev = world.devices[0]
    d = world.connected(dev)
    info = d.publish(f"losant/{dev}/state", {"time": 1_790_000_000_123, "data": {"temp": 21.5, "msg": "hi", "junk": 1}})
    info.wait_for_publish(10)
    assert info.is_published()
    # acknowledged means stored: the very next REST read sees it, with undeclared attributes dropped
    states = world.rest.states(world.app, dev)
    assert states == [{"time": "2026-09-21T14:13:20.123Z", "data": {"temp": 21.5, "msg": "hi"}}]
    last = world.rest.call("POST", f"/applications/{world.app}/data/last-value-query", {"deviceIds": [dev]})
    assert last[dev]["data"]["temp"] == 21.5
    assert last[dev]["data"]["msg"] == "hi"


def test_state_without_time_is_stamped_now(world: World) -> None:
    dev = world.devices[0]
    d = world.connected(dev)
    d.publish(f"losant/{dev}/state", {"data": {"temp": 3}}).wait_for_publish(10)
    assert world.rest.states(world.app, dev)[0]["data"] == {"temp": 3}


def test_invalid_state_is_acknowledged_and_not_stored(world: World) -> None:
    dev = world.devices[0]
    d = world.connected(dev)
    for body in (b"not json", b'{"data": 5}'):
        info = d.publish(f"losant/{dev}/state", body)
        info.wait_for_publish(10)
        assert info.is_published()
    assert world.rest.states(world.app, dev) == []
    assert world.stats()["invalid_states"] == 2


def test_hostile_state_shapes_are_refused_before_parsing_and_not_stored(world: World) -> None:
    """A message within 256 KB may still hold ~80,000 tiny containers or nest 1,000 deep; the device stays connected."""
    dev = world.devices[0]
    d = world.connected(dev)
    many = b'{"data": {"temp": [' + b",".join([b"[]"] * 80_000) + b"]}}"
    deep = b'{"data": {"temp": ' + b"[" * 1_000 + b"]" * 1_000 + b"}}"
    for body in (many, deep):
        info = d.publish(f"losant/{dev}/state", body)
        info.wait_for_publish(10)
        assert info.is_published()
    assert world.rest.states(world.app, dev) == []
    assert world.stats()["invalid_states"] == 2
    d.publish(f"losant/{dev}/state", {"data": {"temp": 4}}).wait_for_publish(10)
    assert world.rest.states(world.app, dev)[0]["data"] == {"temp": 4}


def test_gateway_publishes_for_its_peripheral_but_a_device_not_for_another(world: World) -> None:
    gateway = world.rest.device(world.app, "gw", deviceClass="gateway")
    peripheral = world.rest.device(world.app, "p", deviceClass="peripheral", gatewayId=gateway)
    g = world.connected(gateway)
    g.publish(f"losant/{peripheral}/state", {"data": {"temp": 7}}).wait_for_publish(10)
    assert world.rest.states(world.app, peripheral)[0]["data"] == {"temp": 7}
    d = world.connected(world.devices[0])
    d.publish(f"losant/{world.devices[1]}/state", {"data": {"temp": 8}})
    d.wait_gone()
    assert world.rest.states(world.app, world.devices[1]) == []


def test_rest_command_reaches_the_subscribed_device(world: World) -> None:
    dev = world.devices[0]
    d = world.connected(dev)
    assert [int(getattr(c, "value", c)) for c in d.subscribe(f"losant/{dev}/command")] == [1]
    world.rest.call("POST", f"/applications/{world.app}/devices/{dev}/command",
                    {"name": "reboot", "payload": {"delay": 5}, "time": 1_790_000_000_000})
    topic, raw = d.next_message()
    assert topic == f"losant/{dev}/command"
    assert json.loads(raw) == {"name": "reboot", "payload": {"delay": 5}, "time": {"$date": "2026-09-21T14:13:20.000Z"}}


def test_command_by_tag_reaches_each_tagged_device_once(world: World) -> None:
    tagged = [world.rest.device(world.app, f"t{i}", tags=[{"key": "group", "value": "a"}]) for i in range(3)]
    clients = [world.connected(t) for t in tagged]
    for c, t in zip(clients, tagged):
        c.subscribe(f"losant/{t}/command")
    world.rest.call("POST", f"/applications/{world.app}/devices/command",
                    {"name": "go", "deviceTags": [{"key": "group", "value": "a"}]})
    for c, t in zip(clients, tagged):
        topic, raw = c.next_message()
        assert topic == f"losant/{t}/command" and json.loads(raw)["name"] == "go"
        assert c.messages.empty()


def test_subscribing_to_another_devices_command_topic_is_refused(world: World) -> None:
    d = world.connected(world.devices[0])
    assert [int(getattr(c, "value", c)) for c in d.subscribe(f"losant/{world.devices[1]}/command")] == [0x80]


def test_custom_topics_follow_the_keys_filter_and_mqtt_publish_message(world: World) -> None:
    key = world.rest.key(world.app, filterType="whitelist", pubTopics=["plant/+/alarm"], subTopics=["plant/#"])
    sub = world.connected(world.devices[0], key=key)
    assert [int(getattr(c, "value", c)) for c in sub.subscribe("plant/#")] == [1]
    assert [int(getattr(c, "value", c)) for c in sub.subscribe("other/#")] == [0x80]
    pub = world.connected(world.devices[1], key=key)
    pub.publish("plant/7/alarm", b"hot").wait_for_publish(10)
    assert sub.next_message() == ("plant/7/alarm", b"hot")
    world.rest.call("POST", f"/applications/{world.app}/mqttPublishMessage", {"topic": "plant/1/x", "message": "from rest"})
    assert sub.next_message() == ("plant/1/x", b"from rest")
    pub.publish("plant/7/other", b"no")  # not in pubTopics: disconnected
    pub.wait_gone()


def test_default_key_has_no_custom_topics(world: World) -> None:
    d = world.connected(world.devices[0])
    assert [int(getattr(c, "value", c)) for c in d.subscribe("anything")] == [0x80]
    d.publish("anything", b"x")
    d.wait_gone()


def test_connection_info_and_log_follow_the_connection(world: World) -> None:
    dev = world.devices[0]
    path = f"/applications/{world.app}/devices/{dev}"
    d = world.connected(dev)
    info = world.rest.call("GET", path)["connectionInfo"]
    assert info["connected"] == 1 and info["time"] and info["connectedAt"]
    d.publish(f"losant/{dev}/state", {"data": {"temp": 1}}).wait_for_publish(10)
    d.client.disconnect()
    d.wait_gone()
    wait_until(lambda: world.rest.call("GET", path)["connectionInfo"]["connected"] == 0, "connectionInfo disconnected")
    info = world.rest.call("GET", path)["connectionInfo"]
    assert info["disconnectReason"] == "client disconnect" and info["messagesFromClient"] == 1
    logs = world.rest.call("GET", f"{path}/logs?limit=10&sortDirection=asc")
    assert [e["connected"] for e in logs] == [1, 0]
    assert logs[1]["disconnectReason"] == "client disconnect"


def test_a_second_connection_of_a_device_closes_the_first(world: World) -> None:
    dev = world.devices[0]
    first = world.connected(dev)
    second = world.connected(dev)
    first.wait_gone()
    assert not second.gone.is_set()
    assert world.stats()["connected"] == 1
    logs = world.rest.call("GET", f"/applications/{world.app}/devices/{dev}/logs?limit=10&sortDirection=asc")
    assert [e["connected"] for e in logs] == [1, 0, 1]
    assert logs[1]["disconnectReason"] == "replaced by a new connection of the same device"
    second.publish(f"losant/{dev}/state", {"data": {"temp": 2}}).wait_for_publish(10)
    assert world.rest.states(world.app, dev)[0]["data"] == {"temp": 2}


def test_qos1_state_is_acknowledged_only_once_committed(world: World) -> None:
    """The store's commit future is held back: no PUBACK until it resolves, and then the state is readable."""
    dev = world.devices[0]
    d = world.connected(dev)
    store = world.server.app.store
    real_enqueue = store.enqueue_states
    held: list[tuple[asyncio.Future[None], asyncio.Future[None]]] = []

    def enqueue_held(rows: list[tuple[str, int, str]]) -> asyncio.Future[None]:
        committed = real_enqueue(rows)
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        held.append((committed, answer))
        return answer

    store.enqueue_states = enqueue_held
    try:
        info = d.publish(f"losant/{dev}/state", {"data": {"temp": 9}})
        wait_until(lambda: world.stats()["states"] == 1, "the broker to take the state")
        assert len(held) == 1 and not info.is_published()  # handed to the store, not acknowledged
    finally:
        store.enqueue_states = real_enqueue

    def release() -> None:
        committed, answer = held[0]
        committed.add_done_callback(lambda f: answer.set_exception(f.exception()) if f.exception() else answer.set_result(None))

    world.server.call(release)
    info.wait_for_publish(10)
    assert info.is_published()
    assert world.rest.states(world.app, dev)[0]["data"] == {"temp": 9}


def test_qos0_state_is_stored_too(world: World) -> None:
    dev = world.devices[0]
    d = world.connected(dev)
    d.publish(f"losant/{dev}/state", {"data": {"temp": 4}}, qos=0)
    wait_until(lambda: world.rest.states(world.app, dev), "the QoS 0 state to be stored")


def test_admin_endpoint_counts_and_drops_connections() -> None:
    w = World(admin=True)
    try:
        clients = [w.connected(dev) for dev in w.devices]
        admin = w.rest.http
        assert admin.get("/_emulator/mqtt").json()["connected"] == 2
        clients[0].publish(f"losant/{w.devices[0]}/state", {"data": {"temp": 1}}).wait_for_publish(10)
        stored = admin.get("/_emulator/mqtt", params={"reset": "true"}).json()["stored_ms"]
        assert stored["count"] == 1 and 0 < stored["p50"] <= stored["p99"] <= stored["max"]
        assert admin.get("/_emulator/mqtt").json()["stored_ms"] == {"count": 0, "p50": None, "p99": None, "max": None}
        assert admin.delete("/_emulator/mqtt", params={"applicationId": "000000000000000000000000"}).json() == {"dropped": 0, "devices": []}
        answer = admin.delete("/_emulator/mqtt").json()
        assert answer["dropped"] == 2 and sorted(answer["devices"]) == sorted(w.devices)
        for c in clients:
            c.wait_gone()
        counters = admin.get("/_emulator/mqtt").json()
        assert counters["connected"] == 0 and counters["disconnects"] == {"dropped by the emulator": 2}
        assert admin.post("/_emulator/mqtt").status_code == 405
    finally:
        w.close()


def test_admin_endpoint_exists_only_with_admin(world: World) -> None:
    assert world.rest.http.get("/_emulator/mqtt").status_code == 404


HOSTILE = {
    "garbage": b"\xff\xff\xff\xff\xff\xff",
    "publish before connect": b"\x30\x05\x00\x01a\x00\x00",
    "truncated connect": b"\x10\x04\x00\x04MQ",
    "remaining length over 4 bytes": b"\x30\xff\xff\xff\xff\x01",
    "huge announced length": b"\x30\xff\xff\xff\x7f",
    "connect with a bad protocol name": b"\x10\x0c\x00\x04XXXX\x04\x02\x00\x3c\x00\x00",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_bytes_close_the_socket_without_an_emulator_error(world: World, name: str) -> None:
    import socket  # noqa: PLC0415

    with socket.create_connection((world.server.mqtt_host, world.server.mqtt_port), timeout=10) as s:
        s.sendall(HOSTILE[name])
        if name == "truncated connect":
            s.shutdown(socket.SHUT_WR)  # the rest never comes
        while s.recv(4096):  # closed by the broker (a CONNACK with an error code may come first)
            pass
    wait_until(lambda: world.stats()["sockets"] == 0, "the socket to be forgotten")
    assert world.server.app.unexpected_errors == 0


def test_protocol_errors_after_connect_disconnect(world: World) -> None:
    dev = world.devices[0]
    d = world.connected(dev)
    d.publish(f"losant/{dev}/state", {"data": {"temp": 1}}, qos=2)
    d.wait_gone()
    assert world.stats()["disconnects"] == {"protocol error": 1}


def test_silent_client_is_closed_after_one_and_a_half_keepalives(world: World) -> None:
    dev = world.devices[0]
    d = world.device(dev)
    assert d.connect(keepalive=1) == "Success"
    d.stop_loop()  # no PINGREQ from now on
    wait_until(lambda: world.stats()["disconnects"].get("keepalive timeout") == 1, "the keepalive timeout")
