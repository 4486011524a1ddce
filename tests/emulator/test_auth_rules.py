"""Authorization rules of REFERENCE section 4, table-driven: who may call what, and every denial."""

from __future__ import annotations

from typing import Any

import pytest
from emulator_support import Api, FakeClock

from harness.emulator.timeparse import format_time

HEX = "0123456789abcdef01234567"


@pytest.fixture
def env(api: Api) -> dict[str, Any]:
    """Two applications; devices incl. a gateway and peripherals; tokens of every kind."""
    a, b = api.application("a"), api.application("b")
    e: dict[str, Any] = {"a": a, "b": b}
    e["d1"] = api.device(a, "d1", tags=[{"key": "floor", "value": "8"}])
    e["d2"] = api.device(a, "d2")
    e["gw"] = api.device(a, "gw", deviceClass="gateway")
    e["gw2"] = api.device(a, "gw2", deviceClass="gateway")
    e["p_any"] = api.device(a, "p-any", deviceClass="peripheral")
    e["p_gw2"] = api.device(a, "p-gw2", deviceClass="peripheral", gatewayId=e["gw2"])
    e["b_dev"] = api.device(b, "bd")
    all_key = api.key(a)
    e["tag_key"] = api.key(a, deviceTags=[{"key": "floor"}])
    e["user"] = api.token
    e["app_all"] = api.api_token(a)
    e["app_read"] = api.api_token(a, ["all.Application.read"])
    e["app_bounded"] = api.api_token(a, ["all.Application.bounded"])
    e["app_send"] = api.api_token(a, ["device.sendState"])
    e["app_devstar"] = api.api_token(a, ["device.*"])
    e["b_all"] = api.api_token(b)
    e["dev1"] = api.device_token(e["d1"], all_key)
    e["dev1_tagkey"] = api.device_token(e["d1"], e["tag_key"])
    e["dev1_getstate_only"] = api.device_token(e["d1"], all_key, requestedScopes=["device.getState"])
    e["gwtok"] = api.device_token(e["gw"], all_key)
    e["d2tok"] = api.device_token(e["d2"], all_key)
    e["all_key"] = all_key
    return e


STATE = {"data": {"temp": 3}}
CASES = [
    # (token, method, path template, body, expected status)
    ("user", "POST", "/applications/{a}/devices/{d1}/state", STATE, 200),
    ("user", "GET", "/applications/{a}/devices", None, 200),
    ("user", "GET", "/applications/" + HEX, None, 404),
    ("user", "GET", "/applications/{a}/devices/{b_dev}", None, 404),  # another application's device id
    (None, "GET", "/applications/{a}/devices", None, 401),
    ("garbage", "GET", "/applications/{a}/devices", None, 401),
    ("app_all", "POST", "/applications/{a}/devices", {"name": "n"}, 201),
    ("app_all", "GET", "/applications/{b}/devices", None, 403),  # another application
    ("app_all", "GET", "/applications", None, 403),  # user-level resource
    ("b_all", "GET", "/applications/{a}/devices/{d1}", None, 403),
    ("app_read", "GET", "/applications/{a}/devices", None, 200),
    ("app_read", "GET", "/applications/{a}/devices/{d1}/state", None, 200),
    ("app_read", "POST", "/applications/{a}/devices", {"name": "n"}, 403),
    ("app_read", "POST", "/applications/{a}/devices/{d1}/state", STATE, 403),
    ("app_bounded", "POST", "/applications/{a}/devices", {"name": "n"}, 201),
    ("app_bounded", "POST", "/applications/{a}/tokens", {"name": "n"}, 403),  # no credential minting
    ("app_bounded", "POST", "/applications/{a}/keys", {}, 201),
    ("app_all", "POST", "/applications/{a}/tokens", {"name": "n"}, 201),
    ("app_send", "POST", "/applications/{a}/devices/{d2}/state", STATE, 200),
    ("app_send", "GET", "/applications/{a}/devices/{d2}/state", None, 403),
    ("app_send", "POST", "/applications/{a}/events", {"level": "info", "subject": "s"}, 403),
    ("app_devstar", "GET", "/applications/{a}/devices/{d2}/state", None, 200),
    ("app_devstar", "PATCH", "/applications/{a}/devices/{d2}", {"description": "x"}, 200),
    ("app_devstar", "GET", "/applications/{a}/devices", None, 403),  # devices.* is another resource
    ("dev1", "POST", "/applications/{a}/devices/{d1}/state", STATE, 200),
    ("dev1", "GET", "/applications/{a}/devices/{d1}/state", None, 200),
    ("dev1", "POST", "/applications/{a}/devices/{d2}/state", STATE, 403),  # not a peripheral
    ("dev1", "GET", "/applications/{a}/devices/{d2}", None, 200),  # all-devices key: may read others
    ("dev1", "POST", "/applications/{a}/devices/{d2}/command", {"name": "c"}, 200),
    ("dev1_tagkey", "GET", "/applications/{a}/devices/{d2}", None, 403),  # restricted key
    ("dev1_tagkey", "GET", "/applications/{a}/devices/{d1}", None, 200),
    ("dev1", "POST", "/applications/{a}/devices", {"name": "n"}, 403),
    ("dev1", "PATCH", "/applications/{a}/devices/{d1}", {"description": "x"}, 403),
    ("dev1", "DELETE", "/applications/{a}/devices/{d1}", None, 403),
    ("dev1", "POST", "/applications/{a}/events", {"level": "info", "subject": "s"}, 403),
    ("dev1", "GET", "/applications/{b}/devices/{b_dev}", None, 403),
    ("dev1", "POST", "/applications/{a}/devices/{d1}/export", {}, 403),
    ("dev1", "POST", "/applications/{a}/data/time-series-query", {}, 200),
    ("dev1_getstate_only", "GET", "/applications/{a}/devices/{d1}/state", None, 200),
    ("dev1_getstate_only", "POST", "/applications/{a}/devices/{d1}/state", STATE, 403),
    ("gwtok", "POST", "/applications/{a}/devices/{p_any}/state", STATE, 200),  # gatewayId empty
    ("gwtok", "POST", "/applications/{a}/devices/{p_gw2}/state", STATE, 403),  # bound to gw2
    ("gwtok", "POST", "/applications/{a}/devices/{d2}/state", STATE, 403),  # not a peripheral
    ("d2tok", "POST", "/applications/{a}/devices/{p_any}/state", STATE, 403),  # caller not a gateway
    ("user", "POST", "/dashboards/" + HEX, {"toEmail": ["a@b.c"]}, 202),
    ("app_all", "POST", "/dashboards/" + HEX, {"toEmail": ["a@b.c"]}, 403),
    ("user", "POST", "/instances/" + HEX + "/generateReport", {}, 202),
    ("app_all", "POST", "/instances/" + HEX + "/generateReport", {}, 403),
]


