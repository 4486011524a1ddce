"""Happy paths of every endpoint through the unmodified official client (``losant-rest`` 2.3.0).

The client is requests-based, so the emulator runs on a real socket (uvicorn in a thread).
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
from losant_rest import Client
from losant_rest.losant_error import LosantError

from harness.emulator.config import DEFAULT_EMAIL, DEFAULT_PASSWORD
from harness.emulator.process import ThreadHandle, start_in_thread

HEX = "0123456789abcdef01234567"


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadHandle]:
    handle = start_in_thread(job_seconds=0.05)
    yield handle
    handle.stop()
    assert handle.app.unexpected_errors == 0


@pytest.fixture(scope="module")
def ctx(server: ThreadHandle) -> dict[str, Any]:
    anon = Client(url=server.url)
    auth = anon.auth.authenticate_user(credentials={"email": DEFAULT_EMAIL, "password": DEFAULT_PASSWORD})
    client = Client(auth_token=auth["token"], url=server.url)
    app = client.applications.post(application={"name": "client-app"})
    a = app["id"]
    gw = client.devices.post(applicationId=a, device={"name": "gw", "deviceClass": "gateway",
                                                       "attributes": [{"name": "temp", "dataType": "number"}]})
    dev = client.devices.post(applicationId=a, device={
        "name": "dev", "tags": [{"key": "floor", "value": "8"}],
        "attributes": [{"name": "temp", "dataType": "number"}, {"name": "on", "dataType": "boolean"}]})
    per = client.devices.post(applicationId=a, device={"name": "per", "deviceClass": "peripheral", "gatewayId": gw["id"],
                                                        "attributes": [{"name": "temp", "dataType": "number"}]})
    return {"url": server.url, "anon": anon, "client": client, "a": a, "dev": dev["id"], "gw": gw["id"], "per": per["id"]}


def test_auth_and_applications(ctx: dict[str, Any]) -> None:
    c, a = ctx["client"], ctx["a"]
    assert any(item["id"] == a for item in c.applications.get()["items"])
    assert c.application.get(applicationId=a)["name"] == "client-app"
    assert c.application.patch(applicationId=a, application={"description": "d"})["description"] == "d"
    other = c.applications.post(application={"name": "to-delete"})
    assert c.application.delete(applicationId=other["id"]) == {"success": True}
    with pytest.raises(LosantError) as err:
        c.application.get(applicationId=other["id"])
    assert err.value.status == 404
    with pytest.raises(LosantError) as err:
        ctx["anon"].auth.authenticate_user(credentials={"email": DEFAULT_EMAIL, "password": "wrong-password"})
    assert err.value.status == 401


def test_keys_tokens_and_device_auth(ctx: dict[str, Any]) -> None:
    c, a = ctx["client"], ctx["a"]
    key = c.application_keys.post(applicationId=a, applicationKey={"name": "k", "deviceTags": [{"key": "floor"}]})
    assert key["secret"] and "secret" not in c.application_key.get(applicationId=a, applicationKeyId=key["id"])
    assert c.application_keys.get(applicationId=a, filterField="name", filter="k*")["totalCount"] >= 1
    assert c.application_key.patch(applicationId=a, applicationKeyId=key["id"], applicationKey={"description": "x"})["description"] == "x"
    dauth = ctx["anon"].auth.authenticate_device(credentials={"deviceId": ctx["dev"], "key": key["key"], "secret": key["secret"]})
    assert dauth["restricted"] is True and dauth["applicationId"] == a
    dclient = Client(auth_token=dauth["token"], url=ctx["url"])
    assert dclient.device.get(applicationId=a, deviceId=ctx["dev"])["name"] == "dev"
    tok = c.application_api_tokens.post(applicationId=a, apiToken={"name": "t", "scope": ["devices.get"]})
    assert tok["token"] and tok["scope"] == ["devices.get"]
    tclient = Client(auth_token=tok["token"], url=ctx["url"])
    assert tclient.devices.get(applicationId=a)["totalCount"] >= 3
    assert c.application_api_tokens.get(applicationId=a)["totalCount"] >= 1
    assert c.application_api_token.get(applicationId=a, apiTokenId=tok["id"])["name"] == "t"
    assert c.application_api_token.patch(applicationId=a, apiTokenId=tok["id"], apiToken={"description": "z"})["description"] == "z"
    assert c.application_api_token.delete(applicationId=a, apiTokenId=tok["id"]) == {"success": True}
    assert c.application_key.delete(applicationId=a, applicationKeyId=key["id"]) == {"success": True}


def test_devices_collection(ctx: dict[str, Any]) -> None:
    c, a = ctx["client"], ctx["a"]
    assert c.devices.get(applicationId=a, tagFilter=[{"key": "floor", "value": "8"}])["totalCount"] == 1
    assert c.devices.get(applicationId=a, deviceClass=["gateway", "peripheral"])["totalCount"] == 2
    assert c.devices.get(applicationId=a, filter="g*")["items"][0]["name"] == "gw"
    assert c.devices.get(applicationId=a, query={"$and": [{"deviceClass": "peripheral"}]})["totalCount"] == 1
    page = c.devices.get(applicationId=a, perPage=1, page=1, sortField="name", sortDirection="desc")
    assert page["count"] == 1 and page["items"][0]["name"] == "gw"
    assert c.devices.get(applicationId=a, parentId=HEX)["totalCount"] == 0
    assert c.devices.send_command(applicationId=a, multiDeviceCommand={"name": "reboot", "deviceTags": [{"key": "floor"}]}) == {"success": True}
    assert c.device.get_command(applicationId=a, deviceId=ctx["dev"])[0]["name"] == "reboot"
    comp = c.devices.get_composite_state(applicationId=a, attributes="temp")
    assert comp["totalCount"] == 3


def test_device_state_round_trip(ctx: dict[str, Any]) -> None:
    c, a, d = ctx["client"], ctx["a"], ctx["dev"]
    now = int(time.time() * 1000)
    assert c.device.send_state(applicationId=a, deviceId=d, deviceState={"data": {"temp": 20, "ignored": 1}, "time": now - 5000}) == {"success": True}
    c.device.send_state(applicationId=a, deviceId=d, deviceState=[
        {"data": {"temp": 21}, "time": (now - 4000) / 1000},  # epoch seconds
        {"data": {"on": "true"}, "time": {"$date": "2026-01-01T00:00:00Z"}},  # old (> 30 days): ignored
        {"data": {"on": True}, "time": now - 4000},  # same ms: merged
    ])
    states = c.device.get_state(applicationId=a, deviceId=d, limit=10)
    assert [s["data"] for s in states] == [{"temp": 21, "on": True}, {"temp": 20}]
    assert c.device.get_state(applicationId=a, deviceId=d, limit=10, sortDirection="asc")[0]["data"] == {"temp": 20}
    assert len(c.device.get_state(applicationId=a, deviceId=d, limit=10, duration=4500, end=now)) == 1
    comp = c.device.get_composite_state(applicationId=a, deviceId=d)
    assert comp["temp"]["value"] == 21 and comp["on"]["value"] is True
    ts = c.data.time_series_query(applicationId=a, query={"end": now, "duration": 60000, "resolution": 60000,
                                                            "aggregation": "MAX", "attributes": ["temp"], "deviceIds": [d]})
    points = ts["devices"][d]["points"]
    assert points and max(p["data"]["temp"] for p in points) == 21 and ts["devices"][d]["tags"] == {"floor": ["8"]}
    lv = c.data.last_value_query(applicationId=a, query={"deviceIds": [d], "attribute": "temp"})
    assert lv[d]["data"] == {"temp": 21}


def test_gateway_sends_for_peripheral(ctx: dict[str, Any]) -> None:
    c, a = ctx["client"], ctx["a"]
    key = c.application_keys.post(applicationId=a, applicationKey={})
    gauth = ctx["anon"].auth.authenticate_device(credentials={"deviceId": ctx["gw"], "key": key["key"], "secret": key["secret"]})
    g = Client(auth_token=gauth["token"], url=ctx["url"])
    assert g.device.send_state(applicationId=a, deviceId=ctx["per"], deviceState={"data": {"temp": 7}}) == {"success": True}
    assert c.device.get_state(applicationId=a, deviceId=ctx["per"])[0]["data"] == {"temp": 7}


def test_device_actions(ctx: dict[str, Any]) -> None:
    c, a, d = ctx["client"], ctx["a"], ctx["dev"]
    assert c.device.send_command(applicationId=a, deviceId=d, deviceCommand={"name": "blink", "payload": {"n": 2}}) == {"success": True}
    assert c.device.get_command(applicationId=a, deviceId=d, limit=5)[0] ["payload"] == {"n": 2}
    assert c.device.set_connection_status(applicationId=a, deviceId=d, connectionStatus={"status": "connected", "ipAddress": "10.0.0.1"}) == {"success": True}
    assert c.device.get(applicationId=a, deviceId=d)["connectionInfo"]["connected"] == 1
    c.device.set_connection_status(applicationId=a, deviceId=d, connectionStatus={"status": "disconnected", "disconnectReason": "bye"})
    logs = c.device.get_log_entries(applicationId=a, deviceId=d, limit=5)
    assert [entry["connected"] for entry in logs] == [0, 1] and logs[0]["disconnectReason"] == "bye"
    assert c.devices.get(applicationId=a, query={"connectionStatus": "disconnected"})["totalCount"] == 3
    assert c.device.patch(applicationId=a, deviceId=d, device={"description": "patched"})["description"] == "patched"
    assert c.device.export(applicationId=a, deviceId=d)["jobQueued"] is True
    tmp = c.devices.post(applicationId=a, device={"name": "tmp"})
    assert c.device.delete(applicationId=a, deviceId=tmp["id"]) == {"success": True}


def test_events(ctx: dict[str, Any]) -> None:
    c, a = ctx["client"], ctx["a"]
    ev = c.events.post(applicationId=a, event={"level": "warning", "subject": "hot", "deviceId": ctx["dev"], "eventTags": {"k": "v"}})
    assert ev["state"] == "new" and ev["deviceName"] == "dev"
    assert c.event.get(applicationId=a, eventId=ev["id"])["subject"] == "hot"
    assert c.events.get(applicationId=a, query={"level": "warning"})["totalCount"] == 1
    assert c.events.get(applicationId=a, state="resolved")["totalCount"] == 0


def test_throttled_and_job_endpoints(ctx: dict[str, Any]) -> None:
    c, a = ctx["client"], ctx["a"]
    jobs = [
        lambda: c.application.archive_data(applicationId=a, date=str(int(time.time() * 1000))),
        lambda: c.application.backfill_archive_data(applicationId=a),
        lambda: c.application.export(applicationId=a, options={}),
        lambda: c.application.full_data_tables_archive(applicationId=a),
        lambda: c.application.full_events_archive(applicationId=a),
        lambda: c.data.export(applicationId=a, query={"deviceIds": [ctx["dev"]]}),
        lambda: c.devices.export(applicationId=a, options={}),
        lambda: c.devices.payload_counts(applicationId=a, options={}),
        lambda: c.events.export(applicationId=a, exportData={"email": "a@b.c"}),
        lambda: c.data_table_rows.export(applicationId=a, dataTableId=HEX, exportData={}),
        lambda: c.notebook.request_input_data_export(applicationId=a, notebookId=HEX, exportOptions={}),
        lambda: c.embedded_deployments.export(applicationId=a, options={}),
        lambda: c.dashboard.send_report(dashboardId=HEX, reportConfig={"toEmail": ["a@b.c"]}),
        lambda: c.instance.generate_report(instanceId=HEX, options={}),
        lambda: c.application.clone(applicationId=a, options={}),
    ]
    for call in jobs:
        answer = call()
        assert answer["jobQueued"] is True and answer["success"] is True, answer
    assert c.application.clone(applicationId=a, options={"dryRun": True}) == {"success": True}
    assert c.application.mqtt_publish_message(applicationId=a, payload={"topic": "t/1", "message": "m"}) == {"success": True}
    assert c.flow.press_virtual_button(applicationId=a, flowId=HEX, button={"key": "k"}) == {"success": True}
    assert c.data_table_rows.get(applicationId=a, dataTableId=HEX)["totalCount"] == 0
    assert c.data_table_rows.query(applicationId=a, dataTableId=HEX, query={})["items"] == []
    f = c.files.post(applicationId=a, file={"name": "a.bin", "type": "file", "fileSize": 10})
    assert f["upload"]["url"]
    with pytest.raises(LosantError) as err:
        c.embedded_deployments.export(applicationId=a, options={})
    assert err.value.status == 429 and err.value.args
