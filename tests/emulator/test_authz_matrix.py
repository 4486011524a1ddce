"""The authorization matrix: every served operation x every kind of caller -> the documented answer.

The expected answer is computed from data, not written per cell: REFERENCE 4.2 families
(W, R, W+D, R+D; restated here independently of harness/emulator/scopes.py for the
endpoints 4.2 lists, the client docstrings for the rest), 4.3 reach (device keys,
restrictions, gateways) and 4.4 lifetime. "ok" means 2xx; otherwise 401/403/404 with
the JSON error body. Token hygiene (randomness, hashing, expiry, never logged) is checked
alongside, with the logs captured during the whole matrix.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from emulator_support import Api, FakeClock, make_api

from harness.emulator.auth import hash_token
from harness.emulator.openapi import routes_of
from harness.emulator.scopes import FAMILIES, SPECIAL
from harness.emulator.timeparse import format_time

HEX = "0123456789abcdef01234567"
#: REFERENCE 4.2, restated (the rest come from scopes.FAMILIES, which copies the client docstrings)
REF_FAMILIES = {
    **{f"device.{a}": "R+D" for a in ("get", "getState", "getCompositeState", "getCommand", "getLogEntries")},
    **{f"device.{a}": "W+D" for a in ("sendState", "sendCommand", "setConnectionStatus")},
    "device.patch": "W", "device.delete": "W", "device.export": "R", "devices.get": "R+D",
    "devices.getCompositeState": "R+D", "devices.sendCommand": "W+D", "devices.post": "W",
    "data.timeSeriesQuery": "R+D", "data.lastValueQuery": "R+D", "data.export": "R+D", "events.post": "W",
    "events.get": "R", "event.get": "R", "application.mqttPublishMessage": "W", "flow.pressVirtualButton": "W",
    "applicationKeys.post": "W", "applicationKeys.get": "R", "applicationApiTokens.post": "W", "applicationApiTokens.get": "R",
}
PUBLIC = {"auth.authenticateUser", "auth.authenticateDevice"}
USER_LEVEL = set(SPECIAL)  # outside any application: only user tokens (and org/instance scopes)
DESTRUCTIVE = {"application.delete", "device.delete", "applicationKey.delete", "applicationApiToken.delete"}

# caller -> (token name, target device, application in the path)
CALLERS: dict[str, tuple[str | None, str, str]] = {
    "none": (None, "d1", "a"), "bad_token": ("bad", "d1", "a"), "expired_user": ("expired_user", "d1", "a"),
    "expired_app_token": ("expired_app", "d1", "a"), "user": ("user", "d1", "a"), "user_foreign_app": ("user", "d1", "nowhere"),
    "app_exact": ("app_exact", "d1", "a"), "app_wildcard": ("app_wildcard", "d1", "a"), "app_all": ("app_all", "d1", "a"),
    "app_read": ("app_read", "d1", "a"), "app_wrong": ("app_wrong", "d1", "a"), "other_app_token": ("b_all", "d1", "a"),
    "device_self": ("dev1", "d1", "a"), "device_other_unrestricted": ("dev1", "d2", "a"),
    "device_restricted_self": ("dev1_tag", "d1", "a"), "device_restricted_other": ("dev1_tag", "d2", "a"),
    "device_other_app": ("b_dev", "d1", "a"), "gateway_peripheral": ("gw", "p_any", "a"), "gateway_stranger": ("gw", "d2", "a"),
}


def family(op: str) -> str:
    return REF_FAMILIES.get(op) or FAMILIES.get(op) or "U"


def expected(op: str, caller: str) -> Any:
    """The documented answer: "ok" (2xx) or an error status."""
    token, target, app = CALLERS[caller]
    if op in PUBLIC:
        return "ok"
    if token in (None, "bad", "expired_user", "expired_app"):
        return 401
    fam = family(op)
    kind = "user" if token == "user" else "device" if token in ("dev1", "dev1_tag", "b_dev", "gw") else "app"
    if kind == "user":
        return 404 if app == "nowhere" and op not in USER_LEVEL else "ok"
    if op in USER_LEVEL:
        return 403  # application and device tokens never hold user/org scopes
    if kind == "app":
        if caller == "other_app_token":
            return 403
        allowed = {"app_exact": True, "app_wildcard": True, "app_all": True, "app_wrong": False,
                   "app_read": fam.startswith("R")}[caller]
        return "ok" if allowed else 403
    if not fam.endswith("+D") or token == "b_dev":
        return 403
    has_device = "{deviceId}" in ROUTES[op].pattern
    if not has_device:
        return "ok"  # lists and queries are filtered to what the token may see
    if op == "device.sendState" and target != "d1":
        return "ok" if caller == "gateway_peripheral" else 403
    if caller == "device_restricted_other":
        return 403
    return "ok"


EMPTY_APP = make_api(FakeClock())
ROUTES = {r.operation: r for r in routes_of(EMPTY_APP.app.router)}
EMPTY_APP.close()
OPS = sorted(ROUTES)


def body_for(op: str, w: dict[str, Any], target: str) -> Any:
    dev = w.get(target, target)
    bodies: dict[str, Any] = {
        "auth.authenticateUser": {"email": w["email"], "password": w["password"]},
        "auth.authenticateDevice": {"deviceId": w["d1"], "key": w["all_key"]["key"], "secret": w["all_key"]["secret"]},
        "applications.post": {"name": "n"}, "application.patch": {"description": "x"}, "devices.post": {"name": "n"},
        "devices.sendCommand": {"name": "c", "deviceIds": [dev]}, "device.patch": {"description": "x"},
        "device.sendState": {"data": {"temp": 1}}, "device.sendCommand": {"name": "c"},
        "device.setConnectionStatus": {"status": "connected"}, "data.timeSeriesQuery": {"deviceIds": [dev]},
        "data.lastValueQuery": {"deviceIds": [dev], "attribute": "temp"}, "events.post": {"level": "info", "subject": "s"},
        "applicationApiTokens.post": {"name": "n"}, "applicationKey.patch": {"description": "x"},
        "applicationApiToken.patch": {"description": "x"}, "application.mqttPublishMessage": {"topic": "t", "message": "m"},
        "flow.pressVirtualButton": {"key": "k"}, "dashboard.sendReport": {"toEmail": ["x@example.com"]}, "files.post": {"name": "f", "type": "file"},
    }
    return bodies.get(op, {} if ROUTES[op].method in ("POST", "PATCH") else None)


def path_for(op: str, w: dict[str, Any], target: str, app: str) -> str:
    values = {"applicationId": w.get(app, HEX), "deviceId": w[target], "applicationKeyId": w["spare_key"],
              "apiTokenId": w["spare_token_id"], "eventId": w["event"]}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), HEX), ROUTES[op].pattern)


def build_world(api: Api, clock: FakeClock) -> dict[str, Any]:
    from harness.emulator.config import DEFAULT_EMAIL, DEFAULT_PASSWORD  # noqa: PLC0415

    a, b = api.application("a"), api.application("b")
    w: dict[str, Any] = {"a": a, "b": b, "email": DEFAULT_EMAIL, "password": DEFAULT_PASSWORD}
    w["d1"] = api.device(a, "d1", tags=[{"key": "floor", "value": "8"}])
    w["d2"] = api.device(a, "d2")
    w["gw_dev"] = api.device(a, "gw", deviceClass="gateway")
    w["p_any"] = api.device(a, "p", deviceClass="peripheral")
    w["b_d"] = api.device(b, "bd")
    w["all_key"] = api.key(a)
    w["spare_key"] = api.key(a)["id"]
    tag_key = api.key(a, deviceTags=[{"key": "floor", "value": "8"}])
    r = api.post(f"/applications/{a}/tokens", json={"name": "spare"})
    w["spare_token_id"] = r.json()["id"]
    w["event"] = api.post(f"/applications/{a}/events", json={"level": "info", "subject": "s"}).json()["id"]
    t: dict[str, str] = {"user": api.token or "", "bad": "x" * 54}
    t["expired_user"] = api.post("/auth/user", token=None, json={"email": w["email"], "password": w["password"], "tokenTTL": 30}).json()["token"]
    t["expired_app"] = api.api_token(a, expirationDate=format_time(int((clock() + 30) * 1000)))
    t["app_all"] = api.api_token(a)
    t["app_read"] = api.api_token(a, ["all.Application.read"])
    t["app_wrong"] = api.api_token(a, ["flow.pressVirtualButton"])
    t["b_all"] = api.api_token(b)
    t["dev1"] = api.device_token(w["d1"], w["all_key"])
    t["dev1_tag"] = api.device_token(w["d1"], tag_key)
    t["b_dev"] = api.device_token(w["b_d"], api.key(b))
    t["gw"] = api.device_token(w["gw_dev"], w["all_key"])
    w["tokens"] = t
    return w


def scoped_token(api: Api, w: dict[str, Any], op: str, caller: str) -> str | None:
    """Exact-scope and wildcard tokens are minted per operation; None if no application token may hold it."""
    scope = op if caller == "app_exact" else op.split(".")[0] + ".*"
    if op == "flow.pressVirtualButton" and caller == "app_wrong":
        scope = "events.get"
    r = api.post(f"/applications/{w['a']}/tokens", json={"name": "s", "scope": [scope]})
    return r.json()["token"] if r.status_code == 201 else None


ISSUED: list[str] = []


@pytest.mark.parametrize("op", OPS)
def test_matrix(op: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    api = make_api(clock, job_seconds=0.001)
    try:
        api.login()
        world = build_world(api, clock)
        for caller, (token_name, target, app) in CALLERS.items():
            if op in DESTRUCTIVE:  # a fresh world, so one caller's delete does not decide the next one's answer
                world = build_world(api, clock)
            token = world["tokens"].get(token_name) if token_name else None
            if caller in ("app_exact", "app_wildcard") or (caller == "app_wrong" and op == "flow.pressVirtualButton"):
                token = scoped_token(api, world, op, caller)
                if token is None:
                    continue  # not an application scope (user-level operations): no such caller exists
            ISSUED.extend(t for t in world["tokens"].values() if len(t) > 40)
            if token and len(token) > 40:
                ISSUED.append(token)
            clock.advance(1000)  # throttle windows (up to 15 min) pass; 30 s token lifetimes run out
            want = expected(op, caller)
            r = api.request(ROUTES[op].method, path_for(op, world, target, app), token=token, json=body_for(op, world, target))
            ok = 200 <= r.status_code < 300
            assert (ok if want == "ok" else r.status_code == want), (op, caller, want, r.status_code, r.text[:200])
            if not ok:
                body = r.json()
                assert isinstance(body["type"], str) and isinstance(body["message"], str)
        assert api.app.unexpected_errors == 0
        logged = "\n".join(rec.getMessage() for rec in caplog.records) + caplog.text
        assert not [t for t in ISSUED if t in logged], "a token appeared in the logs"
    finally:
        api.close()


def test_matrix_covers_every_operation_served() -> None:
    """The matrix is parametrized by the router's own table: every served operation is in it."""
    from harness.emulator.scopes import FAMILIES, SPECIAL

    assert set(OPS) == set(FAMILIES) | set(SPECIAL) | {"auth.authenticateUser", "auth.authenticateDevice"}
    assert len(CALLERS) == 19


