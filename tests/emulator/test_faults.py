"""Fault injection (harness/emulator/faults.py, faults_admin.py): each fault kind, seeded, plus the admin endpoint."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from emulator_support import FakeClock

from harness.emulator.app import create_app
from harness.emulator.cli import build_parser, config_from_args
from harness.emulator.config import DEFAULT_EMAIL, DEFAULT_PASSWORD, EmulatorConfig
from harness.emulator.faults import FaultInjector, FaultPlan, FaultsError, load_plan, parse_plan
from harness.emulator.faults_admin import front
from harness.emulator.process import start_in_thread


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _login(client: httpx.AsyncClient) -> str:
    r = await client.post("/auth/user", json={"email": DEFAULT_EMAIL, "password": DEFAULT_PASSWORD})
    return str(r.json()["token"])


def _client(app: Any, host: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 5000)), base_url="http://emulator")


class Sleeps:
    """A fake sleep that records what it was asked and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


# ---- parsing and validation -----------------------------------------------------
def test_yaml_plan_round_trip(tmp_path: Path) -> None:
    f = tmp_path / "faults.yaml"
    f.write_text("seed: 7\nmax_in_flight: 50\noperations:\n  '*': {latency_ms: {uniform: [1, 3]}}\n"
                 "  device.sendState:\n    error: {rate: 0.5, status: 503, retry_after: 2}\n    reset_rate: 0.1\n"
                 "    slow_body: {chunk_bytes: 4, delay_ms: 1}\n    latency_ms: {exponential: 5}\n")
    plan = load_plan(f)
    assert plan.seed == 7 and plan.max_in_flight == 50
    state = plan.for_operation("device.sendState")
    assert state is not None and state.error_rate == 0.5 and state.retry_after == 2 and state.slow_chunk_bytes == 4
    assert plan.for_operation("device.get") == plan.operations["*"]
    assert parse_plan(plan.as_data()) == plan


@pytest.mark.parametrize("text,field", [
    ("operations: {'*': {latency_ms: -1}}", "operations.*.latency_ms"),
    ("operations: {'*': {latency_ms: {normal: 3}}}", "operations.*.latency_ms"),
    ("operations: {'*': {error: {rate: 2}}}", "operations.*.error.rate"),
    ("operations: {'*': {error: {status: 504}}}", "operations.*.error.status"),
    ("operations: {'*': {colour: red}}", "operations.*.colour"),
    ("operations: {device.sendStat: {reset_rate: 0.1}}", "operations.device.sendStat"),
    ("seed: x", "seed"),
    ("pause: 3", "pause"),
    ("operations: [1]", "operations"),
    ("a: [unclosed", "not valid YAML"),
])
def test_bad_plan_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(FaultsError) as info:
        load_plan(f, frozenset({"device.sendState"}))
    assert str(f) in str(info.value) and field in str(info.value)


def test_cli_options_and_bad_file(tmp_path: Path) -> None:
    f = tmp_path / "f.yaml"
    f.write_text("operations: {device.sendState: {error: {rate: 0.2}}}\n")
    cfg = config_from_args(build_parser().parse_args(["--faults", str(f), "--admin", "--max-in-flight", "9"]))
    assert cfg.admin and cfg.max_in_flight == 9 and cfg.faults.operations["device.sendState"].error_rate == 0.2
    f.write_text("operations: {nope.nothing: {reset_rate: 1}}\n")
    with pytest.raises(FaultsError, match="operations.nope.nothing"):
        config_from_args(build_parser().parse_args(["--faults", str(f)]))


# ---- each fault in-process ------------------------------------------------------
def test_no_faults_is_a_pass_through() -> None:
    emu = create_app()
    inj = front(emu)
    assert inj is emu  # nothing planned, no admin: served unwrapped, no extra layer on the hot path

    async def go() -> None:
        async with _client(inj) as c:
            assert (await c.get("/applications")).status_code == 401
            assert (await c.get("/_emulator/faults")).status_code == 404  # admin off
            r = await c.get("/_emulator/nothing")
            assert r.status_code == 404 and r.json()["type"] == "NotFound"
    run(go())


