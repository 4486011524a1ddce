"""Data queries: time series (real aggregation) and last value (REFERENCE 5.7)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from .aggregate import last_values, time_series, validate_aggregation
from .errors import ApiError, validation
from .routes_devices import select
from .timeparse import MAX_MS, MIN_MS, format_time, resolve_query_time
from .validation import validate

if TYPE_CHECKING:
    from .app import Emulator
    from .http import Request

DEFAULT_DURATION_MS = 60_000  # [I] Losant's documented example uses explicit durations


def _devices(emu: Emulator, req: Request, app_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    chosen = select(emu, req, app_id, body)
    if chosen is None:  # no selector: every device the caller may see
        chosen = emu.auth.visible(req.principal, emu.store.list("devices", app_id))
    return chosen


def _time(value: Any, now: int, default: int, name: str) -> int:
    try:
        return resolve_query_time(value, now, default)
    except ValueError as exc:
        raise validation(f"{name}: {exc}") from None


def _tags(device: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for tag in device.get("tags") or []:
        out.setdefault(tag["key"], []).append(tag["value"])
    return out


def _echo(aggregation: Any, agg_type: str) -> Any:
    """The aggregation as timeSeriesData.json admits it: a name, or the object form with its options
    (TIMEATVALUE exists only as ``{"type": "TIMEATVALUE", "options": {"value": v}}``)."""
    if not isinstance(aggregation, dict):
        return agg_type
    out: dict[str, Any] = {"type": agg_type}
    if "options" in aggregation:
        out["options"] = aggregation["options"]
    return out


def time_series_query(emu: Emulator, req: Request) -> dict[str, Any]:
    app = emu.auth.application(req.principal, req.params["applicationId"])
    body = req.json() or {}
    validate("timeSeriesQuery", body)
    now = emu.now_ms()
    end = _time(body.get("end"), now, 0, "end")
    if body.get("start") is not None and body.get("end") is not None:
        start = _time(body.get("start"), now, 0, "start")
    elif body.get("start") is not None and body.get("duration") is None:
        start = _time(body.get("start"), now, 0, "start")
    else:
        start = end - int(body.get("duration") or DEFAULT_DURATION_MS)
    for name, value in (("start", start), ("end", end)):
        if not MIN_MS <= value <= MAX_MS:
            raise validation(f"{name}: the query window must lie within years 1..9999 (check start, end and duration)")
    if start > end:
        raise validation("start: the query window starts after it ends")
    aggregation = body.get("aggregation", "MEAN")
    try:
        agg = validate_aggregation(aggregation)
    except ValueError as exc:
        raise validation(f"aggregation: {exc}") from None
    resolution = body.get("resolution")
    attributes = body.get("attributes") or None
    limit, order = body.get("limit"), body.get("order", "asc")
    devices_out: dict[str, Any] = {}
    for device in _devices(emu, req, app["id"], body):
        points = emu.store.states(device["id"], start, end, None, False)
        if agg.type == "TIMEATVALUE":
            points = emu.store.states(device["id"], 0, start - 1, 1, True) + points
        try:
            series = time_series(points, start, end, resolution, aggregation, attributes, limit, order)
        except ValueError as exc:
            raise validation(str(exc)) from None
        devices_out[device["id"]] = {"name": device.get("name"), "tags": _tags(device),
                                     "points": [{"time": format_time(p["time"]), "data": p["data"]} for p in series]}
    answer = {"start": format_time(start), "end": format_time(end), "resolution": resolution,
              "aggregation": _echo(aggregation, agg.type), "limit": limit, "order": order, "devices": devices_out}
    cap = emu.throttle.size_cap("data.timeSeriesQuery")
    if cap is not None and len(orjson.dumps(answer)) > cap:
        raise ApiError(400, "Validation", f"The answer would exceed {cap} bytes; narrow the query "
                                          "(fewer devices or attributes, a shorter window or a coarser resolution)")
    return answer


def last_value_query(emu: Emulator, req: Request) -> dict[str, Any]:
    app = emu.auth.application(req.principal, req.params["applicationId"])
    body = req.json() or {}
    validate("lastValueQuery", body)
    now = emu.now_ms()
    end = _time(body.get("end"), now, 0, "end") if body.get("end") is not None else 253_402_300_799_999
    attribute = body.get("attribute")
    out: dict[str, Any] = {}
    for device in _devices(emu, req, app["id"], body):
        if attribute:
            points = []
            for t, d in emu.store.iter_states(device["id"], 0, end, descending=True):
                if attribute in d:
                    points = [(t, d)]
                    break
        else:
            points = emu.store.states(device["id"], 0, end, 1, True)
        found = last_values(points, attribute, end)
        if found is not None:
            out[device["id"]] = {"time": format_time(found[0]), "data": found[1]}
    return out


def register(emu: Emulator) -> None:
    base = "/applications/{applicationId}/data"
    emu.route("POST", base + "/time-series-query", "data.timeSeriesQuery", time_series_query)
    emu.route("POST", base + "/last-value-query", "data.lastValueQuery", last_value_query)
