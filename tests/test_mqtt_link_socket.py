"""A device's connection is opened without an explicit ``bind()`` unless a bind address was asked
for: paho 2.2 binds to port 0 before every connect, which cost 2-5 ms a connect with an earlier
run's ports in TIME_WAIT (10,000 devices at once: 36 s instead of 8; docs/BENCHMARKS.md). Such a
connection still connects to a loopback broker and is accepted.

``harness.users`` imports Locust, which patches the standard library with gevent: the checks run
in a fresh interpreter patched first, as the harness runs (tests/test_mqtt_hub.py does the same).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECKS = textwrap.dedent('''
import socket
import threading
from typing import Any

import paho.mqtt.client as paho

from harness.users.mqtt_link import CLIENT_CLOSED, BrokerAddress, Link, _Client


def recording(calls: list[Any]) -> Any:
    def fake(address: Any, timeout: Any = None, source_address: Any = None) -> str:
        calls.append((address, source_address))
        return "sock"
    return fake


def test_unbound_unless_a_bind_is_asked_for() -> None:
    real = socket.create_connection
    calls: list[Any] = []
    socket.create_connection = recording(calls)
    try:
        client = _Client(paho.CallbackAPIVersion.VERSION1, client_id="d1", protocol=paho.MQTTv311)
        client._host, client._port = "127.0.0.1", 1883
        assert client._create_socket_connection() == "sock"
        client._bind_address = "127.0.0.2"  # asked for: paho's own path, with its bind
        client._create_socket_connection()
    finally:
        socket.create_connection = real
    assert calls == [(("127.0.0.1", 1883), None), (("127.0.0.1", 1883), ("127.0.0.2", 0))], calls


class Owner:
    def __init__(self) -> None:
        self.lost: list[int] = []

    def on_puback(self, link: Any, mid: int, at: float) -> None: ...

    def on_message(self, link: Any, topic: str, payload: bytes, at: float) -> None: ...

    def on_lost(self, link: Any, reason: int, at: float) -> None:
        self.lost.append(reason)


def test_link_connects_to_a_loopback_broker_without_bind() -> None:
    """A listener in a real OS thread answering the CONNECT with CONNACK 0."""
    from gevent import monkey
    real_socket = monkey.get_original("socket", "socket")
    start_new = monkey.get_original("_thread", "start_new_thread")
    listener = real_socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10.0)
    received: list[bytes] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(10.0)
            received.append(conn.recv(4096))  # CONNECT
            conn.sendall(bytes([0x20, 0x02, 0x00, 0x00]))
            received.append(conn.recv(4096))  # SUBSCRIBE, then the DISCONNECT or the close
            conn.close()
        except OSError:
            pass

    start_new(serve, ())
    binds: list[Any] = []
    cls = type(socket.socket())
    real_bind = cls.bind

    def bind(self: Any, address: Any) -> None:
        binds.append(address)
        real_bind(self, address)

    cls.bind = bind
    try:
        owner = Owner()
        link = Link("dev1", BrokerAddress("127.0.0.1", listener.getsockname()[1], False), "key", "secret", owner)
        status, error, _, latency = link.connect()
    finally:
        cls.bind = real_bind
    assert (status, error) == (200, 0), (status, error)
    assert 0 <= latency < 10.0
    assert binds == [], binds  # the kernel chose the local port at connect()
    assert link.connected and link.conn_key == "dev1#1"
    link.close()
    assert owner.lost == [CLIENT_CLOSED], owner.lost
    listener.close()
    assert received and received[0][:1] == bytes([0x10]), received  # a CONNECT reached the listener


test_unbound_unless_a_bind_is_asked_for()
test_link_connects_to_a_loopback_broker_without_bind()
print("ok")
''')


def test_link_socket() -> None:
    proc = subprocess.run([sys.executable, "-c", "from gevent import monkey; monkey.patch_all()\n" + CHECKS],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout[-2000:] + proc.stderr[-3000:]
