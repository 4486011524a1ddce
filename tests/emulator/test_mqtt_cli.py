"""The broker from the command line: options, start line, the embedded emulator's free port, limits file errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import pytest
from mqtt_support import ATTRIBUTES, wait_until

from harness.emulator.cli import build_parser
from harness.emulator.config import DEFAULT_EMAIL, DEFAULT_PASSWORD
from harness.emulator.process import EmulatorProcess
from harness.limits import LimitsError, parse_limits

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_and_options() -> None:
    args = build_parser().parse_args([])
    assert args.mqtt_port == 1883 and not args.no_mqtt
    args = build_parser().parse_args(["--mqtt-port", "0", "--no-mqtt"])
    assert args.mqtt_port == 0 and args.no_mqtt


def test_unusable_mqtt_port_is_one_line_exit_2() -> None:
    r = subprocess.run([sys.executable, "-m", "harness.emulator", "--port", "0", "--mqtt-port", "70000"], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.startswith("losant-load emulator: --host/--mqtt-port: cannot listen on 127.0.0.1:70000")


def test_embedded_emulator_serves_mqtt_on_a_free_port_end_to_end() -> None:
    """A real subprocess (uvloop, the CLI's serving path): state in over MQTT, out over REST."""
    with EmulatorProcess() as emu:
        assert emu.mqtt_url.startswith("mqtt://127.0.0.1:") and not emu.mqtt_url.endswith(":1883")
        http = httpx.Client(base_url=emu.url, timeout=10)
        token = http.post("/auth/user", json={"email": DEFAULT_EMAIL, "password": DEFAULT_PASSWORD}).json()["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        app = http.post("/applications", json={"name": "cli"}).json()["id"]
        dev = http.post(f"/applications/{app}/devices", json={"name": "d", "attributes": ATTRIBUTES}).json()["id"]
        key = http.post(f"/applications/{app}/keys", json={}).json()
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=dev, protocol=paho.MQTTv311)
        client.username_pw_set(key["key"], key["secret"])
        host, port = emu.mqtt_url.removeprefix("mqtt://").rsplit(":", 1)
        client.connect(host, int(port), 30)
        client.loop_start()
        try:
            info = client.publish(f"losant/{dev}/state", json.dumps({"data": {"temp": 12}}), qos=1)
            info.wait_for_publish(10)
            assert info.is_published()
            states = http.get(f"/applications/{app}/devices/{dev}/state").json()
            assert states[0]["data"] == {"temp": 12}
            assert http.get(f"/applications/{app}/devices/{dev}").json()["connectionInfo"]["connected"] == 1
        finally:
            client.disconnect()
            client.loop_stop()
        wait_until(lambda: http.get(f"/applications/{app}/devices/{dev}").json()["connectionInfo"]["connected"] == 0,
                   "the disconnect in connectionInfo")
        http.close()


def _login(url: str) -> httpx.Client:
    http = httpx.Client(base_url=url, timeout=10)
    token = http.post("/auth/user", json={"email": DEFAULT_EMAIL, "password": DEFAULT_PASSWORD}).json()["token"]
    http.headers["Authorization"] = f"Bearer {token}"
    return http


def test_stopping_the_emulator_logs_each_devices_disconnect(tmp_path: Path) -> None:
    db = str(tmp_path / "e.db")
    with EmulatorProcess(db=db) as emu:
        http = _login(emu.url)
        app = http.post("/applications", json={"name": "stop"}).json()["id"]
        dev = http.post(f"/applications/{app}/devices", json={"name": "d"}).json()["id"]
        key = http.post(f"/applications/{app}/keys", json={}).json()
        http.close()
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=dev, protocol=paho.MQTTv311)
        client.username_pw_set(key["key"], key["secret"])
        host, port = emu.mqtt_url.removeprefix("mqtt://").rsplit(":", 1)
        client.connect(host, int(port), 30)
        client.loop_start()
        try:
            wait_until(client.is_connected, "the CONNACK")
        finally:
            emu.stop()  # SIGTERM: a graceful stop
            client.loop_stop()
    with EmulatorProcess(db=db) as emu:
        http = _login(emu.url)
        logs = http.get(f"/applications/{app}/devices/{dev}/logs", params={"sortDirection": "asc", "limit": 10}).json()
        assert [(e["connected"], e.get("disconnectReason")) for e in logs] == [(1, None), (0, "broker shutting down")]
        assert http.get(f"/applications/{app}/devices/{dev}").json()["connectionInfo"]["connected"] == 0
        http.close()


def test_no_mqtt_serves_none() -> None:
    with EmulatorProcess(no_mqtt=True) as emu:
        assert emu.mqtt_url == ""


@pytest.mark.parametrize(("data", "message"), [
    # one wording for every input file (harness.checking): the path ends with the field at fault
    ({"mqtt": {"ban_secs": 1}}, "l.yaml: mqtt.ban_secs: unknown field (did you mean 'ban_seconds'?)"),
    ({"mqtt": {"refuse_limited": "close"}}, "mqtt.refuse_limited: 'close' is not allowed; expected one of connack | drop"),
    ({"mqtt": {"ban_factor": 0.5}}, "mqtt.ban_factor: 0.5 is not allowed; expected a number >= 1"),
    ({"limits": {"mqtt.publishIn": {"key": "device"}}},
     "limits.mqtt.publishIn.key: is not allowed: mqtt.publishIn is an MQTT limit, keyed by what the broker counts"),
    ({"limits": {"mqtt.messageSize": {"window": 3}}},
     "limits.mqtt.messageSize.window: is not allowed: mqtt.messageSize is a size limit and has no window"),
    ({"limits": {"mqtt.publishInn": {"count": 3}}}, "did you mean 'mqtt.publishIn'?"),
])
def test_limits_file_errors_name_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(LimitsError) as caught:
        parse_limits(data, "l.yaml")
    assert message in str(caught.value)


def test_mqtt_rows_are_apart_from_the_rest_rows() -> None:
    table = parse_limits({"limits": {"mqtt.publishIn": {"count": 5, "window": 1.0}}, "mqtt": {"ban_seconds": 2}})
    assert all(lim.transport == "rest" for lim in table.limits)
    assert {lim.name for lim in table.mqtt} == {"mqtt.publishIn", "mqtt.publishOut", "mqtt.connectionMessages",
                                                "mqtt.newConnections", "mqtt.messageSize"}
    assert all(lim.transport == "mqtt" for lim in table.mqtt)
    assert table.mqtt_limit("mqtt.publishIn").count == 5 and table.mqtt_policy.ban_for(3) == 8.0
