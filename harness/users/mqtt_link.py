"""One device's broker connection: paho-mqtt's protocol engine, driven by a greenlet of our own.

Why paho driven by hand (``loop_read``/``loop_write``/``loop_misc`` on gevent's readiness
waits) rather than ``loop_forever`` or ``loop_start``: those make a socket pair per client
to wake a select() (three descriptors a device instead of one) or a thread each; driven by
hand a connection is one socket, one paho ``Client`` and, while connected, one greenlet
blocked in the gevent hub. A fresh ``Client`` per connection attempt: paho resends unacked
QoS 1 messages after a reconnect, and a state the harness already recorded as lost must not
reach the store behind its back. Callback API version 1: on MQTT 3.1.1 it hands over the raw
CONNACK code and the loss's error code, and builds no ``ReasonCode``/``Properties`` per
PUBACK (bench/mqtt_generator.py measures the whole path).

A ``Link`` records nothing itself: it reports to its ``LinkOwner`` (the user driving it),
which turns events into samples (``harness.users.mqtt``).
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Protocol
from urllib.parse import urlsplit

import gevent
import paho.mqtt.client as paho
from gevent.socket import wait_read

from harness.errors import ConfigError
from harness.record import CONNECTION, HTTP, NO_ERROR, THROTTLED, TIMEOUT

KEEPALIVE = 60  # seconds, as Losant's own client (losant-mqtt) asks for
CONNACK_TIMEOUT = 10.0  # seconds from the CONNECT: no CONNACK by then is a failed attempt

# mqtt.disconnect reasons (the sample's status; harness/record.py)
BROKER_CLOSED = 1  # the broker closed the socket, unexplained by the client
CLIENT_CLOSED = 2  # the harness closed it cleanly (end of run)
KEEPALIVE_TIMEOUT = 3  # no answer from the broker within the keep-alive
TAKEN_OVER = 4  # a second connection of the device replaced it (not observable over MQTT 3.1.1: shows as 1)
DROPPED = 5  # dropped on purpose (a reconnect storm the harness asked for)


class _WaitTimeout(Exception):
    pass


class _Client(paho.Client):
    """paho's client, connecting without binding its socket first.

    paho 2.2 always passes ``source_address=(bind_address, bind_port)`` to
    ``socket.create_connection``, ``("", 0)`` when none was asked for: an explicit ``bind()`` to
    port 0 before every ``connect()``. Such a bind cannot share a local port with another
    destination's connection nor take one still in TIME_WAIT, and Linux serves it from half
    the ephemeral range, scanning it under a lock: with the ports of an earlier run of 10,000
    devices still in TIME_WAIT it took 2-5 ms a connect (10,000 devices at once: 36 s in the
    harness against 6 s for bare paho run first; docs/BENCHMARKS.md). Left unbound, the
    kernel picks the port at ``connect()`` from the whole range per destination. A bind the
    caller did ask for, or a proxy, keeps paho's path.
    """

    def _create_socket_connection(self) -> Any:
        if self._bind_address or self._bind_port or self._get_proxy():
            return super()._create_socket_connection()
        return socket.create_connection((self._host, self._port), timeout=self._connect_timeout)


@dataclass(frozen=True)
class BrokerAddress:
    """Where MQTT devices connect: ``mqtt://host:port`` or ``mqtts://host:port`` (TLS)."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(f"MQTT broker URL {url!r}: expected mqtt://host:port or mqtts://host:port")
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname, parts.port or (8883 if tls else 1883), tls)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"


class LinkOwner(Protocol):
    """What a link reports to (``harness.users.mqtt.MqttDevices``)."""

    def on_puback(self, link: Link, mid: int, at: float) -> None: ...

    def on_message(self, link: Link, topic: str, payload: bytes, at: float) -> None: ...

    def on_lost(self, link: Link, reason: int, at: float) -> None: ...


