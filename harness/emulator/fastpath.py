"""The send-state fast path: ``POST /applications/{a}/devices/{d}/state`` without the general machinery.

Send State is the load test's hot path (bench/emulator.py), so it skips what the
general path pays for every request: the router, the copy of the header list into a
dict, the ``Request`` object and two coroutine layers. It does exactly what the general
path does, in the same order, with the same functions and the same answers:

read the body (413 over the cap) -> token -> principal (401) -> scope (403) ->
application (403/404) -> device and reach (403/404) (``Auth.reach``, remembered while the
store's resources are unchanged) -> Content-Type and JSON (400) ->
body check (400) -> throttle per target device (429) -> rows -> group commit (the answer
waits for the commit) -> ``{"success": true}``.

Only the exact path shape is taken here (``split_send_state``); anything else, a
trailing slash included, goes through the router as before. ``Emulator`` enables the
fast path only when the router maps that shape to ``routes_device.send_state`` and no
test delay is configured; any ``ApiError`` is answered like on the general path, and
anything else propagates to the top-level guard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable

from .errors import too_large
from .bounds import MAX_JSON_ITEMS
from .http import SUCCESS_END, SUCCESS_START, measure_body, parse_json, rest_of_body
from .states import check_body, common_rows, declared_types, rows_for

if TYPE_CHECKING:
    from .app import Emulator

OPERATION = "device.sendState"
_PREFIX = "/applications/"
_SUFFIX = "/state"
_AUTHORIZATION = b"authorization"
_CONTENT_TYPE = b"content-type"


def split_send_state(method: str, path: str) -> tuple[str, str] | None:
    """(application id, device id) when ``method path`` is a send-state call in its plain form."""
    if method != "POST" or path[-6:] != _SUFFIX or path[:14] != _PREFIX:
        return None
    parts = path.split("/", 6)
    if len(parts) != 6 or parts[3] != "devices" or not parts[2] or not parts[4]:
        return None
    return parts[2], parts[4]


def make_accept(emu: Emulator) -> Callable[[bytes | None, bytes | None, bytes, str, str, bool | None], list[Any]]:
    """The synchronous core of a send-state call, after its body is read: the rows to commit (possibly none).

    Shared by the ASGI handler below and the connection's lane (lane.py), so both make
    the same checks in the same order with the same answers; ``deep`` is what
    ``measure_body`` found for a body over ``MAX_JSON_ITEMS`` bytes (None: measured here).
    Raises ``ApiError`` for every client-visible refusal.
    """
    clock = emu.clock
    may_drop = emu.config.test_drop_fraction > 0
    auth, throttle = emu.auth, emu.throttle

    def accept(authorization: bytes | None, content_type: bytes | None, body: bytes, app_id: str, device_id: str,
               deep: bool | None) -> list[Any]:
        device = auth.reach(authorization, app_id, device_id, OPERATION)
        ctype = content_type.decode("latin-1") if content_type is not None else None
        parsed = parse_json(body, ctype, deep)
        rows = common_rows(device, parsed, int(clock() * 1000))  # None: not the common shape, check it in full
        if rows is None:
            states = check_body(parsed, declared_types(device), depth_checked=True)
            throttle.check_device(OPERATION, device["id"], device["applicationId"])
            rows = rows_for(device, states, emu.now_ms())
        else:
            throttle.check_device(OPERATION, device["id"], device["applicationId"])
        if rows and may_drop and emu.should_drop_write():
            return []
        return rows

    return accept


def request_headers(headers: list[tuple[bytes, bytes]]) -> tuple[bytes | None, bytes | None]:
    """(Authorization, Content-Type); the last occurrence wins, as ``dict(headers)`` did on the general path."""
    authorization = content_type = None
    for name, value in headers:
        if name == _AUTHORIZATION:
            authorization = value
        elif name == _CONTENT_TYPE:
            content_type = value
    return authorization, content_type


def make_send_state(emu: Emulator) -> Callable[..., Awaitable[None]]:
    """The fast ASGI handler for one emulator (auth, store and throttle are looked up per call, as the general path does)."""
    limit = emu.config.max_body_bytes
    accept = make_accept(emu)

    async def send_state(scope: dict[str, Any], receive: Any, send: Any, app_id: str, device_id: str) -> None:
        # body first: the general path reads it before authenticating (413 beats 401)
        message = await receive()
        body = message.get("body", b"")
        if message.get("more_body", False):
            body = await rest_of_body(body, receive, limit)
        elif len(body) > limit:
            raise too_large(limit)
        authorization, content_type = request_headers(scope["headers"])
        deep = None
        if len(body) > MAX_JSON_ITEMS:  # measured in slices after the checks before it, as before
            emu.auth.reach(authorization, app_id, device_id, OPERATION)
            deep = await measure_body(body, content_type.decode("latin-1") if content_type is not None else None)
        rows = accept(authorization, content_type, body, app_id, device_id, deep)
        if rows:
            await emu.store.enqueue_states(rows)
        await send(SUCCESS_START)  # send_success, inlined
        await send(SUCCESS_END)

    return send_state
