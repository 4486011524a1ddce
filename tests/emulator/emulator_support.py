"""Helpers for the emulator tests: a fake clock and a synchronous in-process API client."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from harness.emulator.app import Emulator, create_app
from harness.emulator.config import DEFAULT_EMAIL, DEFAULT_PASSWORD, EmulatorConfig
from harness.emulator.responses import answer_problems

T0 = 1_790_000_000.0  # a fixed "now" in seconds (2026-09-21)


class FakeClock:
    """Seconds since the epoch, moved only by ``advance``: windows are tested without sleeping."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def schema_problems(app: Emulator, response: httpx.Response) -> list[str]:
    """Why an answer of ``app`` does not meet the official schema of its endpoint and status."""
    request = response.request
    try:
        body = response.json()
    except ValueError:
        return [f"{request.method} {request.url.path}: answer is not JSON"]
    return answer_problems(app.router, request.method, request.url.path, request.url.query, response.status_code, body)


class Api:
    """Synchronous façade over ``httpx.AsyncClient(ASGITransport(app))`` with one event loop.

    Every answer is checked against the official schema of its endpoint and status
    (``harness/emulator/responses.py``); set ``check_schemas = False`` for a test that
    must see a malformed answer.
    """

    def __init__(self, app: Emulator) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator")
        self.token: str | None = None
        self.check_schemas = True

    def _checked(self, response: httpx.Response) -> httpx.Response:
        if self.check_schemas:
            found = schema_problems(self.app, response)
            assert not found, "answer not valid against the official schema:\n" + "\n".join(found[:10])
        return response

    def request(self, method: str, path: str, token: str | None = "default", **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        tok = self.token if token == "default" else token
        if tok:
            headers["Authorization"] = f"Bearer {tok}"
        return self._checked(self.loop.run_until_complete(self.client.request(method, path, headers=headers, **kw)))

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def gather(self, calls: list[tuple[str, str, dict[str, Any]]]) -> list[httpx.Response]:
        """Run requests concurrently (exercises group commit)."""
        async def run() -> list[httpx.Response]:
            async def one(method: str, path: str, kw: dict[str, Any]) -> httpx.Response:
                return await self.client.request(method, path, **kw)
            return list(await asyncio.gather(*(one(m, p, k) for m, p, k in calls)))
        return [self._checked(r) for r in self.loop.run_until_complete(run())]

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()
        self.app.store.close()

    # ---- provisioning helpers -------------------------------------------------
    def login(self) -> str:
        r = self.post("/auth/user", token=None, json={"email": DEFAULT_EMAIL, "password": DEFAULT_PASSWORD})
        assert r.status_code == 200, r.text
        self.token = r.json()["token"]
        return self.token

    def application(self, name: str = "app") -> str:
        r = self.post("/applications", json={"name": name})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def device(self, app_id: str, name: str = "dev", **fields: Any) -> str:
        body = {"name": name, "attributes": [{"name": "temp", "dataType": "number"}, {"name": "msg", "dataType": "string"},
                                             {"name": "on", "dataType": "boolean"}], **fields}
        r = self.post(f"/applications/{app_id}/devices", json=body)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def key(self, app_id: str, **fields: Any) -> dict[str, Any]:
        r = self.post(f"/applications/{app_id}/keys", json=fields)
        assert r.status_code == 201, r.text
        return r.json()

    def device_token(self, device_id: str, key: dict[str, Any], **extra: Any) -> str:
        r = self.post("/auth/device", token=None, json={"deviceId": device_id, "key": key["key"], "secret": key["secret"], **extra})
        assert r.status_code == 200, r.text
        return r.json()["token"]

    def api_token(self, app_id: str, scope: list[str] | None = None, **fields: Any) -> str:
        body: dict[str, Any] = {"name": "tok", **fields}
        if scope is not None:
            body["scope"] = scope
        r = self.post(f"/applications/{app_id}/tokens", json=body)
        assert r.status_code == 201, r.text
        return r.json()["token"]



def make_api(clock: FakeClock, **config: Any) -> Api:
    return Api(create_app(EmulatorConfig(**config), clock=clock))
