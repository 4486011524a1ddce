"""Events: create (15 per 15 s per application, the one documented 429), list, get (REFERENCE 5.8)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import not_found, validation
from .http import ApiResponse
from .query import compile_query
from .timeparse import parse_input_time
from .validation import validate
from .views import collection, links_wanted, new_id, page, public, resource

if TYPE_CHECKING:
    from .app import Emulator
    from .http import Request

SORT_FIELDS = ("subject", "id", "creationDate", "lastUpdated", "level", "state", "deviceId")


def _view(doc: dict[str, Any], req: Request) -> dict[str, Any]:
    return resource("event", public(doc), links_wanted(req.raw_query))


def post(emu: Emulator, req: Request) -> ApiResponse:
    app = emu.auth.application(req.principal, req.params["applicationId"])
    body = req.json()
    validate("eventPost", body)
    device_name = None
    if body.get("deviceId"):
        device = emu.store.get("devices", body["deviceId"])
        if device is None or device["applicationId"] != app["id"]:
            raise validation("deviceId: no such device in this application")
        device_name = device.get("name")
    emu.throttle.check("events.post", {"application": app["id"]})
    now = emu.now_ms()
    created = parse_input_time(body["creationDate"], now) if body.get("creationDate") is not None else now
    p = req.principal
    event_id = new_id()
    doc = {"state": "new", "eventTags": {}, **{k: v for k, v in body.items() if k != "disableTagChangeTracking"},
           "id": event_id, "eventId": event_id, "applicationId": app["id"], "creationDate": created or now,
           "lastUpdated": now, "sourceType": "user" if p.kind == "user" else "apiToken",
           "sourceId": p.user_id if p.kind == "user" else p.api_token_id, "sourceName": p.name, "updates": []}
    if device_name is not None:
        doc["deviceName"] = device_name
    emu.store.put("events", event_id, doc, application_id=app["id"])
    return ApiResponse(201, _view(doc, req))


def get(emu: Emulator, req: Request) -> dict[str, Any]:
    app = emu.auth.application(req.principal, req.params["applicationId"])
    docs = emu.store.list("events", app["id"])
    q = req.query
    echo: dict[str, Any] = {"applicationId": app["id"]}
    adv = req.json_query("query")
    if adv is not None:
        try:
            match = compile_query(adv, "event")
        except ValueError as exc:
            raise validation(str(exc)) from None
        docs = [d for d in docs if match(d)]
        echo["query"] = adv
        q = {k: v for k, v in q.items() if k not in ("filter", "filterField", "state")}
    elif q.get("state"):
        if q["state"] not in ("new", "acknowledged", "resolved"):
            raise validation("state must be new, acknowledged or resolved")
        docs = [d for d in docs if d.get("state") == q["state"]]
        echo["state"] = q["state"]
    envelope = page(docs, q, SORT_FIELDS, "creationDate", "desc", ("subject",), emu.config.max_per_page,
                    lambda d: _view(d, req), echo)
    return collection(envelope, "events", f"/applications/{app['id']}/events", links_wanted(req.raw_query),
                      {"application": f"/applications/{app['id']}"})


def get_one(emu: Emulator, req: Request) -> dict[str, Any]:
    app = emu.auth.application(req.principal, req.params["applicationId"])
    doc = emu.store.get("events", req.params["eventId"])
    if doc is None or doc["applicationId"] != app["id"]:
        raise not_found("Event")
    return _view(doc, req)


def register(emu: Emulator) -> None:
    base = "/applications/{applicationId}/events"
    emu.route("POST", base, "events.post", post)
    emu.route("GET", base, "events.get", get)
    emu.route("GET", base + "/{eventId}", "event.get", get_one)
