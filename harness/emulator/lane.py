"""The send-state lane: a device's state report answered by the connection itself, without an ASGI task.

Why: under a fleet (one keep-alive connection per device, one report a second each) the
emulator spent about 2.2x the CPU per request of closed-loop ingest, and most of the
difference was the serving machinery around the handler, paid once per request because
each loop turn carries one or two requests: an asyncio task and its two steps, an
``asyncio.Event``, uvicorn's ``RequestResponseCycle``, the ASGI scope and message dicts,
the answer written in two ``send`` calls, and a future per commit. Profiled at 4,000
devices (py-spy): the ASGI task path, the cycle's ``send`` and the young collections of
the objects each request leaves on its connection were about half of the emulator's time.

What takes the lane (``GuardedProtocol.on_headers_complete``): ``POST
/applications/{a}/devices/{d}/state`` in its plain form (fastpath.split_send_state), with a
``Content-Length`` of at most ``MAX_JSON_ITEMS`` bytes (no slice-wise measuring needed),
no ``Transfer-Encoding``, no ``Expect``, not behind an unanswered request (pipelining goes
through uvicorn, in order), not while the client leaves earlier answers unread (writing
paused: uvicorn's path waits for the drain, so a client that never reads cannot pile up
answers in the emulator's memory), and only when the emulator serves unwrapped with its fast path
on (no faults, no admin wrapper, no test delay). Everything else is uvicorn's, unchanged.

What it does is the fast path's: the same ``fastpath.make_accept`` core (read the body,
token, principal, scope, application, device, JSON, body check, throttle, rows), the same
group commit (the answer is written only once its rows are committed: an accepted write
is never lost), and the same bytes on the wire as uvicorn writes for the ASGI path
(tests/emulator/test_lane.py compares them). A bug is the same honest 500, counted and
logged by the emulator. The connection guards (header and body caps and timeouts, bytes in
flight) apply as before: they run before the lane sees the request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from .bounds import MAX_JSON_ITEMS
from .errors import INTERNAL_ERROR, ApiError
from .fastpath import make_accept
from .http import JSON_HEADERS, SUCCESS_BODY

if TYPE_CHECKING:
    from .app import Emulator

LANE_MAX_BODY = MAX_JSON_ITEMS  # bodies up to this are parsed at once (larger ones are measured in slices first)
ROUTE = "/applications/{applicationId}/devices/{deviceId}/state"


def answer_bytes(status: int, body: bytes, keep_alive: bool, extra: bytes = b"") -> bytes:
    """Status line, the JSON headers (then ``extra`` header lines) and the body, as uvicorn writes
    ``send_json``'s two messages, in one write; the connection guards' refusals use it too."""
    head = [STATUS_LINE[status]]
    head.extend(b"%s: %s\r\n" % pair for pair in JSON_HEADERS)
    head.append(b"content-length: %d\r\n" % len(body))
    if not keep_alive:
        head.append(b"connection: close\r\n")
    head.append(extra)
    head.append(b"\r\n")
    return b"".join(head) + body


class _NoEvent:
    """Stands in for the cycle's ``message_event``: nothing awaits a lane request's body."""

    __slots__ = ()

    def set(self) -> None:
        return None


NO_EVENT = _NoEvent()


class LaneCycle:
    """One lane request on its connection: what uvicorn's code and the guards read of a cycle, plus the lane's.

    It is also the group commit's waiter (``Store.enqueue_states``): the store calls
    ``set_result`` once the rows are committed, ``set_exception`` if the commit failed.
    """

    __slots__ = ("answered", "app_id", "authorization", "body", "content_type", "device_id", "disconnected",
                 "keep_alive", "more_body", "response_complete", "response_started")

    message_event = NO_EVENT

    def __init__(self, answered: Callable[[LaneCycle, BaseException | None], None], app_id: str,
                 device_id: str, authorization: bytes | None, content_type: bytes | None, keep_alive: bool) -> None:
        self.answered = answered
        self.app_id, self.device_id = app_id, device_id
        self.authorization, self.content_type = authorization, content_type
        self.keep_alive = keep_alive
        self.body = bytearray()
        self.more_body = True
        self.response_started = self.response_complete = self.disconnected = False

    # the store's waiter interface (asyncio.Future's, the part the group commit uses)
    def done(self) -> bool:
        return self.response_complete or self.disconnected

    def set_result(self, _result: None) -> None:
        self.answered(self, None)

    def set_exception(self, exc: BaseException) -> None:
        self.answered(self, exc)


class SendStateLane:
    """The emulator's side of the lane: decide a request, answer it now or after its commit."""

    def __init__(self, emu: Emulator) -> None:
        self._emu = emu
        self.max_body = min(LANE_MAX_BODY, emu.config.max_body_bytes)  # larger: uvicorn's path (413, measuring)
        self._accept = make_accept(emu)
        self._store = emu.store
        self.success = answer_bytes(200, SUCCESS_BODY, True)
        self.success_close = answer_bytes(200, SUCCESS_BODY, False)
        self._internal = orjson.dumps(INTERNAL_ERROR)
        self.served = 0  # requests the lane decided (tests check the lane, not uvicorn's path, served them)

    def serve(self, cycle: LaneCycle) -> bytes | None:
        """The answer to write now, or None when the store will call the cycle back after the commit."""
        self.served += 1
        try:
            rows = self._accept(cycle.authorization, cycle.content_type, bytes(cycle.body), cycle.app_id,
                                cycle.device_id, None)
        except ApiError as exc:
            return answer_bytes(exc.status, orjson.dumps(exc.body()), cycle.keep_alive)
        except Exception as exc:  # the top-level guard, as on the general path: an honest 500
            return self.failed(exc, cycle.keep_alive)
        if rows:
            self._store.enqueue_states_for(rows, cycle)
            return None
        return self.success if cycle.keep_alive else self.success_close

    def failed(self, exc: BaseException, keep_alive: bool) -> bytes:
        """An emulator bug (or a failed commit): counted and logged like the general path's, answered 500."""
        self._emu.note_unexpected(exc, ROUTE)
        return answer_bytes(500, self._internal, keep_alive)


def lane_of(app: Any) -> SendStateLane | None:
    """The lane for the app uvicorn serves: only the bare emulator with its fast path on (faults wrap it)."""
    make = getattr(app, "send_state_lane", None)
    return make() if callable(make) else None