def _errors_seen(seed: int) -> list[int]:
    plan = parse_plan({"seed": seed, "operations": {"auth.authenticateUser": {"error": {"rate": 0.3, "status": 502}}}})
    inj = FaultInjector(create_app(), plan)

    async def go() -> list[int]:
        async with _client(inj) as c:
            return [(await c.post("/auth/user", json={"email": "x@y.z", "password": "12345678"})).status_code for _ in range(100)]
    return run(go())


def test_error_rate_is_seeded_and_answers_json() -> None:
    first, again = _errors_seen(3), _errors_seen(3)
    assert first == again  # deterministic
    assert 15 <= first.count(502) <= 45 and set(first) == {401, 502}


def test_503_with_retry_after_and_operation_scoping() -> None:
    plan = parse_plan({"operations": {"device.sendState": {"error": {"rate": 1, "status": 503, "retry_after": 4}}}})
    inj = FaultInjector(create_app(), plan)

    async def go() -> None:
        async with _client(inj) as c:
            r = await c.post("/applications/0123456789abcdef01234567/devices/0123456789abcdef01234567/state", json={})
            assert r.status_code == 503 and r.headers["retry-after"] == "4"
            assert r.json() == {"type": "ServiceUnavailable", "message": "Injected fault"}
            assert (await c.get("/applications")).status_code == 401  # another operation: untouched
    run(go())


def test_latency_distributions_use_the_sleep() -> None:
    sleeps = Sleeps()
    plan = parse_plan({"seed": 1, "operations": {"*": {"latency_ms": {"uniform": [10, 20]}},
                                                 "applications.get": {"latency_ms": 7}}})
    inj = FaultInjector(create_app(), plan, sleep=sleeps)

    async def go() -> None:
        async with _client(inj) as c:
            await c.get("/applications")
            for _ in range(20):
                await c.get("/applications/x/devices")
    run(go())
    assert sleeps.calls[0] == pytest.approx(0.007)
    assert all(0.010 <= s <= 0.020 for s in sleeps.calls[1:]) and len(set(sleeps.calls[1:])) > 5


def test_pause_holds_requests_then_serves_them() -> None:
    clock = FakeClock(0.0)
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    inj = FaultInjector(create_app(), parse_plan({"pause_s": 2}), clock, sleep=fake_sleep)

    async def go() -> None:
        async with _client(inj) as c:
            r = await c.get("/applications")
            assert r.status_code == 401  # served after the pause
    run(go())
    assert clock.t == pytest.approx(2.0) and inj.counts["paused"] == 1


def test_inflight_cap_answers_json_503() -> None:
    gate = asyncio.Event()

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    inj = FaultInjector(slow_app, FaultPlan(max_in_flight=3), operation_of=lambda m, p: None)

    async def go() -> list[httpx.Response]:
        async with _client(inj) as c:
            tasks = [asyncio.create_task(c.get("/x")) for _ in range(5)]
            await asyncio.sleep(0.05)
            gate.set()
            return list(await asyncio.gather(*tasks))
    answers = run(go())
    assert sorted(r.status_code for r in answers) == [200, 200, 200, 503, 503]
    refused = [r for r in answers if r.status_code == 503]
    assert all(r.json()["type"] == "ServiceUnavailable" and r.headers["retry-after"] == "1" for r in refused)
    assert inj.in_flight == 0


def test_reset_in_process_raises() -> None:
    inj = FaultInjector(create_app(), parse_plan({"operations": {"*": {"reset_rate": 1}}}))

    async def go() -> None:
        async with _client(inj) as c:
            with pytest.raises(ConnectionResetError):
                await c.get("/applications")
    run(go())


