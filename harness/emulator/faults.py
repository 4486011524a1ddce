"""Fault injection as an ASGI middleware around the emulator (docs/RELIABILITY.md).

Why a wrapper and not flags inside ``app.py``: the emulator's hot path stays exactly
as fast as it is when no fault is configured; the wrapper then costs one prefix test
and one attribute check per request. Faults are data (``FaultPlan``, from YAML or the
admin endpoint) chosen per Losant operation (``device.sendState``) or for all
(``"*"``), drawn from one seeded ``random.Random`` so a test sees the same faults
every run.

Kinds: added latency (fixed or a distribution), an error rate answered with the JSON
error body (500/502/503, the last optionally with ``Retry-After``), connection resets
(the socket is closed with SO_LINGER 0, so the client reads RST, no status line), slow
bodies (the answer trickles out in small chunks), a pause (requests wait until it
ends, then are served) and a bounded in-flight limit (beyond N concurrent requests:
503 ``ServiceUnavailable`` with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Awaitable, Callable

import orjson

from harness.checking import Checker, InputError, read_yaml

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Clock = Callable[[], float]

PREFIX = "/_emulator/"
# 401 simulates a token revoked or expired server-side: clients must authenticate again
ERROR_TYPES = {401: "Unauthorized", 500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable"}
_JSON = (b"content-type", b"application/json; charset=utf-8")


#: A malformed faults file or admin body: the one error type of every input file (``problems``: one line each).
FaultsError = InputError


@dataclass(frozen=True)
class Latency:
    """Added delay in ms: ``fixed``, ``uniform`` [a, b] or ``exponential`` with a mean."""

    kind: str = "fixed"
    a: float = 0.0
    b: float = 0.0

    def draw(self, rng: random.Random) -> float:
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        if self.kind == "exponential":
            return rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0
        return self.a

    def as_data(self) -> Any:
        if self.kind == "fixed":
            return self.a
        return {"uniform": [self.a, self.b]} if self.kind == "uniform" else {"exponential": self.a}


@dataclass(frozen=True)
class Fault:
    """What happens to one operation's requests; every field off by default."""

    latency: Latency | None = None
    error_rate: float = 0.0
    error_status: int = 503
    retry_after: int | None = None
    reset_rate: float = 0.0
    slow_chunk_bytes: int = 0
    slow_delay_ms: float = 0.0

    def as_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.latency is not None:
            out["latency_ms"] = self.latency.as_data()
        if self.error_rate:
            out["error"] = {"rate": self.error_rate, "status": self.error_status}
            if self.retry_after is not None:
                out["error"]["retry_after"] = self.retry_after
        if self.reset_rate:
            out["reset_rate"] = self.reset_rate
        if self.slow_chunk_bytes:
            out["slow_body"] = {"chunk_bytes": self.slow_chunk_bytes, "delay_ms": self.slow_delay_ms}
        return out


@dataclass(frozen=True)
class FaultPlan:
    """All faults: per operation name (or ``"*"``), a seed, a pause and an in-flight cap."""

    operations: dict[str, Fault] = field(default_factory=dict)
    seed: int = 0
    pause_s: float = 0.0
    max_in_flight: int = 0  # 0 = no cap

    @property
    def active(self) -> bool:
        """Whether the plan changes anything: without it the emulator is served unwrapped."""
        return bool(self.operations) or self.pause_s > 0 or self.max_in_flight > 0

    def for_operation(self, operation: str | None) -> Fault | None:
        """The operation's own entry wins over ``"*"``; they are not merged."""
        ops = self.operations
        return ops.get(operation or "", ops.get("*"))

    def as_data(self) -> dict[str, Any]:
        return {"seed": self.seed, "pause_s": self.pause_s, "max_in_flight": self.max_in_flight,
                "operations": {name: f.as_data() for name, f in self.operations.items()}}


# ---- parsing: YAML/JSON data -> FaultPlan, every problem named (harness.checking) -------
PLAN_FIELDS = ("seed", "pause_s", "max_in_flight", "operations")
FAULT_FIELDS = ("latency_ms", "error", "reset_rate", "slow_body")
LATENCY_HINT = "ms, {uniform: [low_ms, high_ms]} or {exponential: mean_ms}"