@pytest.mark.parametrize("who,method,path,body,status", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}-{c[4]}" for c in CASES])
def test_rule(api: Api, env: dict[str, Any], who: str | None, method: str, path: str, body: Any, status: int) -> None:
    token = {None: None, "garbage": "not-a-token"}.get(who, env.get(who or "", None)) if who in (None, "garbage") else env[who]
    r = api.request(method, path.format(**env), token=token, json=body)
    assert r.status_code == status, r.text
    if status >= 400:
        assert set(r.json()) == {"type", "message"}
        assert r.json()["type"] == {401: "Unauthorized", 403: "Forbidden", 404: "NotFound"}[status]


def test_device_token_lists_only_reachable_devices(api: Api, env: dict[str, Any]) -> None:
    r = api.get(f"/applications/{env['a']}/devices", token=env["dev1_tagkey"])
    assert [d["id"] for d in r.json()["items"]] == [env["d1"]]
    assert api.get(f"/applications/{env['a']}/devices", token=env["dev1"]).json()["totalCount"] == 6


def test_user_token_ttl_expires(api: Api, clock: FakeClock) -> None:
    r = api.post("/auth/user", token=None, json={"email": "admin@emulator.local", "password": "emulator-password", "tokenTTL": 10})
    tok = r.json()["token"]
    assert api.get("/applications", token=tok).status_code == 200
    clock.advance(10)
    r = api.get("/applications", token=tok)
    assert r.status_code == 401 and r.json()["type"] == "Unauthorized"


def test_device_token_ttl_and_api_token_expiration(api: Api, env: dict[str, Any], clock: FakeClock) -> None:
    tok = api.device_token(env["d1"], env["all_key"], tokenTTL=5)
    assert api.get(f"/applications/{env['a']}/devices/{env['d1']}", token=tok).status_code == 200
    exp = api.api_token(env["a"], expirationDate=format_time(int((clock.t + 60) * 1000)))
    assert api.get(f"/applications/{env['a']}/devices", token=exp).status_code == 200
    clock.advance(61)
    assert api.get(f"/applications/{env['a']}/devices/{env['d1']}", token=tok).status_code == 401
    assert api.get(f"/applications/{env['a']}/devices", token=exp).status_code == 401


def test_api_token_status_and_delete(api: Api, env: dict[str, Any]) -> None:
    r = api.post(f"/applications/{env['a']}/tokens", json={"name": "t"})
    tid, tok = r.json()["id"], r.json()["token"]
    assert "token" not in api.get(f"/applications/{env['a']}/tokens/{tid}").json()
    api.patch(f"/applications/{env['a']}/tokens/{tid}", json={"status": "inactive"})
    assert api.get(f"/applications/{env['a']}/devices", token=tok).status_code == 401
    api.patch(f"/applications/{env['a']}/tokens/{tid}", json={"status": "active"})
    assert api.get(f"/applications/{env['a']}/devices", token=tok).status_code == 200
    assert api.patch(f"/applications/{env['a']}/tokens/{tid}", json={"scope": ["all.Application"]}).status_code == 400
    assert api.delete(f"/applications/{env['a']}/tokens/{tid}").status_code == 200
    assert api.get(f"/applications/{env['a']}/devices", token=tok).status_code == 401


