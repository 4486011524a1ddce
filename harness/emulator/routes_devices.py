"""The devices collection: list, create, multi-device command, composite state (REFERENCE 5.4)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable

from .errors import validation
from .http import ApiResponse
from .query import compile_query, tag_filter_predicate
from .validation import validate
from .views import SUCCESS, collection, device_view, links_wanted, new_id, page, resource

if TYPE_CHECKING:
    from .app import Emulator
    from .http import Request

SORT_FIELDS = ("name", "id", "creationDate", "lastUpdated", "connectionStatus", "deletedAt")
_HEX24 = re.compile(r"[A-Fa-f0-9]{24}\Z")
_DEVICE_FIELDS = ("name", "description", "tags", "attributes", "deviceClass", "gatewayId", "parentId",
                  "systemInterval", "keepDuplicates")


def predicate(query: Any) -> Callable[[dict[str, Any]], bool]:
    """Compile an advanced device query; a malformed one is a 400 naming the problem."""
    try:
        return compile_query(query, "device")
    except ValueError as exc:
        raise validation(str(exc)) from None


def rendered(doc: dict[str, Any], req: Request) -> dict[str, Any]:
    """A device as every device answer shows it: device_view plus the platform's decoration."""
    return resource("device", device_view(doc, req.query), links_wanted(req.raw_query))


def device_doc_from(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in _DEVICE_FIELDS if k in body}


def check_device_refs(emu: Emulator, app_id: str, body: dict[str, Any], self_id: str | None = None) -> None:
    """gatewayId and parentId must name devices of the same application (not the device itself)."""
    for name in ("gatewayId", "parentId"):
        ref = body.get(name)
        if ref:
            other = emu.store.get("devices", ref)
            if other is None or other.get("applicationId") != app_id or ref == self_id:
                raise validation(f"{name}: no such device in this application")


def post(emu: Emulator, req: Request) -> ApiResponse:
    app = emu.auth.application(req.principal, req.params["applicationId"])
    body = req.json()
    validate("devicePost", body)
    check_device_refs(emu, app["id"], body)
    now = emu.now_ms()
    device_id = new_id()
    doc = {"description": "", "tags": [], "attributes": [], "deviceClass": "standalone", "gatewayId": None,
           "parentId": None, **device_doc_from(body), "id": device_id, "deviceId": device_id,
           "applicationId": app["id"], "creationDate": now, "lastUpdated": now,
           "connectionInfo": {"time": None, "connected": None}, "connectionStatus": "disconnected"}
    parent = doc.get("parentId")
    doc["ancestorIds"] = ([parent] + (emu.store.get("devices", parent) or {}).get("ancestorIds", [])) if parent else []
    emu.store.put("devices", device_id, doc, application_id=app["id"])
    return ApiResponse(201, rendered(doc, req))


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