# ---- the admin endpoint -------------------------------------------------------------
def test_admin_get_put_delete_and_loopback_only() -> None:
    emu = create_app(EmulatorConfig(admin=True))
    inj = front(emu)

    async def go() -> None:
        async with _client(inj, "10.1.2.3") as outsider:
            r = await outsider.get("/_emulator/faults")
            assert r.status_code == 404 and r.json()["type"] == "NotFound"
        async with _client(inj) as c:
            assert (await c.get("/_emulator/faults")).json()["operations"] == {}
            bad = await c.put("/_emulator/faults", json={"operations": {"*": {"error": {"rate": 5}}}})
            assert bad.status_code == 400 and "operations.*.error.rate" in bad.json()["message"]
            assert (await c.put("/_emulator/faults", content=b"{nope")).status_code == 400
            ok = await c.put("/_emulator/faults", json={"operations": {"applications.get": {"error": {"rate": 1, "status": 500}}}})
            assert ok.status_code == 200 and "applications.get" in ok.json()["operations"]
            token = await _login(c)
            r = await c.get("/applications", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 500 and r.json()["type"] == "InternalServerError"
            assert (await c.delete("/_emulator/faults")).json()["operations"] == {}
            assert (await c.get("/applications", headers={"Authorization": f"Bearer {token}"})).status_code == 200
            assert (await c.post("/_emulator/faults")).status_code == 405
    run(go())


# ---- over a real socket -------------------------------------------------------------
def _raw(port: int, request: bytes, timeout: float = 5.0) -> tuple[bytes, BaseException | None]:
    """Send raw bytes, read until EOF or error: (bytes read, the error if any)."""
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        try:
            while chunk := s.recv(65536):
                data += chunk
        except OSError as exc:
            return data, exc
    return data, None


@pytest.fixture(scope="module")
def served() -> Any:
    handle = start_in_thread(EmulatorConfig(admin=True))
    yield handle
    handle.stop()


def test_reset_is_a_real_tcp_reset(served: Any) -> None:
    served.front.set_plan(parse_plan({"operations": {"applications.get": {"reset_rate": 1}}}))
    try:
        port = int(served.url.rsplit(":", 1)[1])
        data, err = _raw(port, b"GET /applications HTTP/1.1\r\nHost: x\r\n\r\n")
        assert data == b"" and isinstance(err, ConnectionResetError)
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.get(served.url + "/applications", timeout=5)
        assert httpx.get(served.url + "/applications/x", timeout=5).status_code == 401  # others unaffected
    finally:
        served.front.set_plan(FaultPlan())


def test_slow_body_trickles_in_chunks(served: Any) -> None:
    served.front.set_plan(parse_plan({"operations": {"*": {"slow_body": {"chunk_bytes": 8, "delay_ms": 30}}}}))
    try:
        t0 = time.monotonic()
        chunks: list[bytes] = []
        with httpx.stream("GET", served.url + "/applications", timeout=5) as r:
            chunks = list(r.iter_raw())
        elapsed = time.monotonic() - t0
        body = b"".join(chunks)
        assert r.status_code == 401 and httpx.Response(401, content=body).json()["type"] == "Unauthorized"
        n = -(-len(body) // 8)
        assert elapsed >= 0.03 * (n - 1) * 0.9 and len(chunks) >= 2
    finally:
        served.front.set_plan(FaultPlan())


def test_pause_over_the_wire(served: Any) -> None:
    served.front.pause(0.4)
    t0 = time.monotonic()
    r = httpx.get(served.url + "/applications", timeout=5)
    assert r.status_code == 401 and time.monotonic() - t0 >= 0.35
    served.front.set_plan(FaultPlan())


def test_openapi_is_served(served: Any) -> None:
    doc = httpx.get(served.url + "/_emulator/openapi.json", timeout=5).json()
    assert doc["openapi"].startswith("3.") and "/applications/{applicationId}/devices/{deviceId}/state" in doc["paths"]


def test_cli_bad_faults_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.emulator.cli import main  # noqa: PLC0415

    f = tmp_path / "f.yaml"
    f.write_text("operations: {'*': {error: {status: 418}}}\n")
    assert main(["--faults", str(f), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(f) in err[0] and "operations.*.error.status" in err[0]
