"""The broker: sessions, authorization, limits with disconnect and ban, states into the store.

One ``Connection`` (an ``asyncio.Protocol``: no task, no queue, no reader coroutine per
client) per socket; the ``Broker`` holds what they share. Why a protocol and not amqtt's
``Broker``: see ``codec.py``; in short, an acknowledgement that waits for the commit,
disconnects and bans, and 10,000 idle devices at a few KB each.

Rules (REFERENCE 9; the choices in docs/LIMITS.md, section MQTT):
- CONNECT: client id = a device id, username = an access key, password = its secret; the
  same checks as ``POST /auth/device``. Refused: CONNACK 5, or a dropped socket
  (``refuse_credentials``). A banned device, or one over its application's new-connection
  limit: CONNACK 3 (server unavailable: the official client retries) or a dropped socket
  (``refuse_limited``). A second connection of a device closes the first ("replaced").
- PUBLISH: QoS 0 and 1 (QoS 2: disconnect). A state on ``losant/<id>/state`` is checked
  like the REST body, stored in the same store, and a QoS 1 state is PUBACKed only once its
  batch is committed; acknowledgements keep the order of the publishes (MQTT 4.6). A state
  body that is not valid JSON or not a valid state is acknowledged and not stored (MQTT 3.1.1
  has no negative acknowledgement), and counted in ``stats["invalid_states"]``.
- Limits: ``mqtt.publishIn`` / ``mqtt.publishOut`` per (device, topic) and direction,
  ``mqtt.connectionMessages`` per connection (PUBLISHes both ways), ``mqtt.newConnections``
  per application, ``mqtt.messageSize`` per PUBLISH payload (a frame that cannot fit is
  refused from its header, before its body is read). Over a rate limit the device is disconnected and banned
  (``MqttPolicy.ban_for``); over the size limit it is disconnected, not banned.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson

from ..auth import Principal, key_allows, secret_matches
from ..bounds import measure_json
from ..errors import ApiError
from ..scopes import DEVICE_SCOPES
from ..states import check_body, declared_types, rows_for
from ..throttle import Throttle
from . import codec, status
from .topics import custom_allowed, device_topic, matches, valid_filter

if TYPE_CHECKING:
    from ..app import Emulator

log = logging.getLogger("harness.emulator.mqtt")

CONNACK_ACCEPTED = 0
CONNACK_BAD_PROTOCOL = 1
CONNACK_IDENTIFIER_REJECTED = 2
CONNACK_UNAVAILABLE = 3
CONNACK_NOT_AUTHORIZED = 5
CONNECT_TIMEOUT_S = 10.0  # a socket that sends no CONNECT in this time is closed
MAX_WRITE_BUFFER = 4 * 1024 * 1024  # a client that stops reading is closed, not buffered for
SWEEP_EVERY_S = 1.0
STORED_SAMPLES = 200_000
FRAME_OVERHEAD = 2 + 65535 + 2  # topic length, the longest topic, packet id: beyond the cap plus these, refused unread

# Disconnect reasons, as written in the connection log and counted in Broker.stats
REASON_CLIENT = "client disconnect"
REASON_GONE = "connection lost"
REASON_REPLACED = "replaced by a new connection of the same device"
REASON_RATE = "over a message rate limit"
REASON_SIZE = "message too large"
REASON_TOPIC = "topic not authorized"
REASON_PROTOCOL = "protocol error"
REASON_KEEPALIVE = "keepalive timeout"
REASON_SLOW = "client not reading"
REASON_SHUTDOWN = "broker shutting down"
REASON_ADMIN = "dropped by the emulator"


@dataclass
class Ban:
    """A device's offences: banned until ``until``; ``offences`` lengthen the next ban."""

    until: float
    offences: int


