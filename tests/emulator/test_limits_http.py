"""Each documented limit enforced through the app: exact count, window and key (fake clock)."""

from __future__ import annotations

from typing import Any

from emulator_support import Api, FakeClock, make_api

from harness.limits import parse_limits

HEX = "0123456789abcdef01234567"
STATE = {"data": {"temp": 1}}


def _state(api: Api, w: dict[str, Any], device: str, token: str | None = None) -> int:
    return api.post(f"/applications/{w['app']}/devices/{device}/state", json=STATE,
                    token=token or w["dtoken"]).status_code


def test_send_state_30_then_429_other_device_unaffected_then_ok(api: Api, world: dict[str, Any], clock: FakeClock) -> None:
    assert [_state(api, world, world["d1"]) for _ in range(30)] == [200] * 30
    r = api.post(f"/applications/{world['app']}/devices/{world['d1']}/state", json=STATE, token=world["dtoken"])
    assert r.status_code == 429
    assert r.json() == {"type": "TooManyRequests", "message": "Over rate limit, request throttled"}
    assert _state(api, world, world["d2"], token=api.token) == 200
    clock.advance(15.0)
    assert _state(api, world, world["d1"]) == 200


def test_state_array_counts_once(api: Api, world: dict[str, Any]) -> None:
    body = [{"data": {"temp": i}, "time": -i} for i in range(1, 51)]
    path = f"/applications/{world['app']}/devices/{world['d1']}/state"
    assert all(api.post(path, json=body).status_code == 200 for _ in range(30))
    assert api.post(path, json=body).status_code == 429


def test_gateway_traffic_counts_per_peripheral(api: Api, clock: FakeClock) -> None:
    app = api.application()
    gw = api.device(app, "gw", deviceClass="gateway")
    p1 = api.device(app, "p1", deviceClass="peripheral", gatewayId=gw)
    p2 = api.device(app, "p2", deviceClass="peripheral")
    tok = api.device_token(gw, api.key(app))
    w = {"app": app, "dtoken": tok}
    assert [_state(api, w, p1) for _ in range(30)] == [200] * 30
    assert _state(api, w, p1) == 429
    assert [_state(api, w, p2) for _ in range(30)] == [200] * 30
    assert _state(api, w, gw) == 200  # the gateway's own counter is untouched


def test_send_command_and_connection_status_30_per_15s(api: Api, world: dict[str, Any], clock: FakeClock) -> None:
    base = f"/applications/{world['app']}/devices/{world['d1']}"
    for path, body in ((base + "/command", {"name": "go"}), (base + "/setConnectionStatus", {"status": "connected"})):
        assert [api.post(path, json=body).status_code for _ in range(30)] == [200] * 30
        assert api.post(path, json=body).status_code == 429
    clock.advance(15)
    assert api.post(base + "/command", json={"name": "go"}).status_code == 200


def test_events_15_per_15s_per_application(api: Api, clock: FakeClock) -> None:
    a, b = api.application("a"), api.application("b")
    ev = {"level": "info", "subject": "s"}
    assert [api.post(f"/applications/{a}/events", json=ev).status_code for _ in range(15)] == [201] * 15
    assert api.post(f"/applications/{a}/events", json=ev).status_code == 429
    assert api.post(f"/applications/{b}/events", json=ev).status_code == 201
    clock.advance(15)
    assert api.post(f"/applications/{a}/events", json=ev).status_code == 201


def test_virtual_button_100_per_10s_per_button(api: Api, clock: FakeClock) -> None:
    app = api.application()
    path = f"/applications/{app}/flows/{HEX}/virtualButton"
    assert all(api.post(path, json={"key": "k1"}).status_code == 200 for _ in range(100))
    assert api.post(path, json={"key": "k1"}).status_code == 429
    assert api.post(path, json={"key": "k2"}).status_code == 200
    assert api.post(f"/applications/{app}/flows/{'f' * 24}/virtualButton", json={"key": "k1"}).status_code == 200
    clock.advance(10)
    assert api.post(path, json={"key": "k1"}).status_code == 200


def test_mqtt_publish_30_per_15s_per_topic(api: Api) -> None:
    app = api.application()
    path = f"/applications/{app}/mqttPublishMessage"
    assert all(api.post(path, json={"topic": "a/b", "message": "x"}).status_code == 200 for _ in range(30))
    assert api.post(path, json={"topic": "a/b", "message": "x"}).status_code == 429
    assert api.post(path, json={"topic": "a/c", "message": "x"}).status_code == 200


def test_embedded_export_1_per_5_min_and_notebook_1_per_15_min(api: Api, clock: FakeClock) -> None:
    app = api.application()
    emb = f"/applications/{app}/embedded/deployments/export"
    nb = f"/applications/{app}/notebooks/{HEX}/requestInputDataExport"
    assert api.post(emb, json={}).status_code == 202
    assert api.post(nb, json={}).status_code == 202
    clock.advance(299)
    assert api.post(emb, json={}).status_code == 429
    clock.advance(1)
    assert api.post(emb, json={}).status_code == 202
    assert api.post(nb, json={}).status_code == 429
    assert api.post(f"/applications/{app}/notebooks/{'e' * 24}/requestInputDataExport", json={}).status_code == 202
    clock.advance(600)
    assert api.post(nb, json={}).status_code == 202