class Link:
    """One device's connection to the broker, reconnected by its owner after a loss."""

    __slots__ = ("device_id", "address", "username", "password", "owner", "client", "connected", "ever_connected",
                 "connack", "conn_serial", "conn_key", "closing_reason", "greenlet", "attempts", "keys", "tls_context",
                 "command_topics")

    def __init__(self, device_id: str, address: BrokerAddress, username: str, password: str, owner: LinkOwner,
                 tls_context: ssl.SSLContext | None = None) -> None:
        self.device_id = device_id
        self.address = address
        self.username = username
        self.password = password  # the access secret: never logged, never in a repr
        self.owner = owner
        self.client: paho.Client | None = None
        self.connected = False
        self.ever_connected = False
        self.connack: int | None = None
        self.conn_serial = 0
        self.conn_key = ""  # the broker's per-connection counter key, as the ledger keys it
        self.closing_reason = 0  # set by the harness before it closes the connection itself
        self.greenlet: Any = None
        self.attempts = 0  # failed attempts since the last accepted connection (the back-off's exponent)
        self.keys: dict[str, dict[str, str]] = {}  # ledger keys per state topic, for this connection
        self.tls_context = tls_context
        #: Subscribed on every connect: the device's command topic, and a gateway's peripherals' (REFERENCE 9)
        self.command_topics = [f"losant/{device_id}/command"]

    def __repr__(self) -> str:
        return f"Link({self.device_id!r}, {self.address}, connected={self.connected})"

    # -- connect ---------------------------------------------------------------------------------
    def _new_client(self) -> paho.Client:
        client = _Client(paho.CallbackAPIVersion.VERSION1, client_id=self.device_id, clean_session=True,
                         protocol=paho.MQTTv311, reconnect_on_failure=False)
        client.username_pw_set(self.username, self.password)
        if self.address.tls:
            client.tls_set_context(self.tls_context or ssl.create_default_context())
        client.max_inflight_messages_set(65535)  # pacing is the ledger's; paho must not queue behind it
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def connect(self) -> tuple[int, int, float, float]:
        """One attempt: TCP connect, CONNECT, wait for the CONNACK.

        Returns (status, error kind, sent, latency) for the ``mqtt.connect`` sample: 200 when
        accepted, 1000 + the CONNACK code when refused, 0 when the socket failed or closed
        first (error ``connection``) or no CONNACK came in time (``timeout``).
        """
        client = self.client = self._new_client()
        self.connack = None
        self.closing_reason = 0
        sent = time.time()
        t0 = perf_counter()
        try:
            client.connect(self.address.host, self.address.port, KEEPALIVE)
        except (OSError, ssl.SSLError):
            self._drop_client()
            return 0, CONNECTION, sent, perf_counter() - t0
        sock = client.socket()
        deadline = t0 + CONNACK_TIMEOUT
        while self.connack is None:
            left = deadline - perf_counter()
            if left <= 0 or sock is None:
                self._drop_client()
                return 0, TIMEOUT if left <= 0 else CONNECTION, sent, perf_counter() - t0
            try:
                buffered = getattr(sock, "pending", None)
                if buffered is None or not buffered():
                    wait_read(sock.fileno(), timeout=left, timeout_exc=_WaitTimeout)
            except _WaitTimeout:
                continue
            rc = client.loop_read()
            if rc != paho.MQTT_ERR_SUCCESS and self.connack is None:
                self._drop_client()
                return 0, CONNECTION, sent, perf_counter() - t0
        latency = perf_counter() - t0
        code = self.connack
        if code != 0:
            self._drop_client()
            return 1000 + code, THROTTLED if code == 3 else HTTP, sent, latency
        self.conn_serial += 1
        self.conn_key = f"{self.device_id}#{self.conn_serial}"
        self.keys = {}
        self.connected = self.ever_connected = True
        self.attempts = 0
        client.subscribe([(topic, 1) for topic in self.command_topics])
        return 200, NO_ERROR, sent, latency

    def _drop_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.on_disconnect = None
                client._sock_close()  # paho has no public "close without DISCONNECT"
            except Exception:  # noqa: BLE001 - the socket is gone either way
                pass

    # -- serve -----------------------------------------------------------------------------------
    def serve(self) -> None:
        """Read and answer the broker until the connection is lost (the owner hears ``on_lost``)."""
        client = self.client
        # paho pings once a keep-alive has passed without traffic; waking every third keeps the
        # ping within 1.33 keep-alives, before the broker's 1.5 (MQTT 3.1.2.10)
        tick = KEEPALIVE / 3
        while self.connected and client is not None:
            sock = client.socket()
            if sock is None:
                self._lost(paho.MQTT_ERR_CONN_LOST)
                break
            try:
                buffered = getattr(sock, "pending", None)  # TLS: bytes already decrypted wait in the SSL object
                if buffered is None or not buffered():
                    wait_read(sock.fileno(), timeout=tick, timeout_exc=_WaitTimeout)
                rc = client.loop_read(max_packets=64)
            except _WaitTimeout:
                rc = paho.MQTT_ERR_SUCCESS
            except OSError:
                rc = paho.MQTT_ERR_CONN_LOST
            if rc != paho.MQTT_ERR_SUCCESS:
                if self.connected:  # paho called on_disconnect unless the socket vanished under it
                    self._lost(rc)
                break
            if client.want_write():
                client.loop_write()
            client.loop_misc()  # keep-alive: PINGREQ when due, a loss when the broker stays silent

    def publish(self, topic: str, payload: bytes) -> int | None:
        """PUBLISH at QoS 1; the message id to match the PUBACK, or None when it could not be written."""
        client = self.client
        if client is None or not self.connected:
            return None
        info = client.publish(topic, payload, qos=1)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            return None
        if client.want_write():  # the socket's buffer was full: finish the write when it drains
            gevent.spawn(self._flush)
        return info.mid

    def _flush(self) -> None:
        client = self.client
        if client is not None and client.want_write():
            client.loop_write()

    def close(self, reason: int = CLIENT_CLOSED) -> None:
        """Close on purpose: DISCONNECT, then the socket; the owner hears ``on_lost(reason)``."""
        client = self.client
        if client is None or not self.connected:
            return
        self.closing_reason = reason
        try:
            client.disconnect()
            client.loop_write()
        except OSError:
            pass
        if self.connected:
            self._lost(paho.MQTT_ERR_SUCCESS)
        self._drop_client()

    def _lost(self, rc: int) -> None:
        if not self.connected:
            return
        self.connected = False
        if self.closing_reason:
            reason = self.closing_reason
        elif rc == paho.MQTT_ERR_KEEPALIVE:
            reason = KEEPALIVE_TIMEOUT
        else:
            reason = BROKER_CLOSED
        self.owner.on_lost(self, reason, time.time())

    # -- paho callbacks (version 1) --------------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: int) -> None:
        self.connack = int(rc)

    def _on_disconnect(self, client: Any, userdata: Any, rc: int) -> None:
        if client is self.client:
            self._lost(int(rc))

    def _on_publish(self, client: Any, userdata: Any, mid: int) -> None:
        self.owner.on_puback(self, mid, time.time())

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.owner.on_message(self, message.topic, message.payload, time.time())
