"""The run's MQTT bookkeeping: broker addresses, and which commands each device still awaits.

``harness.users`` imports Locust, which patches the standard library with gevent: the checks run
in a fresh interpreter (as the CLI tests do), one process for all of them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECKS = textwrap.dedent('''
from types import SimpleNamespace

import pytest

from harness.errors import ConfigError
from harness.users.mqtt_hub import MqttHub, settle_command, stamp_command
from harness.users.mqtt_link import DROPPED, BrokerAddress


def test_broker_addresses() -> None:
    assert BrokerAddress.parse("mqtts://broker.losant.com") == BrokerAddress("broker.losant.com", 8883, True)
    assert BrokerAddress.parse("mqtt://127.0.0.1:41883") == BrokerAddress("127.0.0.1", 41883, False)
    assert str(BrokerAddress.parse("mqtt://[::1]:1883")) == "mqtt://[::1]:1883"
    with pytest.raises(ConfigError, match="expected mqtt://host:port"):
        BrokerAddress.parse("http://broker.losant.com")


def hub_with(connected: dict[str, bool], tags: dict[str, dict[str, str]]) -> MqttHub:
    hub = MqttHub(BrokerAddress("127.0.0.1", 1883, False), "run")
    hub.links = {d: SimpleNamespace(device_id=d, connected=c) for d, c in connected.items()}  # type: ignore[misc]
    hub.tags = dict(tags)
    return hub


def test_commands_are_awaited_at_connected_devices_only() -> None:
    hub = hub_with({"a": True, "b": True, "c": False}, {"a": {"site": "1"}, "b": {"site": "2"}, "c": {"site": "1"}})
    payload: dict[str, object] = {"at": 1}
    one = hub.stamp(payload, ["a"], {}, 100.0)
    assert payload == {"at": 1, "sent": 100.0, "cmd": one}
    tagged = hub.stamp({}, None, {"site": "1"}, 101.0)  # a tag command: every MQTT device with the tag, if connected
    every = hub.stamp({}, None, {}, 102.0)
    assert hub.awaited == {"a": {one: 100.0, tagged: 101.0, every: 102.0}, "b": {every: 102.0}}
    hub.received("a", one)
    hub.received("a", "unknown")
    hub.settle(every, accepted=False)  # refused by the API: reaches nobody
    assert hub.awaited == {"a": {tagged: 101.0}}
    assert hub.overdue(["b"]) == [] and hub.overdue(["a", "b"]) == [("a", 101.0)]
    assert hub.awaited == {} and hub.awaited_count == 0
    hub.stopping = True  # the MQTT users are closing their links: nothing more is awaited
    hub.stamp({}, ["a"], {}, 103.0)
    assert hub.awaited == {}


def test_operators_stamp_only_when_the_run_has_mqtt_devices() -> None:
    payload: dict[str, object] = {"at": 1}
    assert stamp_command(SimpleNamespace(mqtt=None), payload, ["a"], sent=1.0) is None and payload == {"at": 1}
    hub = hub_with({"a": True}, {"a": {}})
    ctx = SimpleNamespace(mqtt=hub)
    cid = stamp_command(ctx, payload, ["a"], sent=5.0)
    settle_command(ctx, cid, 429)
    assert hub.awaited == {}


def test_losses_are_labelled_from_the_devices_the_broker_says_it_dropped() -> None:
    hub = hub_with({}, {})
    got = []

    def rec(device):
        return lambda reason: got.append((device, reason))

    hub.label_loss("x", 1, rec("x"))  # no drop: recorded at once, as seen
    assert got == [("x", 1)]
    got.clear()
    hub.begin_drop()
    hub.label_loss("a", 1, rec("a"))  # dropped: held until the answer
    hub.label_loss("b", 1, rec("b"))  # closed by the broker for another reason while the drop ran
    hub.label_loss("c", 2, rec("c"))  # closed by the client: never held
    hub.label_loss("d", 1, rec("d"))  # lost, reconnected and lost again while the drop ran: which is unknown
    hub.label_loss("d", 3, rec("d"))
    hub.attempting("f")  # a connect the drop cut before its CONNACK: nothing to label later
    assert got == [("c", 2)]
    hub.end_drop(["a", "d", "e", "f"])
    assert got[1:] == [("a", DROPPED), ("b", 1), ("d", 1), ("d", 3)]
    got.clear()
    hub.label_loss("e", 3, rec("e"))  # its client noticed after the answer: still the drop's
    hub.label_loss("e", 1, rec("e"))  # the next loss is its own
    hub.label_loss("f", 1, rec("f"))
    assert got == [("e", DROPPED), ("e", 1), ("f", 1)]
    hub.begin_drop()
    hub.label_loss("g", 1, rec("g"))
    hub.end_drop(None)  # the answer did not say: the client's reason stands (the judge uses the drop's bounds)
    assert got[-1] == ("g", 1)

test_broker_addresses()
test_commands_are_awaited_at_connected_devices_only()
test_operators_stamp_only_when_the_run_has_mqtt_devices()
test_losses_are_labelled_from_the_devices_the_broker_says_it_dropped()
print("ok")
''')


def test_hub_bookkeeping() -> None:
    proc = subprocess.run([sys.executable, "-c", "from gevent import monkey; monkey.patch_all()\n" + CHECKS],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout[-2000:] + proc.stderr[-3000:]