JOBS = [
    ("GET", "/archiveData?date=1", None), ("GET", "/backfillArchiveData", None), ("POST", "/export", {}),
    ("GET", "/fullDataTablesArchive", None), ("GET", "/fullEventsArchive", None), ("POST", "/import", {}),
    ("POST", "/data/export", {}), ("POST", "/devices/export", {}), ("POST", "/devices/payloadCounts", {}),
    ("POST", "/events/export", {"email": "a@b.c"}), ("POST", f"/data-tables/{HEX}/rows/export", {}),
    ("POST", "/clone", {}),
]


def test_concurrency_jobs_hold_their_slot_for_job_seconds(api: Api, world: dict[str, Any], clock: FakeClock) -> None:
    app = world["app"]
    calls = [(m, f"/applications/{app}{p}", b) for m, p, b in JOBS]
    calls += [("POST", f"/applications/{app}/devices/{world['d1']}/export", {}),
              ("POST", f"/dashboards/{HEX}", {"toEmail": ["a@b.c"]}), ("POST", f"/instances/{HEX}/generateReport", {})]
    # applications import shares the clone's per-owner slot: tests/emulator/test_users.py
    for method, path, body in calls:
        first = api.request(method, path, json=body)
        assert first.status_code == 202, (path, first.text)
        assert first.json()["jobQueued"] is True and first.json()["success"] is True and len(first.json()["jobId"]) <= 21
        assert api.request(method, path, json=body).status_code == 429, path
    # another device / data table is a separate key
    assert api.post(f"/applications/{app}/devices/{world['d2']}/export", json={}).status_code == 202
    assert api.post(f"/applications/{app}/data-tables/{'a' * 24}/rows/export", json={}).status_code == 202
    clock.advance(2.0)  # default job_seconds
    for method, path, body in calls:
        assert api.request(method, path, json=body).status_code == 202, path


def test_job_seconds_override_and_limits_file(clock: FakeClock) -> None:
    table = parse_limits({"job_seconds": 10.0, "limits": {"device.sendState": {"count": 2, "window": 1.0}}})
    api = make_api(clock, limits=table)
    api.login()
    app = api.application()
    dev = api.device(app)
    w = {"app": app, "dtoken": api.token}
    assert [_state(api, w, dev) for _ in range(3)] == [200, 200, 429]
    assert api.post(f"/applications/{app}/devices/export", json={}).status_code == 202
    clock.advance(9.9)
    assert api.post(f"/applications/{app}/devices/export", json={}).status_code == 429
    clock.advance(0.1)
    assert api.post(f"/applications/{app}/devices/export", json={}).status_code == 202
    assert _state(api, w, dev) == 200
    api.close()
    api2 = make_api(clock, job_seconds=0.5)
    api2.login()
    app2 = api2.application()
    assert api2.post(f"/applications/{app2}/devices/export", json={}).status_code == 202
    clock.advance(0.5)
    assert api2.post(f"/applications/{app2}/devices/export", json={}).status_code == 202
    api2.close()


def test_size_caps(api: Api, world: dict[str, Any]) -> None:
    big = b'{"name": "x", "type": "file", "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    r = api.post(f"/applications/{world['app']}/files", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["type"] == "PayloadTooLarge"
    r = api.post(f"/applications/{world['app']}/files", json={"name": "a.txt", "type": "file", "fileSize": 3})
    assert r.status_code == 201 and "upload" in r.json()


def test_time_series_answer_cap_and_row_cap(clock: FakeClock) -> None:
    api = make_api(clock, limits=parse_limits({"limits": {"data.timeSeriesQuery": {"count": 300},
                                                          "dataTableRows.get": {"count": 50}}}))
    api.login()
    app = api.application()
    dev = api.device(app)
    for i in range(20):
        api.post(f"/applications/{app}/devices/{dev}/state", json=[{"data": {"temp": i}, "time": -1000 * (i + 1)}])
    r = api.post(f"/applications/{app}/data/time-series-query", json={"aggregation": "NONE", "duration": 600_000})
    assert r.status_code == 400 and "narrow" in r.json()["message"]
    r = api.post(f"/applications/{app}/data/time-series-query", json={"aggregation": "NONE", "duration": 600_000, "limit": 1})
    assert r.status_code == 200
    assert api.get(f"/applications/{app}/data-tables/{HEX}/rows").status_code == 400
    api.close()


def test_dashboard_and_instance_jobs_are_keyed_by_id(api: Api) -> None:
    for template, body in (("/dashboards/{}", {"toEmail": ["a@b.c"]}), ("/instances/{}/generateReport", {})):
        assert api.post(template.format(HEX), json=body).status_code == 202
        assert api.post(template.format(HEX), json=body).status_code == 429
        assert api.post(template.format("b" * 24), json=body).status_code == 202


def test_test_delay_option(clock: FakeClock) -> None:
    import time

    api = make_api(clock, test_delay_ms=60)
    t0 = time.perf_counter()
    assert api.get("/applications").status_code == 401
    assert time.perf_counter() - t0 >= 0.06
    api.close()
