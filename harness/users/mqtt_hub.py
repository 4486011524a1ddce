"""The run's MQTT side every user shares: the broker, the devices' links, the commands awaited.

One per run (``RunContext.mqtt``), made by the first MQTT user to start. An operator
stamps each command it sends (``stamp_command``): the payload carries its send time and an
id, so a device that receives it over MQTT records ``mqtt.commandDelivery`` from the
operator's send to its own receipt, and the hub remembers which connected devices should
receive it. What is still awaited when the MQTT users stop is recorded as a timeout.

The send time is taken right before the REST call; in respect mode a call the ledger
holds back waits after it (``LosantUser.call``), which would count as delivery time, so
operators should command well within ``device.sendCommand``'s limit (they do by default).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Collection
from typing import Any, Mapping

from harness.users.mqtt_link import BROKER_CLOSED, DROPPED, KEEPALIVE_TIMEOUT, BrokerAddress, Link

#: Losses a drop can cause, as the client sees them (the broker closed the socket; or the client noticed late).
_DROPPABLE = (BROKER_CLOSED, KEEPALIVE_TIMEOUT)

#: Awaited deliveries kept at most (a tag command to a huge fleet): beyond it, new ones are not tracked.
MAX_AWAITED = 1_000_000


class MqttHub:
    """Shared by the run's MQTT users and operators (gevent: one thread, no locks needed)."""

    def __init__(self, address: BrokerAddress, run_tag: str) -> None:
        self.address = address
        self.run_tag = run_tag
        #: One TLS context for every connection (mqtts://): building one loads the CA store (milliseconds, memory)
        self.tls_context = ssl.create_default_context() if address.tls else None
        self.links: dict[str, Link] = {}  # device id -> the link its commands arrive on (a peripheral: its gateway's)
        self.tags: dict[str, Mapping[str, str]] = {}  # device id -> its class's tags (tag commands)
        self.awaited: dict[str, dict[str, float]] = {}  # device id -> command id -> operator's send time
        self.awaited_count = 0
        self.serial = 0
        self.users = 0  # MQTT users running
        #: A drop the harness asked for (a reconnect storm) is in flight: broker-side losses wait for its answer.
        self.drop_in_flight = False
        self.held: list[tuple[str, int, Callable[[int], None]]] = []  # (device, reason, record) while in flight
        self.tried: set[str] = set()  # devices that attempted a connect while the drop was in flight
        #: Devices the drop closed whose client has not noticed yet: their next broker-side loss is the drop's.
        self.dropped: set[str] = set()
        #: The MQTT users are stopping: commands sent from now on are not awaited (the links close).
        self.stopping = False
        #: Bounds the CONNECTs waiting for a CONNACK in this process (a gevent semaphore, set by the first user).
        self.connecting: Any = None
        #: For the progress line (the MQTT samples do not pass through Locust's request statistics).
        self.connected = 0  # connections open now
        self.published = 0  # states acknowledged (PUBACK) so far
        self.disconnects = 0

    def join(self, links: list[Link], tags: Mapping[str, Mapping[str, str]],
             peripherals: Mapping[str, Link] | None = None) -> None:
        """A user's links, and ``peripherals``: peripheral id -> its gateway's link (subscribed to its commands)."""
        self.users += 1
        for link in links:
            self.links[link.device_id] = link
        self.links.update(peripherals or {})
        self.tags.update(tags)

    def leave(self, links: list[Link], peripherals: Collection[str] = ()) -> None:
        self.users -= 1
        for link in links:
            if self.links.get(link.device_id) is link:
                del self.links[link.device_id]
        for device in peripherals:
            self.links.pop(device, None)

    # -- drops on purpose: label from what the broker did ------------------------------------------
    def begin_drop(self) -> None:
        """The harness asks the broker to drop connections: hold broker-side losses until it answers."""
        self.drop_in_flight = True
        self.held, self.tried = [], set()

    def end_drop(self, devices: Collection[str] | None) -> None:
        """The drop's answer: ``devices`` whose connection the broker closed (None: unknown). A held loss of
        such a device is the drop's (reason 5) when it is that device's only held loss; with two or more
        (lost, reconnected and lost again while the drop ran) which one the drop closed is not known, and
        each keeps the client's reason, for the judge to explain with the drop's timing bounds. Devices
        not heard from yet are remembered: their next broker-side loss is the drop's."""
        self.drop_in_flight = False
        held, self.held = self.held, []
        listed = set(devices or ())
        count: dict[str, int] = {}
        for device, _, _ in held:
            count[device] = count.get(device, 0) + 1
        for device, reason, record in held:
            record(DROPPED if device in listed and count[device] == 1 else reason)
        # a device that tried to connect while the drop ran either had its loss held above, or lost a
        # connection its client never saw accepted (no disconnect to label)
        self.dropped |= listed - set(count) - self.tried
        self.tried = set()

    def label_loss(self, device: str, reason: int, record: Callable[[int], None]) -> None:
        """Record a loss with the reason the broker's answer supports (``record(reason)``, now or at the
        drop's answer)."""
        if reason in _DROPPABLE:
            if self.drop_in_flight:
                self.held.append((device, reason, record))
                return
            if device in self.dropped:
                self.dropped.discard(device)
                reason = DROPPED
        record(reason)

    def attempting(self, device: str) -> None:
        """A connect attempt: the device's loss to a drop, if any, was seen (or never will be)."""
        self.dropped.discard(device)
        if self.drop_in_flight:
            self.tried.add(device)

    # -- commands ------------------------------------------------------------------------------------
    def stamp(self, payload: dict[str, Any], devices: list[str] | None, tags: Mapping[str, str], sent: float) -> str:
        """Mark a command's payload (send time, id) and await it at the devices connected now:
        ``devices``, or (a tag command, None) every MQTT device carrying ``tags``."""
        self.serial += 1
        cid = f"c{self.serial}"
        payload["sent"] = sent
        payload["cmd"] = cid
        if devices is None:
            targets = [d for d, t in self.tags.items() if all(t.get(k) == v for k, v in tags.items())]
        else:
            targets = devices
        awaited = self.awaited
        if self.stopping:
            targets = []
        for device in targets:
            link = self.links.get(device)
            if link is not None and link.connected and self.awaited_count < MAX_AWAITED:
                awaited.setdefault(device, {})[cid] = sent
                self.awaited_count += 1
        return cid

    def settle(self, cid: str, accepted: bool) -> None:
        """The REST call's answer: a refused command reaches no device."""
        if not accepted:
            for device in list(self.awaited):
                self.received(device, cid)

    def received(self, device: str, cid: str) -> None:
        pending = self.awaited.get(device)
        if pending is not None and pending.pop(cid, None) is not None:
            self.awaited_count -= 1
            if not pending:
                del self.awaited[device]

    def overdue(self, devices: list[str]) -> list[tuple[str, float]]:
        """Deliveries to ``devices`` still awaited, (device, send time); forgotten once returned."""
        out = []
        for device in devices:
            for sent in (self.awaited.pop(device, None) or {}).values():
                out.append((device, sent))
                self.awaited_count -= 1
        return out


def stamp_command(ctx: Any, payload: dict[str, Any], devices: list[str] | None,
                  tags: Mapping[str, str] | None = None, sent: float = 0.0) -> str | None:
    """For operators: stamp a command when the run has MQTT devices (else None, payload untouched)."""
    hub = getattr(ctx, "mqtt", None)
    if hub is None:
        return None
    return hub.stamp(payload, devices, tags or {}, sent)  # type: ignore[no-any-return]


def settle_command(ctx: Any, cid: str | None, status: int) -> None:
    hub = getattr(ctx, "mqtt", None)
    if hub is not None and cid is not None:
        hub.settle(cid, 200 <= status < 300)
