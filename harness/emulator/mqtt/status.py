"""A device's ``connectionInfo`` and connection log follow its broker connection.

The same fields the REST ``setConnectionStatus`` writes (routes_device.py), so a REST
reader cannot tell who set them; the MQTT limits, not that REST call's throttle, govern
how often a device may connect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..timeparse import format_time

if TYPE_CHECKING:
    from ..app import Emulator


def record(emu: Emulator, device_id: str, connected: bool, ip: str, messages_in: int = 0, messages_out: int = 0,
           reason: str | None = None) -> None:
    """Write a connect or a disconnect of ``device_id`` (a device deleted meanwhile is skipped)."""
    stored = emu.store.get("devices", device_id)
    if stored is None:
        return
    device = {k: v for k, v in stored.items() if not k.startswith("_")}
    now = emu.now_ms()
    info: dict[str, Any] = dict(device.get("connectionInfo") or {})
    info.update(time=now, connected=1 if connected else 0, ipAddress=ip)
    entry: dict[str, Any] = {"connected": 1 if connected else 0, "time": format_time(now), "ipAddress": ip}
    if connected:
        info["connectedAt"] = now
        for name in ("disconnectedAt", "disconnectReason", "messagesFromClient", "messagesToClient"):
            info.pop(name, None)
    else:
        info.update(disconnectedAt=now, messagesFromClient=messages_in, messagesToClient=messages_out)
        entry.update(messagesFromClient=messages_in, messagesToClient=messages_out)
        if reason:
            info["disconnectReason"] = entry["disconnectReason"] = reason
    device.update(connectionInfo=info, connectionStatus="connected" if connected else "disconnected")
    emu.store.put("devices", device_id, device, application_id=device["applicationId"])
    emu.store.add_row("logs", device_id, now, entry)
