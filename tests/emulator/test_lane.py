"""The send-state lane (lane.py) against a real emulator on loopback: the same bytes as uvicorn's path.

Each case sends one request twice on raw sockets: once as the lane takes it (a
Content-Length body) and once as it does not (the same body chunked, which uvicorn's
ASGI path serves through the fast handler), and compares the whole answers. The clock is
fixed (FakeClock), so throttle windows and timestamps cannot move between the two.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.emulator.config import DEFAULT_EMAIL, DEFAULT_PASSWORD, EmulatorConfig
from harness.emulator.faults import FaultPlan
from harness.emulator.faults_admin import front
from harness.emulator.lane import lane_of
from harness.emulator.process import ThreadHandle, start_in_thread

from emulator_support import FakeClock
from test_connection_hygiene import address, parse, read_until_closed

DEADLINE_S = 15.0


class Fleet:
    def __init__(self, handle: ThreadHandle) -> None:
        self.handle = handle
        self.http = httpx.Client(base_url=handle.url, timeout=DEADLINE_S)
        token = self.http.post("/auth/user", json={"email": DEFAULT_EMAIL, "password": DEFAULT_PASSWORD}).json()["token"]
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.app_id = self.http.post("/applications", json={"name": "lane"}).json()["id"]
        self.key = self.http.post(f"/applications/{self.app_id}/keys", json={}).json()

    def device(self, name: str) -> tuple[str, str]:
        """A new device with a number attribute ``temp``, and its device token."""
        body = {"name": name, "attributes": [{"name": "temp", "dataType": "number"}]}
        device_id = self.http.post(f"/applications/{self.app_id}/devices", json=body).json()["id"]
        token = self.http.post("/auth/device", headers={"Authorization": ""}, json={
            "deviceId": device_id, "key": self.key["key"], "secret": self.key["secret"]}).json()["token"]
        return device_id, token


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    handle = start_in_thread(EmulatorConfig(), clock=FakeClock())
    f = Fleet(handle)
    try:
        yield f
    finally:
        f.http.close()
        handle.stop()


def request(path: str, token: str | None, body: bytes, chunked: bool = False, version: str = "1.1",
            content_type: str = "application/json", close: bool = True) -> bytes:
    head = [f"POST {path} HTTP/{version}", "Host: t"]
    if token is not None:
        head.append(f"Authorization: Bearer {token}")
    head.append(f"Content-Type: {content_type}")
    if close:
        head.append("Connection: close")
    if chunked:
        head.append("Transfer-Encoding: chunked")
        payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    else:
        head.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


def exchange(url: str, data: bytes) -> bytes:
    """Send everything, read until the emulator closes (every request here ends with Connection: close)."""
    with socket.create_connection(address(url), timeout=DEADLINE_S) as sock:
        sock.sendall(data)
        answer, _ = read_until_closed(sock)
    return answer


def both_ways(fleet: Fleet, path: str, token: str | None, body: bytes, **kw: Any) -> tuple[bytes, bytes]:
    return (exchange(fleet.handle.url, request(path, token, body, **kw)),
            exchange(fleet.handle.url, request(path, token, body, chunked=True, **kw)))


STATE = b'{"data": {"temp": 21.5}}'
T0_MS = int(FakeClock().t * 1000) - 60_000  # a minute before the fixed now


def stored(fleet: Fleet, device_id: str) -> list[Any]:
    """The device's stored ``temp`` values, oldest first, read through the API (which flushes the group commit)."""
    r = fleet.http.get(f"/applications/{fleet.app_id}/devices/{device_id}/state",
                       params={"limit": 100})
    assert r.status_code == 200, r.text
    return [s["data"]["temp"] for s in sorted(r.json(), key=lambda s: s["time"])]


def test_the_lane_answers_every_outcome_with_the_asgi_paths_exact_bytes(fleet: Fleet) -> None:
    d1, t1 = fleet.device("one")
    d2, t2 = fleet.device("two")
    state_path = f"/applications/{fleet.app_id}/devices/{d1}/state"
    cases: dict[str, tuple[str, str | None, bytes, dict[str, Any]]] = {
        "accepted": (state_path, t1, STATE, {}),
        "accepted, HTTP/1.0": (state_path, t1, STATE, {"version": "1.0"}),
        "accepted, empty body": (state_path, t1, b"", {}),
        "no token": (state_path, None, STATE, {}),
        "a bad token": (state_path, "not-a-token", STATE, {}),
        "another device's token": (state_path, t2, STATE, {}),
        "an unknown device": (f"/applications/{fleet.app_id}/devices/{'0' * 24}/state", t1, STATE, {}),
        "malformed JSON": (state_path, t1, b'{"data": ', {}),
        "wrong content type": (state_path, t1, STATE, {"content_type": "text/plain"}),
        "an undeclared attribute": (state_path, t1, b'{"data": {"nope": 1}}', {}),
    }
    served = fleet.handle.app.lane
    assert served is not None
    for case, (path, token, body, kw) in cases.items():
        before = served.served
        lane, asgi = both_ways(fleet, path, token, body, **kw)
        assert served.served == before + 1, f"{case}: the lane took {served.served - before} of the two"
        assert lane == asgi, f"{case}: lane {lane!r} != uvicorn {asgi!r}"
    statuses = {case: parse(both_ways(fleet, *cases[case][:3])[0])[0] for case in ("accepted", "no token", "malformed JSON")}
    assert statuses == {"accepted": 200, "no token": 401, "malformed JSON": 400}


