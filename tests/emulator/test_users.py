"""More than one user: each owns its applications, reaches nobody else's, and has its own
clone/import slot (one concurrent clone or applications import per owner, shared by both)."""

from __future__ import annotations

import asyncio
from typing import Any, Iterator

import httpx
import pytest
from emulator_support import Api, FakeClock, make_api

from harness.emulator.cli import build_parser, config_from_args, start_line
from harness.emulator.config import DEFAULT_EMAIL, EmulatorConfig
from harness.emulator.faults_admin import front
from harness.errors import ConfigError

B_EMAIL, B_PASSWORD = "bee@example.com", "bee-password-123"
C_EMAIL, C_PASSWORD = "sea@example.com", "sea-password-456"


@pytest.fixture
def two(clock: FakeClock) -> Iterator[tuple[Api, Api, dict[str, Any]]]:
    """User A (the login) and user B, each signed in on the same emulator, A with an application."""
    a = make_api(clock, users=((B_EMAIL, B_PASSWORD),))
    a.login()
    b = Api(a.app)
    r = b.post("/auth/user", token=None, json={"email": B_EMAIL, "password": B_PASSWORD})
    assert r.status_code == 200, r.text
    b.token = r.json()["token"]
    app = a.application("a-app")
    dev = a.device(app, "a-dev")
    key = a.key(app)
    world = {"app": app, "dev": dev, "key": key, "a_user": a.get("/applications").json()["items"][0]["ownerId"],
             "b_user": r.json()["userId"]}
    yield a, b, world
    assert a.app.unexpected_errors == 0
    b.loop.run_until_complete(b.client.aclose())
    b.loop.close()
    a.close()


def test_each_user_signs_in_with_its_own_password(two: tuple[Api, Api, dict[str, Any]]) -> None:
    a, _, w = two
    assert w["a_user"] != w["b_user"]
    for email, password in ((B_EMAIL, "wrong-password"), (DEFAULT_EMAIL, B_PASSWORD), ("nobody@example.com", B_PASSWORD)):
        r = a.post("/auth/user", token=None, json={"email": email, "password": password})
        assert r.status_code == 401 and B_PASSWORD not in r.text
    assert a.post("/auth/user", token=None, json={"email": B_EMAIL.upper(), "password": B_PASSWORD}).status_code == 200


def test_another_owners_applications_are_out_of_reach(two: tuple[Api, Api, dict[str, Any]]) -> None:
    a, b, w = two
    app, dev = w["app"], w["dev"]
    assert b.get("/applications").json()["totalCount"] == 0
    b_app = b.application("b-app")
    assert [i["id"] for i in b.get("/applications").json()["items"]] == [b_app]
    assert [i["id"] for i in a.get("/applications").json()["items"]] == [app]
    assert b.get(f"/applications/{b_app}").json()["ownerId"] == w["b_user"]
    # every way in answers 404 "not found", as for an application that does not exist
    attempts = [
        ("GET", f"/applications/{app}", None), ("PATCH", f"/applications/{app}", {"name": "mine"}),
        ("DELETE", f"/applications/{app}", None), ("GET", f"/applications/{app}/devices", None),
        ("POST", f"/applications/{app}/devices", {"name": "intruder"}), ("GET", f"/applications/{app}/devices/{dev}", None),
        ("PATCH", f"/applications/{app}/devices/{dev}", {"name": "x"}), ("DELETE", f"/applications/{app}/devices/{dev}", None),
        ("POST", f"/applications/{app}/devices/{dev}/state", {"data": {"temp": 1}}),
        ("GET", f"/applications/{app}/devices/{dev}/state", None), ("GET", f"/applications/{app}/keys", None),
        ("POST", f"/applications/{app}/keys", {}), ("DELETE", f"/applications/{app}/keys/{w['key']['id']}", None),
        ("POST", f"/applications/{app}/tokens", {"name": "steal"}), ("GET", f"/applications/{app}/events", None),
        ("POST", f"/applications/{app}/data/time-series-query", {}), ("POST", f"/applications/{app}/clone", {}),
        ("POST", f"/applications/{app}/export", {}),
    ]
    for method, path, body in attempts:
        r = b.request(method, path, json=body)
        assert (r.status_code, r.json()["type"]) == (404, "NotFound"), (method, path, r.text)
    # B's application token is refused at A's application (403: outside its application)
    b_token = b.api_token(b_app)
    assert b.get(f"/applications/{app}/devices", token=b_token).status_code == 403
    # A's things are untouched
    assert a.get(f"/applications/{app}").json()["name"] == "a-app"
    assert [d["name"] for d in a.get(f"/applications/{app}/devices").json()["items"]] == ["a-dev"]
    assert a.get(f"/applications/{app}/keys").json()["totalCount"] == 1
    assert a.get(f"/applications/{app}/devices/{dev}/state").json() == []


