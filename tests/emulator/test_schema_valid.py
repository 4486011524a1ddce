"""Every emulated endpoint, driven as users drive it, answers what the official schemas admit.

The official client (``losant-rest`` 2.3.0, what users use; it asks ``_links=true&_embedded=true``)
calls each of the 59 routes on a real socket; every answer it receives (successes and errors)
is checked against the schema of its endpoint and status (``harness/emulator/responses.py``:
the official files in ``harness/emulator/schemas/``, sibling ``$ref``s through a referencing
registry). The two import calls the client lacks go through ``requests`` with the same query.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from typing import Any, Iterator
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import requests
from emulator_support import FakeClock, make_api, schema_problems
from losant_rest import Client
from losant_rest.losant_error import LosantError

from harness.emulator.config import DEFAULT_EMAIL, DEFAULT_PASSWORD
from harness.emulator.openapi import routes_of
from harness.emulator.process import ThreadHandle, start_in_thread
from harness.emulator.responses import answer_problems, problems, schema_name

HEX = "0123456789abcdef01234567"
OTHER_EMAIL, OTHER_PASSWORD = "other@example.com", "other-password-1"
ETAG = re.compile(r'"[0-9a-f]+-[A-Za-z0-9+/]{22}"\Z')
CLIENT_QUERY = {"_actions": "false", "_links": "true", "_embedded": "true"}


class Seen:
    """Every answer the client received: (operation, status) pairs and the schema problems found."""

    def __init__(self, handle: ThreadHandle) -> None:
        self.handle = handle
        self.statuses: dict[str, set[int]] = defaultdict(set)
        self.problems: list[str] = []
        self.checked = 0
        self._real = requests.request

    def request(self, method: str, url: str, **kw: Any) -> requests.Response:
        response = self._real(method, url, **kw)
        parts = urlsplit(response.request.url or url)
        router = self.handle.app.router
        try:
            operation = router.match(method.upper(), parts.path)[0].operation
        except Exception:  # noqa: BLE001 - an unrouted path: only its error answer is checked
            operation = "unrouted"
        self.statuses[operation].add(response.status_code)
        try:
            body = response.json()
        except ValueError:
            self.problems.append(f"{method} {parts.path}: answer is not JSON")
            return response
        self.problems += answer_problems(router, method.upper(), parts.path, parts.query.encode(), response.status_code, body)
        self.checked += 1
        return response


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadHandle]:
    # jobs hold their slot for 10 minutes: every "still running" below holds on a busy machine
    handle = start_in_thread(job_seconds=600.0, users=((OTHER_EMAIL, OTHER_PASSWORD),))
    yield handle
    handle.stop()
    assert handle.app.unexpected_errors == 0


@pytest.fixture(scope="module")
def seen(server: ThreadHandle) -> Iterator[Seen]:
    record = Seen(server)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(requests, "request", record.request)  # what losant_rest.client calls
        yield record


@pytest.fixture(scope="module")
def ctx(server: ThreadHandle, seen: Seen) -> dict[str, Any]:
    anon = Client(url=server.url)
    auth = anon.auth.authenticate_user(credentials={"email": DEFAULT_EMAIL, "password": DEFAULT_PASSWORD})
    c = Client(auth_token=auth["token"], url=server.url)
    a = c.applications.post(application={"name": "schema-app", "description": "checked"})["id"]
    gw = c.devices.post(applicationId=a, device={"name": "gw", "deviceClass": "gateway",
                                                  "attributes": [{"name": "temp", "dataType": "number"}]})["id"]
    dev = c.devices.post(applicationId=a, device={
        "name": "dev", "tags": [{"key": "floor", "value": "8"}],
        "attributes": [{"name": "temp", "dataType": "number"}, {"name": "on", "dataType": "boolean"},
                       {"name": "mode", "dataType": "string"}]})["id"]
    per = c.devices.post(applicationId=a, device={"name": "per", "deviceClass": "peripheral", "gatewayId": gw,
                                                   "attributes": [{"name": "temp", "dataType": "number"}]})["id"]
    return {"url": server.url, "anon": anon, "c": c, "token": auth["token"], "a": a, "gw": gw, "dev": dev, "per": per}


def _raw(ctx: dict[str, Any], method: str, path: str, token: str | None = None, params: dict[str, str] | None = None,
         **kw: Any) -> requests.Response:
    """A call the official client has no method for, sent as it would send it."""
    headers = {"Accept": "application/json", "Accept-Version": "^1.31.0"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, ctx["url"] + path, params={**CLIENT_QUERY, **(params or {})}, headers=headers,
                            timeout=10, **kw)


def _drive_everything(ctx: dict[str, Any]) -> None:
    c, anon, a, d, gw, per = ctx["c"], ctx["anon"], ctx["a"], ctx["dev"], ctx["gw"], ctx["per"]
    now = int(time.time() * 1000)
    # applications
    c.applications.get()
    c.applications.get(filter="schema*", sortField="creationDate", sortDirection="desc")
    c.application.get(applicationId=a)
    c.application.patch(applicationId=a, application={"description": "patched"})
    doomed = c.applications.post(application={"name": "doomed"})["id"]
    c.application.delete(applicationId=doomed)
    # access keys, device auth, API tokens
    key = c.application_keys.post(applicationId=a, applicationKey={"name": "all devices"})
    tagged = c.application_keys.post(applicationId=a, applicationKey={"deviceTags": [{"key": "floor"}], "description": "x"})
    c.application_keys.get(applicationId=a)
    c.application_keys.get(applicationId=a, query={"status": "active"}, filterField="name", filter="all*")
    c.application_key.get(applicationId=a, applicationKeyId=key["id"])
    c.application_key.patch(applicationId=a, applicationKeyId=tagged["id"], applicationKey={"status": "inactive"})
    c.application_key.delete(applicationId=a, applicationKeyId=tagged["id"])
    dauth = anon.auth.authenticate_device(credentials={"deviceId": d, "key": key["key"], "secret": key["secret"]})
    gauth = anon.auth.authenticate_device(credentials={"deviceId": gw, "key": key["key"], "secret": key["secret"]})
    dev_client = Client(auth_token=dauth["token"], url=ctx["url"])
    forever = c.application_api_tokens.post(applicationId=a, apiToken={"name": "forever", "scope": ["all.Application.read"]})
    expiring = c.application_api_tokens.post(applicationId=a, apiToken={"name": "soon", "expirationDate": "2099-01-01T00:00:00Z"})
    c.application_api_tokens.get(applicationId=a)
    c.application_api_token.get(applicationId=a, apiTokenId=forever["id"])
    c.application_api_token.patch(applicationId=a, apiTokenId=forever["id"], apiToken={"description": "d"})
    c.application_api_token.delete(applicationId=a, apiTokenId=expiring["id"])
    # devices collection
    c.devices.get(applicationId=a)
    c.devices.get(applicationId=a, tagFilter=[{"key": "floor", "value": "8"}], deviceClass="standalone")
    c.devices.get(applicationId=a, deviceClass=["gateway", "peripheral"], excludeConnectionInfo="true")
    c.devices.get(applicationId=a, query={"$and": [{"deviceClass": "peripheral"}]}, parentId=HEX)
    c.devices.get(applicationId=a, tagsAsObject="true", attributesAsObject="true")
    dev_client.devices.get(applicationId=a)
    c.devices.send_command(applicationId=a, multiDeviceCommand={"name": "reboot", "deviceTags": [{"key": "floor"}]})
    # one device
    c.device.get(applicationId=a, deviceId=d)
    dev_client.device.get(applicationId=a, deviceId=d)
    c.device.patch(applicationId=a, deviceId=d, device={"description": "patched"})
    c.device.send_state(applicationId=a, deviceId=d, deviceState={"data": {"temp": 20, "mode": "eco"}, "time": now - 5000})
    dev_client.device.send_state(applicationId=a, deviceId=d, deviceState=[{"data": {"temp": 21, "on": True}, "time": now - 4000}])
    Client(auth_token=gauth["token"], url=ctx["url"]).device.send_state(applicationId=a, deviceId=per, deviceState={"data": {"temp": 7}})
    c.device.get_state(applicationId=a, deviceId=d, limit=10)
    c.device.get_composite_state(applicationId=a, deviceId=d)
    c.devices.get_composite_state(applicationId=a, attributes="temp")
    c.device.send_command(applicationId=a, deviceId=d, deviceCommand={"name": "blink", "payload": {"n": 2}})
    c.device.get_command(applicationId=a, deviceId=d, limit=5)
    c.device.set_connection_status(applicationId=a, deviceId=d, connectionStatus={"status": "connected", "ipAddress": "10.0.0.1"})
    c.device.set_connection_status(applicationId=a, deviceId=d, connectionStatus={"status": "disconnected", "disconnectReason": "bye"})
    c.device.get_log_entries(applicationId=a, deviceId=d, limit=5)
    c.device.get(applicationId=a, deviceId=d)  # now with connectionInfo.time
    tmp = c.devices.post(applicationId=a, device={"name": "tmp"})["id"]
    c.device.delete(applicationId=a, deviceId=tmp)
    # data
    for aggregation in ("MEAN", "NONE", {"type": "MAX", "options": {}}, {"type": "TIMEATVALUE", "options": {"value": "eco"}}):
        c.data.time_series_query(applicationId=a, query={"end": now, "duration": 60000, "resolution": 30000,
                                                          "aggregation": aggregation, "deviceIds": [d]})
    c.data.time_series_query(applicationId=a, query={"deviceTags": [{"key": "floor"}], "attributes": ["temp"]})
    c.data.last_value_query(applicationId=a, query={"deviceIds": [d], "attribute": "temp"})
    dev_client.data.last_value_query(applicationId=a, query={})
    # events
    ev = c.events.post(applicationId=a, event={"level": "warning", "subject": "hot", "deviceId": d, "eventTags": {"k": "v"}})
    c.events.post(applicationId=a, event={"level": "info", "subject": "plain"})
    c.event.get(applicationId=a, eventId=ev["id"])
    c.events.get(applicationId=a)
    c.events.get(applicationId=a, query={"level": "warning"})
    c.events.get(applicationId=a, state="new", filter="h*")
    # jobs and the other throttled endpoints
    c.application.archive_data(applicationId=a, date=str(now))
    c.application.backfill_archive_data(applicationId=a)
    c.application.export(applicationId=a, options={})
    c.application.full_data_tables_archive(applicationId=a)
    c.application.full_events_archive(applicationId=a)
    c.data.export(applicationId=a, query={"deviceIds": [d]})
    c.devices.export(applicationId=a, options={})
    c.devices.payload_counts(applicationId=a, options={})
    c.events.export(applicationId=a, exportData={"email": "a@b.c"})
    c.device.export(applicationId=a, deviceId=d)
    c.data_table_rows.export(applicationId=a, dataTableId=HEX, exportData={})
    c.notebook.request_input_data_export(applicationId=a, notebookId=HEX, exportOptions={})
    c.embedded_deployments.export(applicationId=a, options={})
    c.dashboard.send_report(dashboardId=HEX, reportConfig={"toEmail": ["a@b.c"]})
    c.instance.generate_report(instanceId=HEX, options={})
    c.application.clone(applicationId=a, options={"dryRun": True})
    assert _raw(ctx, "POST", f"/applications/{a}/import", ctx["token"], json={}).status_code == 202
    assert _raw(ctx, "POST", "/applications/import", ctx["token"], json={}).status_code == 202
    with pytest.raises(LosantError) as err:  # one slot per owner for applications import and clone
        c.application.clone(applicationId=a, options={})
    assert err.value.status == 429
    other = anon.auth.authenticate_user(credentials={"email": OTHER_EMAIL, "password": OTHER_PASSWORD})
    oc = Client(auth_token=other["token"], url=ctx["url"])
    assert oc.application.clone(applicationId=oc.applications.post(application={"name": "b"})["id"], options={})["jobQueued"]
    c.application.mqtt_publish_message(applicationId=a, payload={"topic": "t/1", "message": "m"})
    c.flow.press_virtual_button(applicationId=a, flowId=HEX, button={"key": "k"})
    c.data_table_rows.post(applicationId=a, dataTableId=HEX, dataTableRow={"name": "one", "n": 1})
    c.data_table_rows.post(applicationId=a, dataTableId=HEX, dataTableRow=[{"name": "two"}, {"on": True}])
    c.data_table_rows.get(applicationId=a, dataTableId=HEX)
    c.data_table_rows.query(applicationId=a, dataTableId=HEX, query={})
    c.files.post(applicationId=a, file={"name": "a.bin", "type": "file", "fileSize": 10})
    c.files.post(applicationId=a, file={"name": "b.txt", "type": "file", "fileSize": 1, "contentType": "text/plain"})


def test_every_endpoint_answers_what_its_schema_admits(server: ThreadHandle, seen: Seen, ctx: dict[str, Any]) -> None:
    _drive_everything(ctx)
    assert not seen.problems, "\n".join(seen.problems[:20])
    routed = {route.operation for route in routes_of(server.app.router)}
    succeeded = {op for op, statuses in seen.statuses.items() if any(s < 300 for s in statuses)}
    missing = routed - succeeded
    assert not missing, f"operations never answered with success: {sorted(missing)}"
    assert len(routed) == 60 and seen.checked >= 90


def test_error_answers_are_schema_valid(seen: Seen, ctx: dict[str, Any]) -> None:
    c, anon, a, d = ctx["c"], ctx["anon"], ctx["a"], ctx["dev"]
    statuses = []
    calls = [
        lambda: anon.auth.authenticate_user(credentials={"email": DEFAULT_EMAIL, "password": "wrong-password"}),  # 401
        lambda: c.devices.post(applicationId=a, device={"name": ""}),  # 400
        lambda: c.device.get(applicationId=a, deviceId=HEX),  # 404
        lambda: c.application.clone(applicationId=a, options={"dryRun": "yes", "bogus": 1}),  # 422
        lambda: c.embedded_deployments.export(applicationId=a, options={}),  # 429 (one per 5 min, used above)
        lambda: Client(auth_token=c.application_api_tokens.post(applicationId=a, apiToken={"name": "ro", "scope": ["devices.get"]})["token"],
                       url=ctx["url"]).device.delete(applicationId=a, deviceId=d),  # 403
    ]
    for call in calls:
        with pytest.raises(LosantError) as err:
            call()
        statuses.append(err.value.status)
    assert statuses == [401, 400, 404, 422, 429, 403]
    assert _raw(ctx, "PUT", f"/applications/{a}", ctx["token"], json={}).status_code == 405
    assert _raw(ctx, "GET", "/no/such/path", ctx["token"]).status_code == 404
    # 413 is checked in process (tests/emulator/test_limits_http.py through emulator_support.Api)
    assert not seen.problems, "\n".join(seen.problems[:20])


def test_decoration_follows_the_documented_example(ctx: dict[str, Any]) -> None:
    """REFERENCE section 3 / the REST overview's device list: collection ``_type`` and ``_links``,
    items with ``_type``, ``_links`` (application, collection, self) and an ``_etag``."""
    c, a, d = ctx["c"], ctx["a"], ctx["dev"]
    listing = c.devices.get(applicationId=a, sortField="name")
    assert listing["_type"] == "devices"
    assert listing["_links"] == {"application": {"href": f"/applications/{a}"}, "self": {"href": f"/applications/{a}/devices"}}
    item = next(i for i in listing["items"] if i["id"] == d)
    assert item["_type"] == "device" and ETAG.match(item["_etag"])
    assert item["_links"] == {"application": {"href": f"/applications/{a}"}, "devices": {"href": f"/applications/{a}/devices"},
                              "self": {"href": f"/applications/{a}/devices/{d}"}}
    one = c.device.get(applicationId=a, deviceId=d)
    assert one["_etag"] == item["_etag"]  # same representation, same tag
    changed = c.device.patch(applicationId=a, deviceId=d, device={"description": "changed again"})
    assert changed["_etag"] != one["_etag"] and changed["_etag"] == c.device.get(applicationId=a, deviceId=d)["_etag"]
    size = int(changed["_etag"].strip('"').split("-")[0], 16)  # the length of the undecorated representation
    assert size == len(orjson.dumps({k: v for k, v in changed.items() if not k.startswith("_")}))
    for kind, listing_of in (("application", c.applications.get()), ("applicationKey", c.application_keys.get(applicationId=a)),
                             ("apiToken", c.application_api_tokens.get(applicationId=a)), ("event", c.events.get(applicationId=a))):
        assert listing_of["_links"]["self"]["href"].startswith("/applications")
        for entry in listing_of["items"]:
            assert entry["_type"] == kind and ETAG.match(entry["_etag"]) and entry["_links"]["self"]["href"].endswith(entry["id"])
    # _links=false (the client always sends true) leaves the links out, nothing else
    plain = _raw(ctx, "GET", f"/applications/{a}/devices/{d}", ctx["token"], params={"_links": "false"}).json()
    assert "_links" not in plain and plain["_type"] == "device" and plain["_etag"] == changed["_etag"]


def test_unset_fields_are_absent_not_null(ctx: dict[str, Any]) -> None:
    """The platform omits what is unset where the schema types a field as a string."""
    c, a = ctx["c"], ctx["a"]
    fresh = c.devices.post(applicationId=a, device={"name": "fresh"})
    assert "gatewayId" not in fresh and fresh["connectionInfo"] == {"connected": None}
    assert "gatewayId" not in c.device.get(applicationId=a, deviceId=fresh["id"])
    patched = c.device.patch(applicationId=a, deviceId=fresh["id"], device={"name": "fresh2"})
    assert "gatewayId" not in patched and "time" not in patched["connectionInfo"]
    per = c.device.get(applicationId=a, deviceId=ctx["per"])
    assert per["gatewayId"] == ctx["gw"]
    tok = c.application_api_tokens.post(applicationId=a, apiToken={"name": "no-expiry"})
    assert "expirationDate" not in tok
    assert "expirationDate" not in c.application_api_token.get(applicationId=a, apiTokenId=tok["id"])
    assert all("expirationDate" not in t for t in c.application_api_tokens.get(applicationId=a, filter="no-expiry")["items"])
    dated = c.application_api_tokens.post(applicationId=a, apiToken={"name": "dated", "expirationDate": "2099-01-01T00:00:00Z"})
    assert dated["expirationDate"] == "2099-01-01T00:00:00.000Z"


def test_access_keys_name_their_actors_as_the_schema_does(ctx: dict[str, Any]) -> None:
    c, a = ctx["c"], ctx["a"]
    me = c.applications.get()["items"][0]["ownerId"]
    key = c.application_keys.post(applicationId=a, applicationKey={"name": "actors"})
    assert (key["createdById"], key["createdByType"], key["lastUpdatedById"], key["lastUpdatedByType"]) == (me, "user", me, "user")
    assert not {"creatorId", "creatorType", "creatorName"} & set(key)
    tok = c.application_api_tokens.post(applicationId=a, apiToken={"name": "keys", "scope": ["applicationKey.patch"]})
    patched = Client(auth_token=tok["token"], url=ctx["url"]).application_key.patch(
        applicationId=a, applicationKeyId=key["id"], applicationKey={"description": "by token"})
    assert (patched["createdById"], patched["lastUpdatedById"], patched["lastUpdatedByType"]) == (me, tok["id"], "apiToken")


def test_time_at_value_is_echoed_in_the_object_form(ctx: dict[str, Any]) -> None:
    c, a, d = ctx["c"], ctx["a"], ctx["dev"]
    now = int(time.time() * 1000)
    agg = {"type": "TIMEATVALUE", "options": {"value": "eco"}}
    answer = c.data.time_series_query(applicationId=a, query={"end": now, "duration": 60000, "aggregation": agg, "deviceIds": [d]})
    assert answer["aggregation"] == agg
    assert c.data.time_series_query(applicationId=a, query={"aggregation": "MIN", "deviceIds": [d]})["aggregation"] == "MIN"


def test_schema_table_covers_every_route_and_status(server: ThreadHandle) -> None:
    for route in routes_of(server.app.router):
        assert any(schema_name(route.operation, s) for s in (200, 201, 202)), route.operation
        assert schema_name(route.operation, 404) == "error"
    assert schema_name("application.clone", 422) == "validationErrors"
    assert schema_name("device.get", 201) is None
    series = {"start": "2026-01-01T00:00:00.000Z", "end": "2026-01-01T00:00:00.000Z", "resolution": None,
              "aggregation": "TIMEATVALUE", "limit": None, "order": "asc", "devices": {}}
    key_query = {"$and": [{"key": {"$like": "k*"}}]}
    for fast in (True, False):  # jsonschema_rs and jsonschema + referencing agree
        # the checker finds what the issue reported, and dates that are not RFC 3339
        assert problems("device.get", 200, {"id": HEX, "gatewayId": None}, fast=fast)
        assert problems("applicationApiToken.get", 200, {"id": HEX, "expirationDate": None}, fast=fast)
        assert problems("data.timeSeriesQuery", 200, series, fast=fast)
        assert not problems("data.timeSeriesQuery", 200, {**series, "aggregation": {"type": "TIMEATVALUE", "options": {"value": 1}}},
                            fast=fast)
        assert problems("device.get", 200, {"creationDate": "yesterday"}, fast=fast)
        assert not problems("devices.get", 200, {"items": [{"id": HEX, "_type": "device", "_etag": '"1-x"'}], "_links": {}}, fast=fast)
        # sibling references resolve (advancedDeviceQuery refers to itself)
        assert not problems("devices.get", 200, {"query": {"$or": [{"$and": [{"name": "a"}]}]}}, fast=fast)
        assert not problems("applicationKeys.get", 200, {"items": [], "applicationId": HEX}, {"query": str(key_query)}, fast=fast)


def test_the_in_process_hook_catches_a_bad_answer() -> None:
    """emulator_support.Api checks every answer with this; a null gatewayId would fail any test that saw it."""
    api = make_api(FakeClock())
    try:
        path = f"/applications/{HEX}/devices/{HEX}"
        bad = httpx.Response(200, json={"id": HEX, "gatewayId": None}, request=httpx.Request("GET", "http://emulator" + path))
        assert any("gatewayId" in p for p in schema_problems(api.app, bad))
        good = httpx.Response(404, json={"type": "NotFound", "message": "Device was not found"},
                              request=httpx.Request("GET", "http://emulator" + path))
        assert schema_problems(api.app, good) == []
        odd = httpx.Response(201, json={"success": True}, request=httpx.Request("POST", "http://emulator" + path + "/state"))
        assert schema_problems(api.app, odd) == ["device.sendState: status 201 is not a documented answer"]
    finally:
        api.close()