def test_tokens_are_random_hashed_and_expire(clock: FakeClock) -> None:
    api = make_api(clock)
    try:
        tokens = {api.login() for _ in range(200)}
        assert len(tokens) == 200 and min(len(t) for t in tokens) >= 22  # >= 128 bits of urlsafe base64
        rows = api.app.store.db.execute("SELECT * FROM sqlite_master").fetchall()
        dump = "\n".join(api.app.store.db.iterdump())
        assert rows and not [t for t in tokens if t in dump]  # only hashes are stored
        assert any(hash_token(t) in dump for t in tokens) or api.app.store.token(hash_token(next(iter(tokens)))) is not None
        short = api.post("/auth/user", token=None, json={"email": api.app.config.email, "password": api.app.config.password,
                                                         "tokenTTL": 5}).json()["token"]
        assert api.get("/applications", token=short).status_code == 200
        clock.advance(5)
        r = api.get("/applications", token=short)
        assert r.status_code == 401 and r.json()["type"] == "Unauthorized"
    finally:
        api.close()


# ---- gateways and peripherals whose keys and tags change (REFERENCE 4.3, docs/LIMITS.md) ----------
#: device-scoped operations a device token may call (families W+D and R+D, with a {deviceId})
DEVICE_OPS = sorted(op for op in OPS if family(op).endswith("+D") and "{deviceId}" in ROUTES[op].pattern)
#: collection operations a device token may call; they act on the devices its key allows
COLLECTION_OPS = sorted(op for op in OPS if family(op).endswith("+D") and "{deviceId}" not in ROUTES[op].pattern)
SITE = {"key": "site", "value": "s1"}
#: change -> what it does to the world (applied through the API, as a user would)
GATEWAY_CHANGES = ("none", "gateway_tag_removed", "gateway_tag_restored", "peripheral_tag_removed",
                   "peripheral_gateway_changed", "peripheral_moved_to_caller", "gateway_class_changed",
                   "key_inactive", "key_deleted", "gateway_deleted")


