"""MQTT 3.1.1 packets in and out of a byte buffer, with amqtt's packet classes.

Why amqtt's codec and not its broker: the broker keeps a session object, a reader task,
a task per packet and a delivery queue per client (about 40 KB a connection and ~105 us a
QoS 1 message on this machine, bench/mqtt_broker.py), and it acknowledges a QoS 1 publish
before anything could store it. The emulator's broker (``broker.py``) needs the opposite:
acknowledge only after the state is committed, disconnect and ban on a limit, and hold
10,000 idle devices cheaply. So it owns the sessions and uses the library for framing:
amqtt's classes decode every packet (their ``from_stream`` readers are driven here over
an in-memory buffer, where they never suspend) and encode every packet sent.
"""

from __future__ import annotations

import struct
from typing import Any, Coroutine, TypeVar

from amqtt.adapters import BufferReader
from amqtt.errors import AMQTTError, CodecError, MQTTError, NoDataError
from amqtt.mqtt import packet_class
from amqtt.mqtt.connack import ConnackPacket
from amqtt.mqtt.connect import ConnectPacket
from amqtt.mqtt.constants import QOS_1
from amqtt.mqtt.packet import (
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBSCRIBE,
    UNSUBSCRIBE,
    MQTTFixedHeader,
    MQTTPacket,
)
from amqtt.mqtt.pingresp import PingRespPacket
from amqtt.mqtt.puback import PubackPacket
from amqtt.mqtt.publish import PublishPacket
from amqtt.mqtt.suback import SubackPacket
from amqtt.mqtt.subscribe import SubscribePacket
from amqtt.mqtt.unsuback import UnsubackPacket
from amqtt.mqtt.unsubscribe import UnsubscribePacket

__all__ = ["CONNECT", "DISCONNECT", "PINGREQ", "PUBACK", "PUBCOMP", "PUBLISH", "PUBREC", "PUBREL", "SUBSCRIBE",
           "UNSUBSCRIBE", "ConnectPacket", "FrameError", "PublishPacket", "SubscribePacket", "UnsubscribePacket",
           "connack", "decode", "frame_length", "pingresp", "puback", "publish", "suback", "unsuback"]

T = TypeVar("T")
SUBACK_FAILURE = 0x80


class FrameError(Exception):
    """The bytes are not a valid MQTT packet: the connection is closed (MQTT 3.1.1 4.8)."""


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that reads only from an in-memory buffer, so it never suspends."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise FrameError("the packet decoder waited for more data than the frame holds")


def frame_length(buf: bytes | bytearray | memoryview, start: int = 0) -> tuple[int, int] | None:
    """(header bytes, remaining length) of the frame at ``start`` in ``buf``; None until complete enough.

    The remaining-length varint is read here, before the whole frame has arrived, so an
    oversized message is refused without buffering it (the 256 KB limit).
    """
    multiplier, value = 1, 0
    available = len(buf) - start
    for i in range(1, min(available, 5)):
        byte = buf[start + i]
        value += (byte & 0x7F) * multiplier
        if not byte & 0x80:
            return i + 1, value
        multiplier *= 128
    if available >= 5:
        raise FrameError("malformed remaining length")
    return None


def decode(frame: bytes) -> MQTTPacket[Any, Any, Any]:
    """One complete frame (fixed header included) as an amqtt packet object."""
    try:
        reader = BufferReader(frame)
        header = _run(MQTTFixedHeader.from_stream(reader))
        if header is None:
            raise FrameError("empty frame")
        cls = packet_class(header)
        return _run(cls.from_stream(reader, fixed_header=header))  # type: ignore[no-any-return]
    except (AMQTTError, CodecError, MQTTError, NoDataError, UnicodeDecodeError, ValueError, IndexError, struct.error) as exc:
        raise FrameError(f"malformed packet ({type(exc).__name__})") from None


def connack(code: int, session_present: bool = False) -> bytes:
    return ConnackPacket.build(1 if session_present else 0, code).to_bytes()


_PUBACKS: dict[int, bytes] = {}  # at most 65,535 four-byte frames: one per packet id, encoded once


def puback(packet_id: int) -> bytes:
    frame = _PUBACKS.get(packet_id)
    if frame is None:
        frame = _PUBACKS[packet_id] = PubackPacket.build(packet_id).to_bytes()
    return frame


def suback(packet_id: int, codes: list[int]) -> bytes:
    return SubackPacket.build(packet_id, codes).to_bytes()


def unsuback(packet_id: int) -> bytes:
    return UnsubackPacket.build(packet_id).to_bytes()


def pingresp() -> bytes:
    return PingRespPacket.build().to_bytes()


def publish(topic: str, message: bytes, qos: int, packet_id: int | None) -> bytes:
    return PublishPacket.build(topic, message, packet_id if qos else None, False, QOS_1 if qos else 0, False).to_bytes()