class Connection(asyncio.Protocol):
    """One client socket: framing, the session after CONNECT, and its packets."""

    __slots__ = ("broker", "transport", "buf", "ip", "device_id", "app_id", "key", "principal", "connected",
                 "keepalive", "last_seen", "arrived", "opened", "messages_in", "messages_out", "next_id", "acks", "subs",
                 "closing", "reason", "conn_key")

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.ip = ""
        self.device_id = ""
        self.app_id = ""
        self.key: dict[str, Any] = {}
        self.principal: Principal | None = None
        self.connected = False
        self.keepalive = 0.0
        self.last_seen = self.opened = time.monotonic()
        self.arrived = 0.0  # perf_counter when the bytes being handled arrived (publish-to-stored latency)
        self.messages_in = self.messages_out = 0
        self.next_id = 0
        self.acks: deque[list[Any]] = deque()  # [packet id, done] in publish order
        self.subs: dict[str, int] = {}  # topic filter -> granted QoS
        self.closing = False
        self.reason = REASON_GONE
        self.conn_key = ""

    # ---- asyncio.Protocol ------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if peer else ""
        self.broker.sockets.add(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_seen = time.monotonic()
        self.arrived = time.perf_counter()
        buf = self.buf
        buf += data
        pos = 0  # frames are cut at an offset and the buffer trimmed once: a read of many frames stays linear
        try:
            while pos < len(buf):
                head = codec.frame_length(buf, pos)
                if head is None:
                    break
                header_len, remaining = head
                if remaining > self.broker.max_message_bytes + FRAME_OVERHEAD:
                    self.broker.stats["too_large"] += 1
                    self.close(REASON_SIZE)
                    return
                end = pos + header_len + remaining
                if len(buf) < end:
                    break
                frame = bytes(buf[pos:end])
                pos = end
                self.handle(frame)
                if self.closing:
                    return
            del buf[:pos]
        except codec.FrameError:
            self.close(REASON_PROTOCOL)
        except Exception as exc:  # an emulator bug: counted and logged like REST's 500s, never the payload
            self.broker.emu.unexpected_errors += 1
            log.error("unexpected %s in the MQTT broker\n%s", type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)))
            self.close(REASON_PROTOCOL)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.broker.detach(self)

    # ---- packets ---------------------------------------------------------------
    def handle(self, frame: bytes) -> None:
        kind = frame[0] >> 4
        if not self.connected:
            if kind != codec.CONNECT:
                self.close(REASON_PROTOCOL)
                return
            self.broker.connect(self, codec.decode(frame))  # type: ignore[arg-type]
            return
        if kind == codec.PUBLISH:
            self.broker.publish_in(self, codec.decode(frame))  # type: ignore[arg-type]
        elif kind == codec.PINGREQ:
            self.write(codec.pingresp())
        elif kind == codec.PUBACK:
            pass  # our QoS 1 deliveries are not retried (clean sessions only), so nothing waits for these
        elif kind == codec.SUBSCRIBE:
            self.broker.subscribe(self, codec.decode(frame))  # type: ignore[arg-type]
        elif kind == codec.UNSUBSCRIBE:
            self.broker.unsubscribe(self, codec.decode(frame))  # type: ignore[arg-type]
        elif kind == codec.DISCONNECT:
            self.close(REASON_CLIENT)
        else:  # a second CONNECT, QoS 2 flow packets, packets only a server sends
            self.close(REASON_PROTOCOL)

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self.close(REASON_SLOW)

    def ack(self, packet_id: int, ready: bool) -> list[Any]:
        """Queue a PUBACK; sent once it and every earlier one are ready (MQTT 4.6: in publish order)."""
        entry = [packet_id, ready]
        self.acks.append(entry)
        if ready and len(self.acks) == 1:
            self.flush_acks()
        return entry

    def flush_acks(self) -> None:
        acks = self.acks
        while acks and acks[0][1]:
            self.write(codec.puback(acks.popleft()[0]))
        if self.closing and not acks and self.transport is not None:
            self.transport.close()

    def close(self, reason: str) -> None:
        """Stop reading at once; close the socket once the states already taken are acknowledged.

        A device disconnected for its 31st message still gets the PUBACKs of the 30 before
        it, which are stored: nothing stored goes unacknowledged for lack of a commit.
        """
        if self.closing:
            return
        self.closing = True
        self.reason = reason
        if self.transport is not None and not self.acks:
            self.transport.close()  # connection_lost follows and detaches


