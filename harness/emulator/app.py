"""The emulator as a raw ASGI application: routing, auth, the top-level guard.

No framework: ANCHOR-FIGURES shows Starlette's request machinery costs ~40% on a
small POST, and send-state is the hot path. A request is: match route -> read body
(capped) -> resolve token -> check scope -> handler -> JSON. Any ``ApiError`` becomes
its JSON body; anything unexpected is a bug of the emulator, not the client's fault: it
is counted, logged (type, route and server-side traceback, never the body, which may hold
secrets) and answered ``500 {"type": "InternalError", "message": ...}``, never with a
traceback to the client (a 400 would hide the bug from fuzzing).

Send State has a fast path (``fastpath.py``): the plain ``POST /applications/{a}/devices/{d}/state``
skips the router and the ``Request`` object; same checks, same answers, same guard.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import traceback
from typing import TYPE_CHECKING, Any, Callable

from .auth import Auth
from .config import EmulatorConfig
from .errors import INTERNAL_ERROR, ApiError
from .fastpath import make_send_state, split_send_state
from .bounds import MAX_JSON_ITEMS
from .http import ApiResponse, Request, measure_body, read_body, send_json, send_success
from .router import Router
from .store import Store
from .throttle import Throttle
from .users import seed as seed_users
from .views import SUCCESS

if TYPE_CHECKING:
    from .lane import SendStateLane

log = logging.getLogger("harness.emulator")
_BODY_METHODS = frozenset(("POST", "PATCH", "PUT"))
Clock = Callable[[], float]
EMULATOR_PREFIX = "/_emulator/"
GC_EVERY_S = 0.1  # with automatic collection off (see cli.main), a young collection this often (_collect_garbage)


class Emulator:
    """Shared state of one emulator: config, clock, store, auth, throttle, router."""

    def __init__(self, config: EmulatorConfig, clock: Clock = time.time) -> None:
        self.config = config
        self.clock = clock
        self.store = Store(config.db_path, scratch=config.scratch_db)
        self.auth = Auth(self.store, clock, config.email)
        self.users = seed_users(self.store, clock, ((config.email, config.password), *config.users))
        self.throttle = Throttle(config.limits, clock, config.effective_job_seconds)
        self.router = Router()
        self.unexpected_errors = 0
        #: the MQTT broker (mqtt/broker.py) when one is served with this app; REST commands reach it
        self.mqtt: Any = None
        self._drop_credit = 0.0
        self._public: set[str] = set()
        self._delay_s = config.test_delay_ms / 1000
        #: ASGI apps for paths under ``/_emulator/`` (the OpenAPI description), served before
        #: routing on the general path; the real API has no such path, so nothing collides.
        self.handlers: dict[str, Callable[..., Any]] = {}
        from . import routes  # noqa: PLC0415 - routes import app types

        routes.register(self)
        self._fast_send_state = make_send_state(self) if self._fast_path_applies() else None
        self.lane: SendStateLane | None = None  # set when served on uvicorn (send_state_lane)

    def _fast_path_applies(self) -> bool:
        """The fast path replaces exactly the registered send-state route, and only without a test delay."""
        from .routes_device import send_state  # noqa: PLC0415

        if self._delay_s:
            return False
        try:
            route, _ = self.router.match("POST", "/applications/a/devices/d/state")
        except ApiError:
            return False
        return route.handler is send_state and route.operation not in self._public

    async def _collect_garbage(self) -> None:
        """The youngest generation ten times a second, then freeze what survived.

        Why: what a fleet leaves behind is long-lived (a connection per device, cached
        devices and tokens, remembered auth, throttle entries), and every collection of an
        older generation walked all of it again. Measured with 4,000 connections on the
        shared 2-core machine (wall time): a generation-1 collection every 10 s took 90-160 ms,
        the full one every minute 110-140 ms (935 ms for the first one after 20,000 devices'
        caches warmed), each a stall of every request, and at 1,000 devices one such pause
        per 10 s window was the whole p99 (~100 ms). Now each object is walked about once,
        within 0.1 s of its birth, then frozen out of the collector's reach; a pause is
        bounded by 0.1 s of survivors (mostly the latest request of each connection that
        reported meanwhile): at most 1.6 ms CPU at 2,000 devices, 3.5 ms at 4,000 (up to
        ~20 ms once overloaded, with a backlog of requests in flight; bench/ceiling.py). The cost:
        cyclic garbage among frozen objects is never collected. Under fleet load the young
        collections found none (0 objects in every one measured), and the emulator froze the
        survivors of every full collection before as well.
        """
        while True:
            await asyncio.sleep(GC_EVERY_S)
            gc.collect(0)
            gc.freeze()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def route(self, method: str, pattern: str, operation: str, handler: Callable[..., Any], public: bool = False) -> None:
        self.router.add(method, pattern, operation, handler)
        if public:
            self._public.add(operation)

    def should_drop_write(self) -> bool:
        """Test fault: drop exactly a fraction F of state writes, every 1/F-th one."""
        fraction = self.config.test_drop_fraction
        if fraction <= 0:
            return False
        self._drop_credit += fraction
        if self._drop_credit >= 1.0 - 1e-9:
            self._drop_credit -= 1.0
            return True
        return False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            fast = self._fast_send_state  # None with a test delay (see _fast_path_applies)
            if fast is not None:
                ids = split_send_state(scope["method"], scope["path"])
                if ids is not None:
                    try:
                        await fast(scope, receive, send, ids[0], ids[1])
                    except ApiError as exc:
                        await send_json(send, exc.status, exc.body())
                    except Exception as exc:  # the top-level guard, as on the general path
                        await self._unexpected(exc, "/applications/{applicationId}/devices/{deviceId}/state", send)
                    return
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if not gc.isenabled():  # the CLI took collection off the request path: collect on a timer
                    self._collector = asyncio.get_running_loop().create_task(self._collect_garbage())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.store.flush()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        route_name = "?"
        if self.handlers and scope["path"].startswith(EMULATOR_PREFIX):
            handler = self.handlers.get(scope["path"])
            if handler is not None:
                await handler(scope, receive, send)
                return
        try:
            if self._delay_s:
                await asyncio.sleep(self._delay_s)
            method = scope["method"]
            route, params = self.router.match(method, scope["path"])
            route_name = route.pattern
            headers = dict(scope["headers"])
            body = await read_body(receive, self.config.max_body_bytes) if method in _BODY_METHODS else b""
            req = Request(method, scope["path"], params, scope.get("query_string", b""), headers, body)
            if route.operation not in self._public:
                req.principal = self.auth.principal(headers.get(b"authorization"))
                self.auth.require_scope(req.principal, route.operation)
            if len(body) > MAX_JSON_ITEMS:  # measured in slices before a handler parses it in one go
                req.deep = await measure_body(body, req.content_type)
            result = route.handler(self, req)
            if route.is_async:
                result = await result
            if result is SUCCESS:
                await send_success(send)
            elif isinstance(result, ApiResponse):
                await send_json(send, result.status, result.payload)
            else:
                await send_json(send, 200, result)
        except ApiError as exc:
            await send_json(send, exc.status, exc.body())
        except Exception as exc:  # the top-level guard: a 500, never a traceback to the client
            await self._unexpected(exc, route_name, send)

    async def _unexpected(self, exc: Exception, route_name: str, send: Any) -> None:
        """An emulator bug: count it, log type, route and traceback (never the body), answer 500."""
        self.note_unexpected(exc, route_name)
        try:
            await send_json(send, 500, INTERNAL_ERROR)
        except Exception:  # noqa: BLE001 - the response may already be started or the client gone
            pass

    def note_unexpected(self, exc: BaseException, route_name: str) -> None:
        """Count and log an emulator bug: type, route and traceback, never the request's body or headers."""
        self.unexpected_errors += 1
        log.error("unexpected %s on %s\n%s", type(exc).__name__, route_name, "".join(traceback.format_tb(exc.__traceback__)))

    def send_state_lane(self) -> SendStateLane | None:
        """The connection-level send-state lane (lane.py), when the fast path applies (no test delay)."""
        from .lane import SendStateLane  # noqa: PLC0415 - serving only (it needs uvicorn's status lines)

        self.lane = SendStateLane(self) if self._fast_send_state is not None else None
        return self.lane


def create_app(config: EmulatorConfig | None = None, clock: Clock = time.time) -> Emulator:
    """An in-process emulator (an ASGI app); tests drive it through ``httpx.ASGITransport``."""
    return Emulator(config or EmulatorConfig(), clock)