def gateway_world(api: Api) -> dict[str, Any]:
    """A gateway holding a key restricted by tag, its peripherals, and a second gateway."""
    a = api.application("gw")
    w: dict[str, Any] = {"a": a}
    w["gw"] = api.device(a, "gw", deviceClass="gateway", tags=[SITE])
    w["gw2"] = api.device(a, "gw2", deviceClass="gateway", tags=[SITE])
    w["p_mine"] = api.device(a, "p-mine", deviceClass="peripheral", gatewayId=w["gw"], tags=[SITE])
    w["p_any"] = api.device(a, "p-any", deviceClass="peripheral", tags=[SITE])
    w["p_other"] = api.device(a, "p-other", deviceClass="peripheral", gatewayId=w["gw2"], tags=[SITE])
    w["plain"] = api.device(a, "plain", tags=[SITE])
    w["key"] = api.key(a, deviceTags=[SITE])
    w["token"] = api.device_token(w["gw"], w["key"])
    return w


def apply_change(api: Api, w: dict[str, Any], change: str) -> None:
    a, devices = w["a"], f"/applications/{w['a']}/devices"
    edits: dict[str, tuple[str, str, dict[str, Any] | None]] = {
        "gateway_tag_removed": ("PATCH", f"{devices}/{w['gw']}", {"tags": []}),
        "peripheral_tag_removed": ("PATCH", f"{devices}/{w['p_mine']}", {"tags": []}),
        "peripheral_gateway_changed": ("PATCH", f"{devices}/{w['p_mine']}", {"gatewayId": w["gw2"]}),
        "peripheral_moved_to_caller": ("PATCH", f"{devices}/{w['p_other']}", {"gatewayId": w["gw"]}),
        "gateway_class_changed": ("PATCH", f"{devices}/{w['gw']}", {"deviceClass": "standalone"}),
        "key_inactive": ("PATCH", f"/applications/{a}/keys/{w['key']['id']}", {"status": "inactive"}),
        "key_deleted": ("DELETE", f"/applications/{a}/keys/{w['key']['id']}", None),
        "gateway_deleted": ("DELETE", f"{devices}/{w['gw']}", None),
    }
    if change == "gateway_tag_restored":  # lost, then regained: the key is live both ways
        apply_change(api, w, "gateway_tag_removed")
        edits[change] = ("PATCH", f"{devices}/{w['gw']}", {"tags": [SITE]})
    if change in edits:
        method, path, body = edits[change]
        r = api.request(method, path, json=body)
        assert r.status_code == 200, (change, r.text)