def test_non_application_scope_refused(api: Api, env: dict[str, Any]) -> None:
    r = api.post(f"/applications/{env['a']}/tokens", json={"name": "t", "scope": ["all.User"]})
    assert r.status_code == 400 and r.json()["type"] == "Validation"


def test_device_auth_failures(api: Api, env: dict[str, Any]) -> None:
    key, a = env["all_key"], env["a"]
    cases = [
        {"deviceId": env["d1"], "key": key["key"], "secret": "wrong"},
        {"deviceId": env["d1"], "key": "no-such-key", "secret": key["secret"]},
        {"deviceId": env["b_dev"], "key": key["key"], "secret": key["secret"]},  # device of another app
        {"deviceId": HEX, "key": key["key"], "secret": key["secret"]},
        {"deviceId": env["d2"], "key": env["tag_key"]["key"], "secret": env["tag_key"]["secret"]},  # not allowed by tags
        {"deviceId": env["d1"]},
    ]
    for body in cases:
        r = api.post("/auth/device", token=None, json=body)
        assert r.status_code == 401 and r.json()["type"] == "Unauthorized", body
    ok = api.post("/auth/device", token=None, json={"deviceId": env["d1"], "key": env["tag_key"]["key"], "secret": env["tag_key"]["secret"]})
    assert ok.json()["restricted"] is True and ok.json()["deviceClass"] == "standalone"
    # an inactive key neither authenticates nor keeps its tokens working
    api.patch(f"/applications/{a}/keys/{key['id']}", json={"status": "inactive"})
    assert api.post("/auth/device", token=None, json={"deviceId": env["d1"], "key": key["key"], "secret": key["secret"]}).status_code == 401
    assert api.get(f"/applications/{a}/devices/{env['d1']}", token=env["dev1"]).status_code == 401


def test_tag_restriction_is_live(api: Api, env: dict[str, Any]) -> None:
    a = env["a"]
    tok = env["dev1_tagkey"]
    assert api.get(f"/applications/{a}/devices/{env['d1']}", token=tok).status_code == 200
    api.patch(f"/applications/{a}/devices/{env['d2']}", json={"tags": [{"key": "floor", "value": "1"}]})
    assert api.get(f"/applications/{a}/devices/{env['d2']}", token=tok).status_code == 200  # gained the key
    api.patch(f"/applications/{a}/devices/{env['d1']}", json={"tags": []})
    assert api.get(f"/applications/{a}/devices/{env['d1']}", token=tok).status_code == 403  # lost it


def test_user_auth_failures(api: Api) -> None:
    for body in ({"email": "admin@emulator.local", "password": "wrong-password"},
                 {"email": "other@x.y", "password": "emulator-password"}):
        r = api.post("/auth/user", token=None, json=body)
        assert r.status_code == 401 and r.json() == {"type": "Unauthorized", "message": "Authentication failed"}
    r = api.post("/auth/user", token=None, json={"email": "admin@emulator.local"})
    assert r.status_code == 400 and "password" in r.json()["message"]


def test_send_state_auth_is_never_remembered_past_a_change(api: Api, env: dict[str, Any], clock: FakeClock) -> None:
    """The send-state fast path remembers a successful check (Auth.reach) until anything it read
    changes: each change below must take effect on the very next call."""
    a, d1, d2 = env["a"], env["d1"], env["d2"]

    def send(token: str, device: str) -> int:
        return api.post(f"/applications/{a}/devices/{device}/state", token=token, json=STATE).status_code

    key = env["all_key"]
    assert send(env["dev1"], d1) == send(env["dev1"], d1) == 200  # the second is a remembered hit
    api.patch(f"/applications/{a}/keys/{key['id']}", json={"status": "inactive"})
    assert send(env["dev1"], d1) == 401
    api.patch(f"/applications/{a}/keys/{key['id']}", json={"status": "active"})
    assert send(env["dev1"], d1) == 200

    short = api.device_token(d2, key, tokenTTL=5)
    assert send(short, d2) == send(short, d2) == 200
    clock.advance(5)
    assert send(short, d2) == 401

    assert send(env["dev1_tagkey"], d1) == send(env["dev1_tagkey"], d1) == 200
    api.patch(f"/applications/{a}/devices/{d1}", json={"tags": []})
    assert send(env["dev1_tagkey"], d1) == 403

    r = api.post(f"/applications/{a}/tokens", json={"name": "sender", "scope": ["device.sendState"]})
    tid, app_tok = r.json()["id"], r.json()["token"]
    assert send(app_tok, d2) == send(app_tok, d2) == 200
    api.patch(f"/applications/{a}/tokens/{tid}", json={"status": "inactive"})
    assert send(app_tok, d2) == 401

    assert send(env["user"], d2) == 200
    assert api.delete(f"/applications/{a}/devices/{d2}").status_code == 200
    assert send(env["user"], d2) == 404
