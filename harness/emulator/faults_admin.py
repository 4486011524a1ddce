"""The front of a served emulator: the fault middleware, ``/_emulator/openapi.json`` and the admin endpoint.

``front(emu)`` is what the CLI and ``start_in_thread`` hand to uvicorn: the emulator itself
when no fault is planned and the admin endpoint is off, else the fault middleware around it. The admin
endpoint ``GET/PUT/DELETE /_emulator/faults`` exists only with ``--admin`` and answers
only loopback clients (others get the same 404 as an unknown path, so a scan learns
nothing). The real API has no ``/_emulator`` path, so nothing a client does collides.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from .faults import Clock, FaultInjector, FaultPlan, FaultsError, Receive, Scope, Send, parse_plan, send_error
from .http import from_loopback
from .openapi import openapi_handler

if TYPE_CHECKING:
    from .app import Emulator

MAX_ADMIN_BODY = 64 * 1024


async def _send_json(send: Send, status: int, payload: Any) -> None:
    body = orjson.dumps(payload)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _read(receive: Receive) -> bytes | None:
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_ADMIN_BODY:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


class FaultsAdmin:
    """``GET`` the plan and counters, ``PUT`` a new plan (JSON, the YAML shape), ``DELETE`` all faults."""

    def __init__(self, injector: FaultInjector, known_operations: frozenset[str]) -> None:
        self.injector = injector
        self.known = known_operations

    def state(self) -> dict[str, Any]:
        inj = self.injector
        return {**inj.plan.as_data(), "paused_for_s": max(0.0, inj.paused_until - inj.clock()) if inj.paused_until else 0.0,
                "in_flight": inj.in_flight, "counts": dict(inj.counts)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not from_loopback(scope):
            await send_error(send, 404, "NotFound", f"Path {scope['path']} was not found")
            return
        method = scope["method"]
        if method == "GET":
            await _send_json(send, 200, self.state())
        elif method == "DELETE":
            self.injector.set_plan(FaultPlan(max_in_flight=self.injector.plan.max_in_flight))
            await _send_json(send, 200, self.state())
        elif method == "PUT":
            raw = await _read(receive)
            if raw is None:
                await send_error(send, 413, "PayloadTooLarge", f"Admin body is larger than {MAX_ADMIN_BODY} bytes")
                return
            try:
                data = orjson.loads(raw or b"{}")
                plan = parse_plan(data, "PUT /_emulator/faults", self.known)
            except orjson.JSONDecodeError:
                await send_error(send, 400, "Validation", "PUT /_emulator/faults: body is not valid JSON")
                return
            except FaultsError as exc:
                await send_error(send, 400, "Validation", str(exc))
                return
            self.injector.set_plan(plan)
            await _send_json(send, 200, self.state())
        else:
            await send_error(send, 405, "MethodNotAllowed", f"Method {method} is not allowed on /_emulator/faults; allowed: DELETE, GET, PUT")


def known_operations(emu: Emulator) -> frozenset[str]:
    from .openapi import routes_of  # noqa: PLC0415

    return frozenset(r.operation for r in routes_of(emu.router))


def front(emu: Emulator, plan: FaultPlan | None = None, admin: bool | None = None,
          clock: Clock = time.monotonic) -> Emulator | FaultInjector:
    """The app to serve; plan and admin default to its config (``faults``, ``admin``).

    With no fault planned and no admin endpoint (the default), the emulator is served
    unwrapped, with ``/_emulator/openapi.json`` among its own handlers: the wrapper's
    extra coroutine layer was measurable on the send-state hot path (bench/emulator.py).
    """
    config = emu.config
    plan = plan if plan is not None else (getattr(config, "faults", None) or FaultPlan())
    max_in_flight = getattr(config, "max_in_flight", 0)
    if max_in_flight and not plan.max_in_flight:
        plan = FaultPlan(plan.operations, plan.seed, plan.pause_s, max_in_flight)
    with_admin = admin if admin is not None else getattr(config, "admin", False)
    openapi = openapi_handler(emu)
    if not plan.active and not with_admin:
        emu.handlers["/_emulator/openapi.json"] = openapi
        return emu
    injector = FaultInjector(emu, plan, clock)
    injector.handlers["/_emulator/openapi.json"] = openapi
    if with_admin:
        injector.handlers["/_emulator/faults"] = FaultsAdmin(injector, known_operations(emu))
        if getattr(emu, "users", None) is not None:  # user accounts (users.py), same loopback rule
            from .users import UsersAdmin  # noqa: PLC0415

            injector.handlers["/_emulator/users"] = UsersAdmin(emu.users)
        if getattr(emu, "mqtt", None) is not None:  # the MQTT broker's counters and drop (mqtt/admin.py), same rule
            from .mqtt.admin import MqttAdmin  # noqa: PLC0415

            injector.handlers["/_emulator/mqtt"] = MqttAdmin(emu.mqtt)
    return injector