def gateway_expected(change: str, op: str, target: str | None) -> Any:
    """The documented rule, restated: the caller must hold its key (live); then send state reaches
    itself and its peripherals (class peripheral, gatewayId empty or the caller; the peripheral's own
    tags do not matter: it never authenticates [I]); everything else reaches what the key allows."""
    if change in ("key_inactive", "key_deleted", "gateway_deleted"):
        return 401
    if change == "gateway_tag_removed":
        return 403
    if target is None or target == "gw":
        return "ok"
    if op == "device.sendState":
        gateway_of = {"p_mine": "gw", "p_any": None, "p_other": "gw2", "plain": None, "gw2": None}
        if change == "peripheral_gateway_changed":
            gateway_of["p_mine"] = "gw2"
        if change == "peripheral_moved_to_caller":
            gateway_of["p_other"] = "gw"
        is_peripheral = target.startswith("p_")
        return "ok" if change != "gateway_class_changed" and is_peripheral and gateway_of[target] in (None, "gw") else 403
    if change == "peripheral_tag_removed" and target == "p_mine":
        return 403
    return "ok"


@pytest.mark.parametrize("change", GATEWAY_CHANGES)
def test_gateway_and_peripheral_reach_follows_key_changes(change: str) -> None:
    clock = FakeClock()
    api = make_api(clock, job_seconds=0.001)
    try:
        api.login()
        w = gateway_world(api)
        apply_change(api, w, change)
        calls = [(op, target) for op in DEVICE_OPS for target in ("gw", "p_mine", "p_any", "p_other", "plain", "gw2")]
        calls += [(op, None) for op in COLLECTION_OPS]
        for op, target in calls:
            clock.advance(1000)  # throttle windows pass
            path = path_for(op, {**w, "spare_key": HEX, "spare_token_id": HEX, "event": HEX}, target or "gw", "a")
            body = body_for(op, {**w, "email": "", "password": "", "all_key": w["key"], "d1": w["gw"]}, target or "gw")
            r = api.request(ROUTES[op].method, path, token=w["token"], json=body)
            want = gateway_expected(change, op, target)
            ok = 200 <= r.status_code < 300
            assert (ok if want == "ok" else r.status_code == want), (change, op, target, want, r.status_code, r.text[:200])
            if not ok:
                assert set(r.json()) >= {"type", "message"}
        if gateway_expected(change, "devices.get", None) == "ok":  # lists show what the key allows, nothing else
            listed = {d["id"] for d in api.get(f"/applications/{w['a']}/devices", token=w["token"]).json()["items"]}
            hidden = {w["p_mine"]} if change == "peripheral_tag_removed" else set()
            assert listed == {w[n] for n in ("gw", "gw2", "p_mine", "p_any", "p_other", "plain")} - hidden
        assert api.app.unexpected_errors == 0
    finally:
        api.close()


@pytest.mark.parametrize("change", ["none", "gateway_tag_removed", "key_inactive", "key_deleted"])
def test_device_reaches_holds_the_rule_without_a_fresh_principal(change: str) -> None:
    """The MQTT broker asks ``Auth.device_reaches`` per published state with the principal of its
    CONNECT, so the rule must hold there too, not only when a REST call resolves its token."""
    api = make_api(FakeClock())
    try:
        api.login()
        w = gateway_world(api)
        principal = api.app.auth.principal(f"Bearer {w['token']}".encode())
        apply_change(api, w, change)
        for target in ("gw", "p_mine", "p_any"):
            device = api.app.store.get("devices", w[target])
            assert api.app.auth.device_reaches(principal, device, "device.sendState") is (change == "none"), (change, target)
    finally:
        api.close()
