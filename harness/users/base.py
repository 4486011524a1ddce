"""What every harness user shares: one instrumented call, auth against the Losant API.

Each request goes through ``LosantUser.call``, which records one sample (planned and
actual send time, response time, status, bytes, error kind) straight into the
process's recorder, and names the request in Locust's statistics by its operation
(``device.sendState``), never by a URL with ids in it.
"""

from __future__ import annotations

import math
import time
from time import perf_counter
from typing import Any

import gevent
import orjson
from locust import FastHttpUser
from locust.exception import StopUser

from harness.record import classify
from harness.schedule import NO_TICKET
from harness.session import RunContext, SampleSink, run_of

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
#: The status ``LosantUser.call`` returns for a send the ledger dropped (nothing was sent).
DROPPED = -1


class Unauthorized(Exception):
    """The target refused our token: the caller re-authenticates and carries on."""


class LosantUser(FastHttpUser):
    """Base for every simulated caller; ``run_of(environment)`` is the run's shared context."""

    abstract = True
    network_timeout = 30.0
    connection_timeout = 10.0

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        # The Losant API authenticates by bearer token and sets no cookies; without a jar
        # geventhttpclient skips building and parsing cookie headers, about 8% of its own
        # time per request (bench/generator.py).
        self.client.cookiejar = None  # type: ignore[assignment]
        self.client.client.cookiejar = None
        self._ctx: RunContext | None = None
        self._headers: dict[str | None, dict[str, str]] = {}
        #: While set (the harness's own tear-down calls), samples go here instead of the run's recorder.
        self.own_recorder: SampleSink | None = None

    @property
    def ctx(self) -> RunContext:
        ctx = self._ctx
        if ctx is None:
            ctx = run_of(self.environment)
            if ctx is None:  # the run could not be prepared (the error was printed): nothing to drive
                raise StopUser()
            self._ctx = ctx
        return ctx

    def headers_for(self, token: str | None) -> dict[str, str]:
        """One header dict per token, built once: the hot path does not copy headers per request."""
        cache = self._headers
        headers = cache.get(token)
        if headers is None:
            headers = dict(JSON_HEADERS)
            if token:
                headers["Authorization"] = "Bearer " + token
            cache[token] = headers
        return headers

    def call(self, op: str, method: str, path: str, token: str | None, key: str,
             planned: float | None = None, body: Any = None, parse: bool = True,
             latest: float = math.inf, nbytes: int | None = None) -> tuple[int, Any]:
        """Send one request, record its sample, and return (status, parsed JSON or None).

        ``planned`` is the send time the schedule asked for; without it the request
        is closed-loop (an operator acting after think time) and planned = sent.
        ``parse=False`` skips decoding an answer nobody reads (a state send's). ``body`` as
        ``bytes`` is sent as it is (a size probe's padded JSON). ``nbytes`` replaces the
        answer size in the sample (files.post records its request body, the size its cap limits).

        Pacing (respect mode, and the limits a probe leaves alone): the ledger admits the
        call at its actual send time, in the same greenlet step as the send, and charges
        it until its answer (or error) comes back. When it may not go yet, the call waits
        for the ledger, or is dropped and counted (``ctx.dropped``; returns ``(DROPPED,
        None)``, nothing recorded) when it could not go by ``latest`` (an open-loop send's
        slot). A wait the ledger asked for when the call was first considered is part of
        the plan (the sample's planned time moves to it); a stall of the generator or the
        target is not (lateness and the corrected latency show it).
        """
        data = (body if body.__class__ is bytes else orjson.dumps(body)) if body is not None else None
        headers = self._headers.get(token) or self.headers_for(token)
        ctx = self._ctx or self.ctx
        ticket: Any = NO_TICKET
        if ctx.paced:
            now = time.time()
            ticket = ctx.admit(op, key, now)
            if ticket.__class__ is not tuple:  # not yet: the earliest time it might go
                first = ticket
                while True:
                    if ticket > latest:
                        ctx.dropped += 1
                        return DROPPED, None
                    gevent.sleep(ticket - now)
                    now = time.time()
                    ticket = ctx.admit(op, key, now)
                    if ticket.__class__ is tuple:
                        break
                if planned is None or first > planned:
                    planned = first
        sent = time.time()
        t0 = perf_counter()
        try:
            resp = self.client.request(method, path, name=op, data=data, headers=headers)  # type: ignore[arg-type]
        finally:
            if ticket:  # the call counts against its limits until its answer (or error) is in
                ctx.done(ticket, time.time())
        latency = perf_counter() - t0
        status = resp.status_code or 0
        content = resp.content if status else b""
        rec = self.own_recorder or ctx.recorder
        error = 0 if 200 <= status < 400 else classify(status, getattr(resp, "error", None))
        rec.record(rec.op_code(op), rec.key_code(key), sent if planned is None else planned, sent, latency, status,
                   (len(content) if content else 0) if nbytes is None else nbytes, error)
        if status == 429:
            retry = resp.headers.get("retry-after") if resp.headers else None
            retry = retry if isinstance(retry, str) else None
            ctx.throttled(op, key, time.time(), _seconds(retry))
        if not (parse and content):
            return status, None
        try:
            return status, orjson.loads(content)
        except orjson.JSONDecodeError:
            return status, None

    def authenticate_device(self, device_id: str) -> str | None:
        """Device token for ``device_id`` via the run's access key, or None when refused."""
        fleet = self.ctx.fleet
        status, body = self.call("auth.device", "POST", "/auth/device", None, device_id, body={
            "deviceId": device_id, "key": fleet.access_key, "secret": str(fleet.access_secret)})
        if status == 200 and isinstance(body, dict):
            return body.get("token")
        return None


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not used by Losant; it counts as absent)."""
    try:
        return float(retry_after) if retry_after else None
    except ValueError:
        return None