def test_clone_and_import_share_one_slot_per_owner(two: tuple[Api, Api, dict[str, Any]], clock: FakeClock) -> None:
    a, b, w = two
    b_app = b.application("b-app")
    assert a.post(f"/applications/{w['app']}/clone", json={}).status_code == 202
    assert a.post(f"/applications/{w['app']}/clone", json={}).status_code == 429
    assert a.post("/applications/import", json={}).status_code == 429  # the same slot
    # A's running clone does not hold B's slot
    assert b.post("/applications/import", json={}).status_code == 202
    assert b.post(f"/applications/{b_app}/clone", json={}).status_code == 429
    clock.advance(2.0)  # the default job_seconds: both slots free again
    assert a.post("/applications/import", json={}).status_code == 202
    assert a.post(f"/applications/{w['app']}/clone", json={}).status_code == 429
    assert b.post(f"/applications/{b_app}/clone", json={}).status_code == 202
    # a dry run takes no slot
    assert a.post(f"/applications/{w['app']}/clone", json={"dryRun": True}).status_code == 200


def test_the_shared_row_answers_to_both_names() -> None:
    from harness.limits import LimitsTable, parse_limits

    table = LimitsTable()
    (row,) = table.for_operation("applications.import")
    assert table.for_operation("application.clone") == (row,) and row.key == "owner" and row.count == 1
    assert table.by_name("applications.import") is row
    override = parse_limits({"limits": {"applications.import": {"count": 2}}})
    assert override.by_name("application.clone").count == 2


