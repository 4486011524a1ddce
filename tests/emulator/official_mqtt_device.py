"""Run the official ``losant-mqtt`` Device against the emulator's broker (in its own venv: it needs paho-mqtt < 2).

Unmodified but for where it connects: ``Device.mqtt_endpoint`` is the class attribute the
client documents, and the port it hard-codes (1883) is redirected to the test broker's.
Prints one JSON line per event; argv: host port device_id key secret mode (run | refused).
"""

import json
import sys
import time

from paho.mqtt import client as mqtt

from losantmqtt import Device

host, port, device_id, key, secret, mode = sys.argv[1:7]
_connect = mqtt.Client.connect


def connect_to_test_port(self, _host, _port=1883, keepalive=60, *args, **kwargs):
    return _connect(self, _host, int(port), keepalive, *args, **kwargs)


mqtt.Client.connect = connect_to_test_port
Device.mqtt_endpoint = host


def say(**event):
    print(json.dumps(event, default=str), flush=True)


device = Device(device_id, key, secret, secure=False)
device.add_event_observer("connect", lambda d: say(event="connected"))
device.add_event_observer("command", lambda d, cmd: say(event="command", name=cmd["name"], payload=cmd["payload"],
                                                          time=cmd["time"].isoformat()))
try:
    device.connect(blocking=False)
    deadline = time.monotonic() + 20
    sent = False
    while time.monotonic() < deadline:
        device.loop(0.05)
        if device.is_connected() and not sent:
            sent = True
            # its answer compares paho's MQTTMessageInfo with an int: False even when sent, so not reported
            device.send_state({"temp": 42, "msg": "official"})
            say(event="state-sent")
except Exception as exc:  # the client raises on CONNACK 1, 2, 4 or 5
    say(event="refused", error=str(exc))
    sys.exit(0)
say(event="timeout")
