"""One device: get/patch/delete, state in and out, commands, connection status, logs (REFERENCE 5.5)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import validation
from .http import int_param
from .routes_devices import check_device_refs, device_doc_from, rendered
from .states import check_body, declared_types, rows_for
from .timeparse import format_time, parse_input_time, resolve_query_time
from .validation import validate
from .views import SUCCESS

if TYPE_CHECKING:
    from .app import Emulator
    from .http import Request

MAX_HISTORY = 10_000
FAR_FUTURE = 253_402_300_799_999  # 9999-12-31


def _device(emu: Emulator, req: Request, operation: str) -> dict[str, Any]:
    app_id = req.params["applicationId"]
    emu.auth.application(req.principal, app_id)
    return emu.auth.device(req.principal, app_id, req.params["deviceId"], operation)


def _time(value: Any, now: int, default: int, name: str) -> int:
    try:
        return resolve_query_time(value, now, default)
    except ValueError:
        raise validation(f"Query parameter {name} is not a readable time") from None


def history_window(emu: Emulator, req: Request) -> tuple[int, int, int, bool]:
    """(start, end, limit, descending) from limit/since/sortDirection/duration/start/end."""
    q = req.query
    now = emu.now_ms()
    end = _time(q.get("end"), now, 0, "end") if q.get("end") not in (None, "") else FAR_FUTURE
    if q.get("start") not in (None, ""):
        start = _time(q.get("start"), now, 1, "start")
    elif q.get("duration") not in (None, ""):
        start = min(end, now) - int_param(q, "duration", 0, minimum=0)
    else:
        start = 0
    if q.get("since") not in (None, ""):
        start = max(start, int_param(q, "since", 0))
    direction = str(q.get("sortDirection") or "desc").lower()
    if direction not in ("asc", "desc"):
        raise validation("sortDirection must be asc or desc")
    limit = int_param(q, "limit", 1, minimum=1, maximum=MAX_HISTORY)
    return start, end, limit, direction == "desc"


def get(emu: Emulator, req: Request) -> dict[str, Any]:
    return rendered(_device(emu, req, "device.get"), req)


def patch(emu: Emulator, req: Request) -> dict[str, Any]:
    device = dict(_device(emu, req, "device.patch"))
    body = req.json()
    validate("devicePatch", body)
    check_device_refs(emu, device["applicationId"], body, device["id"])
    device.update(device_doc_from(body), lastUpdated=emu.now_ms())
    device.pop("_types", None)
    emu.store.put("devices", device["id"], device, application_id=device["applicationId"])
    return rendered(device, req)


def delete(emu: Emulator, req: Request) -> dict[str, Any]:
    device = _device(emu, req, "device.delete")
    emu.store.delete_device(device["id"])
    return SUCCESS


async def send_state(emu: Emulator, req: Request) -> dict[str, Any]:
    """The hot path: check, throttle per target device, group-commit, then answer."""
    device = _device(emu, req, "device.sendState")
    states = check_body(req.json(), declared_types(device), depth_checked=True)
    emu.throttle.check("device.sendState", {"device": device["id"], "application": device["applicationId"]})
    rows = rows_for(device, states, emu.now_ms())
    if rows and not emu.should_drop_write():
        await emu.store.enqueue_states(rows)
    return SUCCESS


def get_state(emu: Emulator, req: Request) -> list[dict[str, Any]]:
    device = _device(emu, req, "device.getState")
    start, end, limit, desc = history_window(emu, req)
    return [{"time": format_time(t), "data": d} for t, d in emu.store.states(device["id"], start, end, limit, desc)]


def composite(emu: Emulator, device_id: str, query: dict[str, Any], now: int) -> dict[str, Any]:
    start = _time(query.get("start"), now, 1, "start")
    end = _time(query.get("end"), now, 0, "end")
    wanted = [a for a in str(query.get("attributes") or "").split(",") if a]
    out: dict[str, Any] = {}
    for t, data in emu.store.iter_states(device_id, start, end, descending=True):
        for name, value in data.items():
            if name not in out and (not wanted or name in wanted):
                out[name] = {"value": value, "time": format_time(t)}
        if wanted and len(out) == len(wanted):
            break
    return out


def get_composite(emu: Emulator, req: Request) -> dict[str, Any]:
    device = _device(emu, req, "device.getCompositeState")
    return composite(emu, device["id"], req.query, emu.now_ms())


def store_command(emu: Emulator, device_id: str, body: dict[str, Any]) -> None:
    now = emu.now_ms()
    t = parse_input_time(body["time"], now) if body.get("time") is not None else now
    t = now if t is None else t
    doc = {"time": format_time(t), "name": body["name"], "payload": body.get("payload")}
    emu.store.add_row("commands", device_id, t, doc)
    if emu.mqtt is not None:  # pushed to a connected device's command topic (mqtt/broker.py)
        emu.mqtt.push_command((emu.store.get("devices", device_id) or {}).get("applicationId", ""), device_id, doc)


def send_command(emu: Emulator, req: Request) -> dict[str, Any]:
    device = _device(emu, req, "device.sendCommand")
    body = req.json()
    validate("deviceCommand", body)
    emu.throttle.check("device.sendCommand", {"device": device["id"], "application": device["applicationId"]})
    store_command(emu, device["id"], body)
    return SUCCESS


def get_command(emu: Emulator, req: Request) -> list[dict[str, Any]]:
    device = _device(emu, req, "device.getCommand")
    start, end, limit, desc = history_window(emu, req)
    return emu.store.rows("commands", device["id"], start, end, limit, desc)


def set_connection_status(emu: Emulator, req: Request) -> dict[str, Any]:
    device = dict(_device(emu, req, "device.setConnectionStatus"))
    body = req.json()
    validate("deviceConnectionStatus", body)
    emu.throttle.check("device.setConnectionStatus", {"device": device["id"], "application": device["applicationId"]})
    now = emu.now_ms()
    connected = 1 if body["status"] == "connected" else 0
    info: dict[str, Any] = {"time": now, "connected": connected}
    for name in ("connectedAt", "disconnectedAt"):
        if body.get(name) is not None:
            info[name] = parse_input_time(body[name], now)
    entry = {"connected": connected, "time": format_time(now)}
    for name in ("disconnectReason", "messagesFromClient", "messagesToClient", "ipAddress"):
        if name in body:
            entry[name] = body[name]
            info[name] = body[name]
    device.update(connectionInfo=info, connectionStatus="connected" if connected else "disconnected")
    emu.store.put("devices", device["id"], device, application_id=device["applicationId"])
    emu.store.add_row("logs", device["id"], now, entry)
    return SUCCESS


def get_logs(emu: Emulator, req: Request) -> list[dict[str, Any]]:
    device = _device(emu, req, "device.getLogEntries")
    start, end, limit, desc = history_window(emu, req)
    return emu.store.rows("logs", device["id"], start, end, limit, desc)


def register(emu: Emulator) -> None:
    base = "/applications/{applicationId}/devices/{deviceId}"
    r = emu.route
    r("GET", base, "device.get", get)
    r("PATCH", base, "device.patch", patch)
    r("DELETE", base, "device.delete", delete)
    r("POST", base + "/state", "device.sendState", send_state)
    r("GET", base + "/state", "device.getState", get_state)
    r("GET", base + "/compositeState", "device.getCompositeState", get_composite)
    r("POST", base + "/command", "device.sendCommand", send_command)
    r("GET", base + "/command", "device.getCommand", get_command)
    r("POST", base + "/setConnectionStatus", "device.setConnectionStatus", set_connection_status)
    r("GET", base + "/logs", "device.getLogEntries", get_logs)