def test_the_lane_throttles_like_the_asgi_path(fleet: Fleet) -> None:
    device_id, token = fleet.device("busy")
    path = f"/applications/{fleet.app_id}/devices/{device_id}/state"
    statuses = [parse(exchange(fleet.handle.url, request(path, token, STATE)))[0] for _ in range(30)]
    assert statuses == [200] * 30  # the clock is fixed: all 30 in one window
    lane, asgi = both_ways(fleet, path, token, STATE)
    assert parse(lane)[0] == 429 and lane == asgi


def test_an_answered_state_is_committed_and_readable_at_once(fleet: Fleet) -> None:
    device_id, token = fleet.device("durable")
    path = f"/applications/{fleet.app_id}/devices/{device_id}/state"
    with socket.create_connection(address(fleet.handle.url), timeout=DEADLINE_S) as sock:
        for value in range(5):  # one keep-alive connection, as a device reports
            sock.sendall(request(path, token, b'{"time": %d, "data": {"temp": %d}}' % (T0_MS + value, value), close=False))
            head = b""
            while b'{"success":true}' not in head:
                chunk = sock.recv(4096)
                assert chunk, "closed before the answer"
                head += chunk
            assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"connection: close" not in head
    assert stored(fleet, device_id) == [0, 1, 2, 3, 4]  # every 200 was committed before it was written


def test_pipelined_reports_are_answered_in_order(fleet: Fleet) -> None:
    device_id, token = fleet.device("pipelined")
    path = f"/applications/{fleet.app_id}/devices/{device_id}/state"
    burst = b"".join(request(path, token, b'{"time": %d, "data": {"temp": %d}}' % (T0_MS + i, i), close=False)
                     for i in range(4))
    burst += request(path, "not-a-token", STATE)  # the last one closes
    answers = exchange(fleet.handle.url, burst).split(b"HTTP/1.1 ")[1:]
    assert [int(a[:3]) for a in answers] == [200, 200, 200, 200, 401]
    assert stored(fleet, device_id) == [0, 1, 2, 3]


def test_an_emulator_bug_on_the_lane_is_an_honest_500_counted_and_logged(fleet: Fleet, monkeypatch: pytest.MonkeyPatch,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    device_id, token = fleet.device("buggy")
    path = f"/applications/{fleet.app_id}/devices/{device_id}/state"
    app = fleet.handle.app

    def broken(*_args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(app.auth, "reach", broken)
    status, headers, body = parse(exchange(fleet.handle.url, request(path, token, STATE)))
    assert (status, body["type"]) == (500, "InternalError")
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert app.unexpected_errors == 1
    assert "unexpected RuntimeError on /applications/{applicationId}/devices/{deviceId}/state" in caplog.text
    assert token not in caplog.text


class _FailingCommits:
    """The store's connection, except that a batch of states cannot be written (a full disk)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def executemany(self, *_args: Any) -> Any:
        raise sqlite3.OperationalError("database or disk is full")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def test_a_failed_commit_is_a_500_never_a_200(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    device_id, token = fleet.device("full-disk")
    path = f"/applications/{fleet.app_id}/devices/{device_id}/state"
    store = fleet.handle.app.store
    monkeypatch.setattr(store, "db", _FailingCommits(store.db))
    status, _, body = parse(exchange(fleet.handle.url, request(path, token, STATE)))
    assert (status, body["type"]) == (500, "InternalError")
    monkeypatch.undo()
    assert parse(exchange(fleet.handle.url, request(path, token, STATE)))[0] == 200
    assert stored(fleet, device_id) == [21.5]


def test_bodies_over_the_lane_bound_and_faulted_emulators_take_uvicorns_path() -> None:
    handle = start_in_thread(EmulatorConfig(max_body_bytes=300), clock=FakeClock())
    try:
        f = Fleet(handle)
        device_id, token = f.device("small-cap")
        path = f"/applications/{f.app_id}/devices/{device_id}/state"
        big = b'{"data": {"temp": 1}, "time": %s}' % (b" " * 400 + b"1")
        status, _, body = parse(exchange(handle.url, request(path, token, big)))
        assert status == 413, body  # the lane never takes a body over the emulator's own cap
        assert handle.app.lane is not None and handle.app.lane.served == 0
        f.http.close()
    finally:
        handle.stop()
    app = start_in_thread(EmulatorConfig(), clock=FakeClock())
    try:
        assert lane_of(app.app) is not None
        assert lane_of(front(app.app, FaultPlan(pause_s=1.0))) is None  # faults wrap the emulator: no lane
    finally:
        app.stop()


def test_the_lane_answers_json_that_parses() -> None:
    from harness.emulator.lane import answer_bytes

    data = answer_bytes(429, b'{"type":"TooManyRequests","message":"m"}', keep_alive=False)
    status, headers, body = parse(data)
    assert (status, headers["connection"], json.dumps(body)) == (429, "close", '{"type": "TooManyRequests", "message": "m"}')
    assert int(headers["content-length"]) == len(b'{"type":"TooManyRequests","message":"m"}')