def _admin_call(app: Any, method: str, path: str, client: tuple[str, int] = ("127.0.0.1", 5000), **kw: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=front(app, admin=True), client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as c:
            return await c.request(method, path, **kw)
    return asyncio.run(go())


def test_admin_endpoint_adds_users_for_loopback_clients_only(clock: FakeClock) -> None:
    api = make_api(clock)
    app = api.app
    try:
        r = _admin_call(app, "POST", "/_emulator/users", json={"email": C_EMAIL, "password": C_PASSWORD})
        assert r.status_code == 201 and r.json()["email"] == C_EMAIL and C_PASSWORD not in r.text
        listed = _admin_call(app, "GET", "/_emulator/users")
        assert [u["email"] for u in listed.json()["items"]] == [DEFAULT_EMAIL, C_EMAIL]
        assert "password" not in listed.text.lower() and C_PASSWORD not in listed.text
        assert _admin_call(app, "POST", "/_emulator/users", json={"email": C_EMAIL, "password": "another-pass"}).status_code == 409
        for bad in ({"email": "no-at-sign", "password": C_PASSWORD}, {"email": C_EMAIL}, {"email": "x@y.z", "password": "short"},
                    {"email": "x@y.z", "password": C_PASSWORD, "admin": True}, ["x"]):
            r = _admin_call(app, "POST", "/_emulator/users", json=bad)
            assert r.status_code == 400 and r.json()["type"] == "Validation", bad
        assert "short" not in _admin_call(app, "POST", "/_emulator/users", json={"email": "x@y.z", "password": "short"}).text
        assert _admin_call(app, "DELETE", "/_emulator/users").status_code == 405
        assert _admin_call(app, "GET", "/_emulator/users", client=("10.1.2.3", 5000)).status_code == 404
        # the new account works through the API
        r = api.post("/auth/user", token=None, json={"email": C_EMAIL, "password": C_PASSWORD})
        assert r.status_code == 200
        assert api.get("/applications", token=r.json()["token"]).json()["totalCount"] == 0
    finally:
        api.close()


def test_users_from_options_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOSANT_EMULATOR_USERS", f"{C_EMAIL}:{C_PASSWORD}, ")
    config = config_from_args(build_parser().parse_args(["--user", f"{B_EMAIL}:{B_PASSWORD}", "--user", "d@e.f:pass:with:colons"]))
    assert config.users == ((C_EMAIL, C_PASSWORD), (B_EMAIL, B_PASSWORD), ("d@e.f", "pass:with:colons"))
    line = start_line("http://127.0.0.1:1", config)
    assert B_EMAIL in line and B_PASSWORD not in line and C_PASSWORD not in line
    assert B_PASSWORD not in repr(config) and "pass:with" not in repr(config)
    monkeypatch.delenv("LOSANT_EMULATOR_USERS")
    for spec, word in (("no-colon", "EMAIL:PASSWORD"), ("a@b.c:short", "8 to 2048")):
        with pytest.raises(ConfigError) as err:
            config_from_args(build_parser().parse_args(["--user", spec]))
        assert "--user" in str(err.value) and word in str(err.value) and "short" not in str(err.value)


def test_configured_passwords_win_over_stored_ones(tmp_path: Any, clock: FakeClock) -> None:
    """With --db, accounts persist; a restart with another configured password resets it (the config is the truth)."""
    db = str(tmp_path / "emu.db")
    first = make_api(clock, db_path=db, users=((B_EMAIL, B_PASSWORD),))
    first.app.users.add(C_EMAIL, C_PASSWORD, replace=False)
    first.close()
    second = make_api(clock, db_path=db, users=((B_EMAIL, "new-bee-password"),))
    try:
        login = {"email": B_EMAIL, "password": B_PASSWORD}
        assert second.post("/auth/user", token=None, json=login).status_code == 401
        assert second.post("/auth/user", token=None, json={**login, "password": "new-bee-password"}).status_code == 200
        assert second.post("/auth/user", token=None, json={"email": C_EMAIL, "password": C_PASSWORD}).status_code == 200
        for stored in tmp_path.iterdir():  # the database and its WAL
            raw = stored.read_bytes()
            assert B_PASSWORD.encode() not in raw and C_PASSWORD.encode() not in raw and b"new-bee" not in raw
    finally:
        second.close()


def test_config_repr_hides_every_password() -> None:
    config = EmulatorConfig(password="top-secret-pass", users=((B_EMAIL, B_PASSWORD),))
    assert "top-secret-pass" not in repr(config) and B_PASSWORD not in repr(config)


def test_two_users_end_to_end_on_a_served_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's environment seeding and the admin endpoint on a real loopback server (a subprocess)."""
    from harness.emulator.process import EmulatorProcess

    monkeypatch.setenv("LOSANT_EMULATOR_USERS", f"{B_EMAIL}:{B_PASSWORD}")
    with EmulatorProcess(admin=True, no_mqtt=True, quiet=True, job_seconds=600) as emu, httpx.Client(base_url=emu.url, timeout=10) as http:
        def login(email: str, password: str) -> dict[str, str]:
            r = http.post("/auth/user", json={"email": email, "password": password})
            assert r.status_code == 200, r.text
            return {"Authorization": f"Bearer {r.json()['token']}"}

        a, b = login(emu.email, emu.password), login(B_EMAIL, B_PASSWORD)
        app = http.post("/applications", json={"name": "a"}, headers=a).json()["id"]
        assert http.get(f"/applications/{app}", headers=b).status_code == 404
        assert http.post(f"/applications/{app}/clone", json={}, headers=a).status_code == 202
        assert http.post("/applications/import", json={}, headers=a).status_code == 429
        assert http.post("/applications/import", json={}, headers=b).status_code == 202
        created = http.post("/_emulator/users", json={"email": C_EMAIL, "password": C_PASSWORD})
        assert created.status_code == 201
        c = login(C_EMAIL, C_PASSWORD)
        assert http.get("/applications", headers=c).json()["totalCount"] == 0
        assert {u["email"] for u in http.get("/_emulator/users").json()["items"]} == {emu.email, B_EMAIL, C_EMAIL}