def list_matching(emu: Emulator, req: Request, app_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Devices selected by the list parameters (query overrides the others) and the echo fields."""
    q = req.query
    docs = emu.auth.visible(req.principal, emu.store.list("devices", app_id))
    adv = req.json_query("query")
    echo: dict[str, Any] = {"applicationId": app_id}
    if adv is not None:
        match = predicate(adv)
        echo["query"] = adv
        return [d for d in docs if match(d)], echo
    classes = _as_list(q.get("deviceClass"))
    if classes:
        validate("deviceClassFilter", classes, "deviceClass")
        docs = [d for d in docs if d.get("deviceClass") in classes]
        if len(set(classes)) == 1:  # devices.json echoes one class, as a string; several are not echoed
            echo["deviceClass"] = classes[0]
    tag_filter = _as_list(q.get("tagFilter"))
    if tag_filter:
        if not all(isinstance(t, dict) for t in tag_filter):
            raise validation("tagFilter: entries must be {key, value} objects")
        validate("deviceTagFilter", tag_filter, "tagFilter")
        match_tags = tag_filter_predicate(tag_filter)  # compiled once for the whole list
        docs = [d for d in docs if match_tags(d.get("tags"))]
        echo["tagFilter"] = tag_filter
    if q.get("parentId") not in (None, ""):
        parent = None if q["parentId"] == "null" else q["parentId"]
        if parent is not None and not _HEX24.match(str(parent)):
            raise validation("parentId: must be a device id (24 hex characters) or null")
        docs = [d for d in docs if d.get("parentId") == parent]
        echo["parentId"] = parent
    return docs, echo


def get(emu: Emulator, req: Request) -> dict[str, Any]:
    app = emu.auth.application(req.principal, req.params["applicationId"])
    docs, echo = list_matching(emu, req, app["id"])
    if "filterField" in req.query and req.query["filterField"] != "name":
        raise validation("filterField must be name")
    envelope = page(docs, req.query, SORT_FIELDS, "name", "asc", ("name",), emu.config.max_per_page,
                    lambda d: rendered(d, req), echo)
    return collection(envelope, "devices", f"/applications/{app['id']}/devices", links_wanted(req.raw_query),
                      {"application": f"/applications/{app['id']}"})


def select(emu: Emulator, req: Request, app_id: str, body: dict[str, Any], ids_key: str = "deviceIds",
           tags_key: str = "deviceTags", query_key: str = "deviceQuery") -> list[dict[str, Any]] | None:
    """Devices named by ids OR tags OR query (inclusive); None when no selector was given."""
    ids, tags, adv = body.get(ids_key), body.get(tags_key), body.get(query_key)
    if ids is None and tags is None and adv is None:
        return None
    match = predicate(adv) if adv is not None else None
    wanted = set(ids or [])
    if tags is None and adv is None:  # ids only: fetch those (a data query naming 1,000 of 100,000 devices)
        found = (emu.store.get("devices", i) for i in dict.fromkeys(ids or []) if isinstance(i, str))
        return emu.auth.visible(req.principal, [d for d in found if d is not None and d.get("applicationId") == app_id])
    docs = emu.auth.visible(req.principal, emu.store.list("devices", app_id))
    match_tags = tag_filter_predicate(tags) if tags else None
    return [d for d in docs if d["id"] in wanted or (match_tags is not None and match_tags(d.get("tags")))
            or (match is not None and match(d))]


def send_command(emu: Emulator, req: Request) -> dict[str, Any]:
    from .routes_device import store_command  # noqa: PLC0415 - avoid an import cycle

    app = emu.auth.application(req.principal, req.params["applicationId"])
    body = req.json()
    validate("multiDeviceCommand", body)
    targets = select(emu, req, app["id"], body)
    if targets is None:
        raise validation("body: one of deviceIds, deviceTags or deviceQuery is required")
    for device in targets:
        store_command(emu, device["id"], body)
    return SUCCESS


def composite_state(emu: Emulator, req: Request) -> dict[str, Any]:
    from .routes_device import composite  # noqa: PLC0415

    app = emu.auth.application(req.principal, req.params["applicationId"])
    docs, echo = list_matching(emu, req, app["id"])
    now = emu.now_ms()
    envelope = page(docs, req.query, SORT_FIELDS[:-1], "name", "asc", ("name",), emu.config.max_per_page,
                    lambda d: {"id": d["id"], "name": d["name"], "compositeState": composite(emu, d["id"], req.query, now)},
                    echo)
    return collection(envelope, "compositeDevicesState", f"/applications/{app['id']}/devices/compositeState",
                      links_wanted(req.raw_query), {"application": f"/applications/{app['id']}"})


def register(emu: Emulator) -> None:
    base = "/applications/{applicationId}/devices"
    emu.route("GET", base, "devices.get", get)
    emu.route("POST", base, "devices.post", post)
    emu.route("POST", base + "/command", "devices.sendCommand", send_command)
    emu.route("GET", base + "/compositeState", "devices.getCompositeState", composite_state)

