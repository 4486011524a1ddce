"""What every harness user shares: one instrumented call, auth against the Losant API.

Each request goes through ``LosantUser.call``, which records one sample (planned and
actual send time, response time, status, bytes, error kind) straight into the
process's recorder, and names the request in Locust's statistics by its operation
(``device.sendState``), never by a URL with ids in it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson
from locust import FastHttpUser

if TYPE_CHECKING:
    from harness.session import RunContext

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class Unauthorized(Exception):
    """The target refused our token: the caller re-authenticates and carries on."""


class LosantUser(FastHttpUser):
    """Base for every simulated caller; ``environment.losant`` carries the run's shared context."""

    abstract = True
    network_timeout = 30.0
    connection_timeout = 10.0

    @property
    def ctx(self) -> RunContext:
        return self.environment.losant  # type: ignore[attr-defined]

    def call(self, op: str, method: str, path: str, token: str | None, key: str,
             planned: float | None = None, body: Any = None) -> tuple[int, Any]:
        """Send one request, record its sample, and return (status, parsed JSON or None).

        ``planned`` is the send time the schedule asked for; without it the request
        is closed-loop (an operator acting after think time) and planned = sent.
        """
        headers = dict(JSON_HEADERS)
        if token:
            headers["Authorization"] = "Bearer " + token
        data = orjson.dumps(body) if body is not None else None
        sent = time.time()
        t0 = time.perf_counter()
        resp = self.client.request(method, path, name=op, data=data, headers=headers)
        latency = time.perf_counter() - t0
        status = resp.status_code or 0
        content = resp.content if status else b""
        self.ctx.record(op, key, sent if planned is None else planned, sent, latency, status,
                        len(content or b""), getattr(resp, "error", None))
        parsed = None
        if content:
            try:
                parsed = orjson.loads(content)
            except orjson.JSONDecodeError:
                parsed = None
        if status == 429:
            retry = resp.headers.get("retry-after") if resp.headers else None
            self.ctx.throttled(op, key, time.time(), float(retry) if retry else None)
        return status, parsed

    def authenticate_device(self, device_id: str) -> str | None:
        """Device token for ``device_id`` via the run's access key, or None when refused."""
        fleet = self.ctx.fleet
        status, body = self.call("auth.device", "POST", "/auth/device", None, device_id, body={
            "deviceId": device_id, "key": fleet.access_key, "secret": str(fleet.access_secret)})
        if status == 200 and isinstance(body, dict):
            return body.get("token")
        return None
