"""Helpers for the broker tests: an in-process emulator with its broker, a REST client, paho-mqtt 2.x devices.

Every wait is an event or a condition polled against a bounded deadline, never a fixed sleep.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any, Callable

import httpx
import paho.mqtt.client as paho
from emulator_support import FakeClock

from harness.emulator.config import DEFAULT_EMAIL, DEFAULT_PASSWORD, EmulatorConfig
from harness.emulator.mqtt.serve import ThreadServer, start_in_thread
from harness.limits import parse_limits

WAIT_S = 10.0
ATTRIBUTES = [{"name": "temp", "dataType": "number"}, {"name": "msg", "dataType": "string"}]


def wait_until(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """Poll ``check`` until it answers something true; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class Rest:
    """A logged-in synchronous REST client of the in-process emulator."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=WAIT_S)
        r = self.http.post("/auth/user", json={"email": DEFAULT_EMAIL, "password": DEFAULT_PASSWORD})
        assert r.status_code == 200, r.text
        self.http.headers["Authorization"] = f"Bearer {r.json()['token']}"

    def call(self, method: str, path: str, body: Any = None, ok: int = 200) -> Any:
        r = self.http.request(method, path, json=body)
        assert r.status_code == ok, (path, r.status_code, r.text)
        return r.json()

    def application(self) -> str:
        return str(self.call("POST", "/applications", {"name": "mqtt"}, 201)["id"])

    def device(self, app: str, name: str, **fields: Any) -> str:
        return str(self.call("POST", f"/applications/{app}/devices", {"name": name, "attributes": ATTRIBUTES, **fields}, 201)["id"])

    def key(self, app: str, **fields: Any) -> dict[str, Any]:
        return dict(self.call("POST", f"/applications/{app}/keys", fields, 201))

    def states(self, app: str, device: str, limit: int = 100) -> list[dict[str, Any]]:
        return list(self.call("GET", f"/applications/{app}/devices/{device}/state?limit={limit}"))

    def close(self) -> None:
        self.http.close()


class Device:
    """One paho-mqtt 2.x client on paho's own network thread, which never reconnects: a test sees every close."""

    def __init__(self, server: ThreadServer, client_id: str, key: dict[str, Any] | None, secret: str | None = None) -> None:
        self.server = server
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
        if key is not None:
            self.client.username_pw_set(key["key"], key["secret"] if secret is None else secret)
        self.client.reconnect_delay_set(600, 600)  # belt and braces: _on_disconnect already stops the loop
        self.connack: str | None = None
        self.connected = threading.Event()
        self.answered = threading.Event()
        self.gone = threading.Event()
        self.subscribed = threading.Event()
        self.granted: list[Any] = []
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda _c, _u, msg: self.messages.put((msg.topic, msg.payload))
        self._started = False

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        self.connack = str(reason)
        self.answered.set()
        if not reason.is_failure:
            self.connected.set()

    def _on_disconnect(self, client: paho.Client, *_: Any) -> None:
        self.gone.set()
        client.disconnect()  # the loop thread ends instead of reconnecting

    def _on_subscribe(self, _c: Any, _u: Any, _mid: Any, codes: Any, _p: Any) -> None:
        self.granted = list(codes)
        self.subscribed.set()

    def connect(self, keepalive: int = 60) -> str | None:
        """CONNECT and wait for the CONNACK or the socket closing; the CONNACK's name, or None when dropped."""
        self.client.connect(self.server.mqtt_host, self.server.mqtt_port, keepalive)
        self.client.loop_start()
        self._started = True
        wait_until(lambda: self.answered.is_set() or self.gone.is_set(), "a CONNACK or a closed socket")
        return self.connack

    def publish(self, topic: str, payload: Any, qos: int = 1) -> paho.MQTTMessageInfo:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.client.publish(topic, data, qos=qos)

    def subscribe(self, topic: str, qos: int = 1) -> list[Any]:
        self.subscribed.clear()
        self.client.subscribe(topic, qos)
        wait_until(self.subscribed.is_set, f"SUBACK for {topic}")
        return self.granted

    def next_message(self, timeout: float = WAIT_S) -> tuple[str, bytes]:
        return self.messages.get(timeout=timeout)

    def wait_gone(self) -> None:
        wait_until(self.gone.is_set, "the broker to close the connection")

    def stop_loop(self) -> None:
        """Stop the network thread: from now on the client sends nothing (no PINGREQ either)."""
        if self._started:
            self.client.loop_stop()
            self._started = False

    def close(self) -> None:
        if not self.gone.is_set():
            self.client.disconnect()
        self.stop_loop()


class World:
    """A served emulator with its broker, a fake clock, an application, devices and an all-devices key."""

    def __init__(self, limits: dict[str, Any] | None = None, devices: int = 2, fake_clock: bool = True, **config: Any) -> None:
        self.clock = FakeClock()
        self.server = start_in_thread(EmulatorConfig(limits=parse_limits(limits), **config), clock=self.clock if fake_clock else None)
        self.rest = Rest(self.server.url)
        self.app = self.rest.application()
        self.devices = [self.rest.device(self.app, f"dev-{i}") for i in range(devices)]
        self.key = self.rest.key(self.app)
        self.clients: list[Device] = []

    def device(self, client_id: str, key: dict[str, Any] | None = None, secret: str | None = None) -> Device:
        d = Device(self.server, client_id, self.key if key is None else key, secret)
        self.clients.append(d)
        return d

    def connected(self, client_id: str, key: dict[str, Any] | None = None) -> Device:
        d = self.device(client_id, key)
        assert d.connect() == "Success"
        return d

    def stats(self) -> dict[str, Any]:
        return dict(self.server.call(self.server.broker.snapshot))

    def close(self) -> None:
        for c in self.clients:
            c.close()
        self.rest.close()
        self.server.stop()
        assert self.server.app.unexpected_errors == 0
