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
from typing import Any, Mapping

from harness.users.mqtt_link import DROPPED, BrokerAddress, Link

#: Awaited deliveries kept at most (a tag command to a huge fleet): beyond it, new ones are not tracked.
MAX_AWAITED = 1_000_000


class MqttHub:
    """Shared by the run's MQTT users and operators (gevent: one thread, no locks needed)."""

    def __init__(self, address: BrokerAddress, run_tag: str) -> None:
        self.address = address
        self.run_tag = run_tag
        #: One TLS context for every connection (mqtts://): building one loads the CA store (milliseconds, memory)
        self.tls_context = ssl.create_default_context() if address.tls else None
        self.links: dict[str, Link] = {}  # device id -> its link (every MQTT user's)
        self.tags: dict[str, Mapping[str, str]] = {}  # device id -> its class's tags (tag commands)
        self.awaited: dict[str, dict[str, float]] = {}  # device id -> command id -> operator's send time
        self.awaited_count = 0
        self.serial = 0
        self.users = 0  # MQTT users running
        #: A loss before this time was asked for by the harness (a reconnect storm): reason 5, not 1.
        self.drop_until = 0.0
        #: The MQTT users are stopping: commands sent from now on are not awaited (the links close).
        self.stopping = False
        #: Bounds the CONNECTs waiting for a CONNACK in this process (a gevent semaphore, set by the first user).
        self.connecting: Any = None
        #: For the progress line (the MQTT samples do not pass through Locust's request statistics).
        self.connected = 0  # connections open now
        self.published = 0  # states acknowledged (PUBACK) so far
        self.disconnects = 0

    def join(self, links: list[Link], tags: Mapping[str, Mapping[str, str]]) -> None:
        self.users += 1
        for link in links:
            self.links[link.device_id] = link
        self.tags.update(tags)

    def leave(self, links: list[Link]) -> None:
        self.users -= 1
        for link in links:
            if self.links.get(link.device_id) is link:
                del self.links[link.device_id]

    def loss_reason(self, reason: int, at: float) -> int:
        """A broker-side close during a drop the harness asked for is reason 5."""
        return DROPPED if at <= self.drop_until and reason in (1, 3) else reason

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