def _latency(c: Checker, v: object, path: str) -> Latency:
    if isinstance(v, dict) and len(v) == 1 and "uniform" in v:
        pair = v["uniform"]
        if not (isinstance(pair, list) and len(pair) == 2):
            c.bad(f"{path}.uniform", pair, "[low_ms, high_ms]")
            return Latency()
        a = c.number(f"{path}.uniform[0]", pair[0], 0.0, lo=0)
        b = c.number(f"{path}.uniform[1]", pair[1], a, lo=0)
        if b < a:
            c.bad(f"{path}.uniform[1]", pair[1], f"a number >= low ({a:g})")
        return Latency("uniform", a, max(a, b))
    if isinstance(v, dict) and len(v) == 1 and "exponential" in v:
        return Latency("exponential", c.number(f"{path}.exponential", v["exponential"], 0.0, lo=0))
    if isinstance(v, dict):
        c.bad(path, v, LATENCY_HINT)
        return Latency()
    return Latency("fixed", c.number(path, v, 0.0, lo=0))


def _fault(c: Checker, node: object, path: str) -> Fault:
    d = c.mapping(path, node, FAULT_FIELDS, "a mapping with " + ", ".join(FAULT_FIELDS))
    f = Fault()
    if "latency_ms" in d:
        f = replace(f, latency=_latency(c, d["latency_ms"], f"{path}.latency_ms"))
    if "error" in d:
        e = c.mapping(f"{path}.error", d["error"], ("rate", "status", "retry_after"))
        f = replace(f, error_rate=c.number(f"{path}.error.rate", e.get("rate"), 1.0, lo=0, hi=1),
                    error_status=c.choice(f"{path}.error.status", e.get("status"), tuple(ERROR_TYPES), 503),
                    retry_after=c.number(f"{path}.error.retry_after", e.get("retry_after"), None, lo=0, hi=86400,
                                         integer=True))
    if "reset_rate" in d:
        f = replace(f, reset_rate=c.number(f"{path}.reset_rate", d["reset_rate"], 0.0, lo=0, hi=1))
    if "slow_body" in d:
        s = c.mapping(f"{path}.slow_body", d["slow_body"], ("chunk_bytes", "delay_ms"))
        f = replace(f, slow_chunk_bytes=c.number(f"{path}.slow_body.chunk_bytes", s.get("chunk_bytes"), 16, lo=1,
                                                 integer=True),
                    slow_delay_ms=c.number(f"{path}.slow_body.delay_ms", s.get("delay_ms"), 10.0, lo=0, hi=60_000))
    return f


def parse_plan(data: object, source: str = "faults", known_operations: frozenset[str] | None = None) -> FaultPlan:
    """Validate data (the YAML shape of docs/RELIABILITY.md); one FaultsError lists every problem, one per line.

    >>> parse_plan({"operations": {"*": {"latency_ms": 5}}}).for_operation("device.get").latency.a
    5.0
    """
    c = Checker(source)
    d = c.mapping("", data, PLAN_FIELDS, "a mapping with " + ", ".join(PLAN_FIELDS))
    ops: dict[str, Fault] = {}
    raw_ops = c.mapping("operations", d.get("operations"), None, "a mapping of operation name (or '*') to a fault")
    for name, node in raw_ops.items():
        path = f"operations.{name}"
        if known_operations is not None and name != "*" and name not in known_operations:
            c.unknown(path, str(name), sorted(known_operations), "operation",
                      "'*' or an emulated operation such as device.sendState")
        ops[str(name)] = _fault(c, node, path)
    plan = FaultPlan(ops, c.number("seed", d.get("seed"), 0, integer=True),
                     c.number("pause_s", d.get("pause_s"), 0.0, lo=0, hi=3600),
                     c.number("max_in_flight", d.get("max_in_flight"), 0, lo=0, hi=1_000_000, integer=True))
    c.check()
    return plan


def load_plan(path: str | Path, known_operations: frozenset[str] | None = None) -> FaultPlan:
    """Read a YAML faults file; errors name the file and the field."""
    return parse_plan(read_yaml(path, "faults file"), str(path), known_operations)