class Broker:
    """What every connection shares: sessions by device, subscriptions, counters, bans."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.store = emu.store
        self.clock = emu.clock
        table = emu.config.limits
        self.policy = table.mqtt_policy
        self.throttle = Throttle(replace(table, limits=table.mqtt), emu.clock)
        self.max_message_bytes = table.mqtt_limit("mqtt.messageSize").count
        self.sockets: set[Connection] = set()
        self.sessions: dict[str, Connection] = {}  # device id -> its live connection
        self.exact: dict[tuple[str, str], dict[Connection, int]] = {}  # (application, topic) -> subscriber -> QoS
        self.wild: dict[str, dict[tuple[Connection, str], int]] = {}  # application -> (subscriber, filter) -> QoS
        self.bans: dict[str, Ban] = {}
        self.stats: dict[str, int] = dict.fromkeys((
            "connects", "refused_credentials", "refused_banned", "refused_rate", "bans", "states", "invalid_states",
            "published", "delivered", "too_large", "payloads"), 0)
        self.disconnects: dict[str, int] = {}
        #: seconds from a QoS 1 state's arrival to its commit, the last STORED_SAMPLES (snapshot percentiles)
        self.stored_s: deque[float] = deque(maxlen=STORED_SAMPLES)
        self._serial = 0
        self._sweeper: asyncio.TimerHandle | None = None

    # ---- life cycle ------------------------------------------------------------
    def protocol(self) -> Connection:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_EVERY_S, self._sweep)
        return Connection(self)

    def _sweep(self) -> None:
        """Close sockets that never sent CONNECT and sessions silent past 1.5 keepalives (MQTT 3.1.2.10)."""
        now = time.monotonic()
        for conn in list(self.sockets):
            if not conn.connected:
                if now - conn.opened > CONNECT_TIMEOUT_S:
                    conn.close(REASON_PROTOCOL)
            elif conn.keepalive and now - conn.last_seen > 1.5 * conn.keepalive:
                conn.close(REASON_KEEPALIVE)
        self._sweeper = asyncio.get_running_loop().call_later(SWEEP_EVERY_S, self._sweep)

    def close_all(self, reason: str = REASON_SHUTDOWN) -> int:
        """Disconnect every client (shutdown, or a reconnect storm on purpose); how many were open."""
        conns = list(self.sockets)
        for conn in conns:
            conn.close(reason)
            self.detach(conn)  # logged now: the loop may end before the transports report back
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        return len(conns)

    # ---- connect and disconnect ----------------------------------------------------
    def _refuse(self, conn: Connection, mode: str, code: int) -> None:
        if mode == "connack":
            conn.write(codec.connack(code))
        conn.close(REASON_PROTOCOL)

    def connect(self, conn: Connection, packet: codec.ConnectPacket) -> None:
        if packet.proto_level not in (3, 4):
            self._refuse(conn, "connack", CONNACK_BAD_PROTOCOL)
            return
        device_id = packet.client_id or ""
        username = packet.username or ""
        password = packet.password or ""
        found = self._authenticate(device_id, username, password)
        if found is None:
            self.stats["refused_credentials"] += 1
            self._refuse(conn, self.policy.refuse_credentials, CONNACK_NOT_AUTHORIZED)
            return
        device, key = found
        now = self.clock()
        ban = self.bans.get(device["id"])
        if ban is not None and ban.until > now:
            self.stats["refused_banned"] += 1
            self._refuse(conn, self.policy.refuse_limited, CONNACK_UNAVAILABLE)
            return
        try:
            self.throttle.check("mqtt.newConnections", {"application": key["applicationId"]})
        except ApiError:
            self.stats["refused_rate"] += 1
            self._refuse(conn, self.policy.refuse_limited, CONNACK_UNAVAILABLE)
            return
        old = self.sessions.get(device["id"])
        if old is not None:
            old.close(REASON_REPLACED)
            self.detach(old)  # its disconnect is logged before this connect
        self._serial += 1
        conn.device_id, conn.app_id, conn.key = device["id"], key["applicationId"], key
        conn.conn_key = f"{self._serial}"
        conn.principal = Principal("device", DEVICE_SCOPES, None, key["applicationId"], device["id"], key["id"])
        conn.keepalive = float(packet.keep_alive or 0)
        conn.connected = True
        self.sessions[device["id"]] = conn
        self.stats["connects"] += 1
        self.stats["payloads"] += 1
        conn.write(codec.connack(CONNACK_ACCEPTED))
        status.record(self.emu, device["id"], True, conn.ip)
        # the first state's lookups, done here: the device document (status.record rewrote it) back in the
        # store's cache and its row number in the states table, so a fleet's first round of states after a
        # reconnect storm costs what the later ones do
        self.store.get("devices", device["id"])
        self.store.device_num(device["id"])

    def _authenticate(self, device_id: str, username: str, password: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The checks of ``POST /auth/device``: key and secret, active key, device in its application and reach."""
        if not device_id or not username or not password:
            return None
        key = self.store.key_by_key(username)
        if key is None or key.get("status", "active") != "active":
            return None
        if not secret_matches(password, key["secretSalt"], key["secretHash"]):
            return None
        device = self.store.get("devices", device_id)
        if device is None or device.get("applicationId") != key["applicationId"] or not key_allows(key, device):
            return None
        return device, key

    def detach(self, conn: Connection) -> None:
        """Forget a closed connection; log its disconnect once."""
        self.sockets.discard(conn)
        if not conn.connected:
            return
        conn.connected = False
        for pattern in list(conn.subs):
            self._drop_sub(conn, pattern)
        if self.sessions.get(conn.device_id) is conn:
            del self.sessions[conn.device_id]
        self.disconnects[conn.reason] = self.disconnects.get(conn.reason, 0) + 1
        self.stats["payloads"] += 1
        status.record(self.emu, conn.device_id, False, conn.ip, conn.messages_in, conn.messages_out, conn.reason)

    def _offend(self, conn: Connection) -> None:
        """Over a message rate limit: disconnect and ban, longer for each remembered offence."""
        now = self.clock()
        ban = self.bans.get(conn.device_id)
        offences = 1
        if ban is not None and now < ban.until + self.policy.ban_forget_seconds:
            offences = ban.offences + 1
        self.bans[conn.device_id] = Ban(now + self.policy.ban_for(offences), offences)
        self.stats["bans"] += 1
        conn.close(REASON_RATE)

    def _admit(self, conn: Connection, direction: str, topic: str) -> bool:
        """Charge one message on the connection and on (device, topic, direction); False after banning."""
        try:
            self.throttle.check("mqtt.connectionMessages", {"connection": conn.conn_key})
            self.throttle.check(direction, {"device_topic": f"{conn.device_id}\0{topic}"})
        except ApiError:
            self._offend(conn)
            return False
        return True

    # ---- publish in ----------------------------------------------------------------
    def publish_in(self, conn: Connection, packet: codec.PublishPacket) -> None:
        qos = packet.qos or 0
        if qos > 1:
            conn.close(REASON_PROTOCOL)  # the broker speaks QoS 0 and 1
            return
        topic = packet.topic_name or ""
        data = packet.data or b""
        if len(data) > self.max_message_bytes:
            self.stats["too_large"] += 1
            conn.close(REASON_SIZE)
            return
        conn.messages_in += 1
        if not self._admit(conn, "mqtt.publishIn", topic):
            return
        self.stats["payloads"] += 1
        target = device_topic(topic)
        if target is not None:
            if target[1] != "state":
                conn.close(REASON_TOPIC)
                return
            self._state(conn, target[0], data, packet.packet_id if qos else None)
            return
        if not custom_allowed(conn.key, topic, "pub"):
            conn.close(REASON_TOPIC)
            return
        self.stats["published"] += 1
        self.deliver(conn.app_id, topic, data)
        if qos:
            conn.ack(packet.packet_id or 0, True)

    def _state(self, conn: Connection, device_id: str, data: bytes, packet_id: int | None) -> None:
        device = self.store.get("devices", device_id)
        if device is None or device.get("applicationId") != conn.app_id or (
                device_id != conn.device_id and not self.emu.auth.device_reaches(conn.principal, device, "device.sendState")):  # type: ignore[arg-type]
            conn.close(REASON_TOPIC)
            return
        try:
            # counted before parsing (bounds.py): a 256 KB message of tiny containers would hold the loop
            deep = measure_json(data, "body")
            states = check_body(orjson.loads(data), declared_types(device), depth_checked=not deep)
            rows = rows_for(device, states, self.emu.now_ms())
        except (orjson.JSONDecodeError, ApiError):
            self.stats["invalid_states"] += 1
            if packet_id is not None:
                conn.ack(packet_id, True)
            return
        self.stats["states"] += 1
        if not rows or self.emu.should_drop_write():
            if packet_id is not None:
                conn.ack(packet_id, True)
            return
        committed = self.store.enqueue_states(rows)
        if packet_id is None:
            return
        entry = conn.ack(packet_id, False)
        arrived = conn.arrived

        def done(fut: asyncio.Future[None]) -> None:
            self.stored_s.append(time.perf_counter() - arrived)
            if fut.cancelled() or fut.exception() is not None:
                conn.close(REASON_PROTOCOL)  # not stored: never acknowledged (the client resends)
                if conn.transport is not None:
                    conn.transport.close()
                return
            entry[1] = True
            conn.flush_acks()

        committed.add_done_callback(done)

    # ---- subscriptions and delivery ------------------------------------------------
    def _may_subscribe(self, conn: Connection, pattern: str) -> bool:
        if not valid_filter(pattern):
            return False
        target = device_topic(pattern)
        if target is not None:
            if target[1] != "command" or "+" in target[0] or "#" in target[0]:
                return False
            if target[0] == conn.device_id:
                return True
            device = self.store.get("devices", target[0])
            return (device is not None and device.get("applicationId") == conn.app_id
                    and self.emu.auth.device_reaches(conn.principal, device, "device.sendState"))  # type: ignore[arg-type]
        return custom_allowed(conn.key, pattern, "sub")

    def subscribe(self, conn: Connection, packet: codec.SubscribePacket) -> None:
        codes = []
        for pattern, qos in packet.payload.topics:
            if self._may_subscribe(conn, pattern):
                granted = min(int(qos or 0), 1)
                self._drop_sub(conn, pattern)
                conn.subs[pattern] = granted
                if "+" in pattern or "#" in pattern:
                    self.wild.setdefault(conn.app_id, {})[(conn, pattern)] = granted
                else:
                    self.exact.setdefault((conn.app_id, pattern), {})[conn] = granted
                codes.append(granted)
            else:
                codes.append(codec.SUBACK_FAILURE)
        conn.write(codec.suback(packet.variable_header.packet_id, codes))

    def unsubscribe(self, conn: Connection, packet: codec.UnsubscribePacket) -> None:
        for pattern in packet.payload.topics:
            self._drop_sub(conn, pattern)
        conn.write(codec.unsuback(packet.variable_header.packet_id))

    def _drop_sub(self, conn: Connection, pattern: str) -> None:
        if conn.subs.pop(pattern, None) is None:
            return
        if "+" in pattern or "#" in pattern:
            wild = self.wild.get(conn.app_id, {})
            wild.pop((conn, pattern), None)
            if not wild:
                self.wild.pop(conn.app_id, None)
        else:
            subs = self.exact.get((conn.app_id, pattern), {})
            subs.pop(conn, None)
            if not subs:
                self.exact.pop((conn.app_id, pattern), None)

    def deliver(self, app_id: str, topic: str, message: bytes) -> int:
        """Send a message to every subscriber of the application matching ``topic``; how many got it.

        A subscriber over ``mqtt.publishOut`` or ``mqtt.connectionMessages`` is disconnected and
        banned instead (the limits hold in both directions).
        """
        targets: dict[Connection, int] = dict(self.exact.get((app_id, topic), {}))
        for (conn, pattern), qos in (self.wild.get(app_id) or {}).items():
            if matches(pattern, topic):
                targets[conn] = max(qos, targets.get(conn, 0))
        if len(message) > self.max_message_bytes:
            return 0
        sent = 0
        for conn, qos in targets.items():
            if conn.closing or not self._admit(conn, "mqtt.publishOut", topic):
                continue
            packet_id = None
            if qos:
                conn.next_id = conn.next_id % 65535 + 1
                packet_id = conn.next_id
            conn.messages_out += 1
            conn.write(codec.publish(topic, message, qos, packet_id))
            sent += 1
        self.stats["delivered"] += sent
        return sent

    def push_command(self, app_id: str, device_id: str, command: dict[str, Any]) -> int:
        """A command sent through the REST API, to the device's command topic (``time`` as extended JSON)."""
        message = {"name": command["name"], "payload": command.get("payload"), "time": {"$date": command["time"]}}
        self.stats["payloads"] += 1
        return self.deliver(app_id, f"losant/{device_id}/command", orjson.dumps(message))

    def drop_connections(self, app_id: str | None = None) -> list[str]:
        """Close every device connection (of one application): a reconnect storm on purpose. Returns the
        devices whose connection it closed, so the client that asked can tell these losses from others."""
        conns = [c for c in list(self.sessions.values()) if app_id is None or c.app_id == app_id]
        for conn in conns:
            conn.close(REASON_ADMIN)
        return [c.device_id for c in conns]

    def snapshot(self, reset_latency: bool = False) -> dict[str, Any]:
        """Counters for the admin endpoint and the benchmarks; ``stored_ms``: arrival-to-commit percentiles
        of the QoS 1 states since the last reset (``reset_latency`` starts a new series after reading)."""
        ordered = sorted(self.stored_s)
        n = len(ordered)
        stored = {"count": n, **{f"p{q}": round(ordered[min(n - 1, n * q // 100)] * 1e3, 3) if n else None for q in (50, 99)},
                  "max": round(ordered[-1] * 1e3, 3) if n else None}
        if reset_latency:
            self.stored_s.clear()
        return {"connected": len(self.sessions), "sockets": len(self.sockets), "banned": sum(
            1 for b in self.bans.values() if b.until > self.clock()), **self.stats, "disconnects": dict(self.disconnects),
            "stored_ms": stored}