# ---- the middleware -----------------------------------------------------------------
async def send_error(send: Send, status: int, type_: str, message: str, retry_after: int | None = None) -> None:
    body = orjson.dumps({"type": type_, "message": message})
    headers = [_JSON, (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def reset_connection(send: Send) -> None:
    """Drop the connection with no answer: RST under uvicorn, an exception in-process.

    ASGI has no "abort" message, and returning without answering makes uvicorn send a
    plain 500. The send callable of uvicorn's protocols is a bound method of the cycle
    holding the transport; with SO_LINGER 0 the close is a TCP RST. Elsewhere (httpx's
    ASGITransport) the nearest equivalent is an exception the client sees.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionResetError("fault injection: connection reset")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()
    for _ in range(3):  # let connection_lost run, so uvicorn sees a disconnect and writes nothing
        await asyncio.sleep(0)


def operation_lookup(app: Any) -> Callable[[str, str], str | None]:
    """method, path -> operation name through the app's router (read-only), None if unknown."""
    router = getattr(app, "router", None)

    def lookup(method: str, path: str) -> str | None:
        if router is None:
            return None
        try:
            return str(router.match(method, path)[0].operation)
        except Exception:  # noqa: BLE001 - unknown path or method: only "*" applies
            return None
    return lookup


class FaultInjector:
    """``FaultInjector(app, plan, clock)`` is itself an ASGI app (like Starlette's middlewares).

    ``clock`` and ``sleep`` are injectable so pauses and latencies are testable; the
    pause deadline is measured on ``clock``. ``handlers`` maps paths under
    ``/_emulator/`` to small ASGI apps (OpenAPI, admin); they bypass faults.
    """

    def __init__(self, app: ASGIApp, faults: FaultPlan | None = None, clock: Clock = time.monotonic, *,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 handlers: dict[str, ASGIApp] | None = None,
                 operation_of: Callable[[str, str], str | None] | None = None) -> None:
        self.app = app
        self.clock = clock
        self.sleep = sleep
        self.handlers = handlers or {}
        self.operation_of = operation_of or operation_lookup(app)
        self.in_flight = 0
        self.counts: dict[str, int] = {"latency": 0, "error": 0, "reset": 0, "slow": 0, "paused": 0, "overload": 0}
        self.set_plan(faults or FaultPlan())

    def set_plan(self, plan: FaultPlan) -> None:
        """Install a plan: reseeds the generator and starts its pause now."""
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.paused_until = self.clock() + plan.pause_s if plan.pause_s else 0.0
        self.active = plan.active

    def pause(self, seconds: float) -> None:
        self.paused_until = self.clock() + seconds
        self.active = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith(PREFIX):
            handler = self.handlers.get(path)
            if handler is None:
                await send_error(send, 404, "NotFound", f"Path {path[:200]} was not found")
            else:
                await handler(scope, receive, send)
            return
        if not self.active:
            await self.app(scope, receive, send)
            return
        cap = self.plan.max_in_flight
        if cap and self.in_flight >= cap:
            self.counts["overload"] += 1
            await send_error(send, 503, "ServiceUnavailable", "Too many requests in flight; retry later", 1)
            return
        self.in_flight += 1
        try:
            await self._faulty(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _faulty(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.paused_until:
            if self.clock() < self.paused_until:
                self.counts["paused"] += 1
            while (left := self.paused_until - self.clock()) > 0:
                await self.sleep(min(left, 0.05))
        ops = self.plan.operations
        fault = self.plan.for_operation(self.operation_of(scope["method"], scope["path"])) if ops else None
        if fault is None:
            await self.app(scope, receive, send)
            return
        rng = self.rng
        if fault.latency is not None:
            self.counts["latency"] += 1
            await self.sleep(fault.latency.draw(rng) / 1000)
        if fault.reset_rate and rng.random() < fault.reset_rate:
            self.counts["reset"] += 1
            await reset_connection(send)
            return
        if fault.error_rate and rng.random() < fault.error_rate:
            self.counts["error"] += 1
            status = fault.error_status
            retry = fault.retry_after if status == 503 else None
            await send_error(send, status, ERROR_TYPES[status], "Injected fault", retry)
            return
        if fault.slow_chunk_bytes:
            self.counts["slow"] += 1
            send = self._slow(send, fault.slow_chunk_bytes, fault.slow_delay_ms / 1000)
        await self.app(scope, receive, send)

    def _slow(self, send: Send, size: int, delay: float) -> Send:
        async def slow_send(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
                return
            body: bytes = message.get("body", b"")
            more = message.get("more_body", False)
            for i in range(0, max(len(body), 1), size):
                last = i + size >= len(body)
                await send({"type": "http.response.body", "body": body[i:i + size], "more_body": more or not last})
                if not last:
                    await self.sleep(delay)
        return slow_send
