"""Connection hygiene: uvicorn's httptools protocol with timeouts, size caps and a connection cap.

Why: stock uvicorn times nothing before a connection's first request (its keep-alive timer
starts only after a response), keeps no bound on the request bodies held across
connections, and httptools joins a header piece by piece (quadratic in its size). Measured
on it: 2,000 idle and 1,000 slowloris connections were never closed, 40 half-sent 9.5 MB
bodies took the process from 48 to 425 MB, a 64 MB header stalled every client for ~2 s.

Why a subclass and not another server: the guards cost a few attribute writes per request,
and the subclass drops uvicorn's per-response keep-alive ``call_later`` in exchange, so the
ingest ratio against the bare app on stock uvicorn stays where it was (bench/attacks.py
``--ratio``). It relies on uvicorn's ``HttpToolsProtocol`` internals (``cycle``, ``pipeline``,
``on_response_complete``); tests/emulator/test_connection_hygiene.py exercises every one.

How, per connection, one phase at a time (``_phase``, since ``_since`` on the loop clock):

- IDLE  (connected, no byte of a first request yet): ``idle_timeout_s``,
- KEPT  (answered, kept alive, no byte of the next request yet): ``keepalive_timeout_s``; longer than
  IDLE because a client that has been served is a client (a device reporting every 10 s reuses its
  connection, as behind the platform's load balancer), while a socket that never sends is the attack,
- HEAD  (first byte seen, headers incomplete): ``header_timeout_s``, answered 408,
- BODY  (headers complete, body incomplete): ``body_timeout_s``, answered 408,
- BUSY  (request complete, answer pending): never timed (the app's own work).

One sweep per server every quarter of the shortest timeout (at most 1 s) closes what is
over time, looking at 1,000 connections and closing 50 per loop turn, instead of a timer per request. Bytes before a request's headers complete are
counted before httptools sees them; past ``max_header_bytes`` the request is answered 431
without feeding the rest. Body bytes are counted as httptools hands them over into one
total per server, released when the answer is complete; a body that would take the total
over the cap is answered 503. The last eighth of the cap is kept for small bodies (up to
64 KiB), so ordinary requests are still served while large uploads fill the rest. Every
refusal is the emulator's JSON error with ``connection: close``, and the connection closes.
"""

from __future__ import annotations

import asyncio
import functools
import resource
import urllib.parse
from collections import Counter
from typing import TYPE_CHECKING, Any

import httptools
import orjson
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from .fastpath import split_send_state
from .lane import LaneCycle, answer_bytes

if TYPE_CHECKING:
    from .config import EmulatorConfig
    from .lane import SendStateLane

SMALL_BODY_BYTES = 64 * 1024  # bodies up to this may use the reserved last eighth of the in-flight cap
_BUSY, _IDLE, _HEAD, _BODY, _KEPT = 0, 1, 2, 3, 4  # phases; index into ConnectionGuard.timeouts (BUSY: never)
EXPIRE_BATCH = 50  # connections closed per loop turn by the sweep
SWEEP_SLICE = 1000  # connections looked at per loop turn by the sweep


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (every socket is a file); return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def default_max_connections(open_files: int) -> int:
    """Leave an eighth of the open-file limit (at least 64) to the database, logs, the MQTT
    broker and the sockets accepted only to be refused; never more than 32,768 (each idle
    connection holds a few KB of buffers and parser state)."""
    return max(16, min(32768, open_files - max(64, open_files // 8)))


def answer(status: int, kind: str, message: str, retry_after: bool = False) -> bytes:
    """A complete HTTP/1.1 answer with the emulator's JSON error shape, closing the connection."""
    return answer_bytes(status, orjson.dumps({"type": kind, "message": message}), keep_alive=False,
                        extra=b"retry-after: 1\r\n" if retry_after else b"")


class ConnectionGuard:
    """The limits and shared state of one server: bytes of bodies in flight, refusal counts, the sweep."""

    def __init__(self, config: EmulatorConfig, open_files: int | None = None, lane: SendStateLane | None = None) -> None:
        files = open_files if open_files is not None else raise_open_file_limit()
        self.lane = lane  # the send-state lane (lane.py), or None: every request goes through uvicorn
        self.max_connections = config.max_connections or default_max_connections(files)
        self.max_header_bytes = config.max_header_bytes
        self.cap = config.max_body_in_flight_bytes
        self.large_cap = self.cap - self.cap // 8
        self.timeouts = (0.0, config.idle_timeout_s, config.header_timeout_s, config.body_timeout_s, config.keepalive_timeout_s)
        self.tick = min(1.0, max(0.005, min(self.timeouts[1:]) / 4))
        self.in_flight = 0
        self.counts: Counter[str] = Counter()
        self.too_many = answer(503, "ServiceUnavailable", f"The emulator serves at most {self.max_connections} connections at once "
                               "(--max-connections)", retry_after=True)
        self.too_large = answer(431, "RequestHeaderFieldsTooLarge", f"The request line and headers are larger than "
                                f"{self.max_header_bytes} bytes (--max-header-bytes)")
        self.body_cap = answer(503, "ServiceUnavailable", f"Request bodies in flight exceed {self.cap} bytes "
                               "(--max-body-in-flight); try again", retry_after=True)
        self.bad_request = answer(400, "Validation", "Invalid HTTP request: the request line or a header is malformed")
        self.late_head = answer(408, "RequestTimeout", f"The request headers did not arrive within {config.header_timeout_s} s "
                                "(--header-timeout)")
        self.late_body = answer(408, "RequestTimeout", f"The request body did not arrive within {config.body_timeout_s} s "
                                "(--body-timeout)")
        self._connections: set[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def protocol_factory(self) -> functools.partial[GuardedProtocol]:
        """What uvicorn.Config takes as ``http``: it calls it with config, server_state, app_state, _loop."""
        return functools.partial(GuardedProtocol, guard=self)

    def watch(self, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        """Start the sweep with the server's first connection (the loop is running by then)."""
        if self._loop is None:
            self._loop, self._connections = loop, connections
            loop.call_later(self.tick, self._sweep)

    def _sweep(self) -> None:
        """Look at every connection once per tick, ``SWEEP_SLICE`` of them per loop turn.

        Why slices: one pass over 8,000 connections held the loop several milliseconds once a
        second, and every request that arrived meanwhile waited for it (a fleet's p99)."""
        loop, connections = self._loop, self._connections
        assert loop is not None and connections is not None
        self._sweep_slice(list(connections), 0)
        loop.call_later(self.tick, self._sweep)

    def _sweep_slice(self, conns: list[Any], start: int) -> None:
        assert self._loop is not None
        now = self._loop.time()
        timeouts, late = self.timeouts, []
        for conn in conns[start:start + SWEEP_SLICE]:
            phase = getattr(conn, "_phase", _BUSY)  # a foreign protocol: not ours to time
            if phase and now - conn._since > timeouts[phase]:
                late.append(conn)
        if late:
            self._expire(late)
        if start + SWEEP_SLICE < len(conns):
            self._loop.call_soon(self._sweep_slice, conns, start + SWEEP_SLICE)

    def _expire(self, late: list[GuardedProtocol]) -> None:
        """Close in batches, one loop turn each: closing 2,000 sockets in one turn held the loop
        ~50 ms on the busy build machine, and their ``connection_lost`` calls as much again."""
        assert self._loop is not None
        now = self._loop.time()
        for conn in late[:EXPIRE_BATCH]:
            conn.expire(now)
        if len(late) > EXPIRE_BATCH:
            self._loop.call_soon(self._expire, late[EXPIRE_BATCH:])


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the guards above; everything else is uvicorn's."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None, *, guard: ConnectionGuard) -> None:
        super().__init__(config, server_state, app_state, _loop)
        assert self.ws_protocol_class is None and self.limit_concurrency is None, "inlined callbacks assume neither"
        self.guard = guard
        self._clock = self.loop.time
        self._phase = _IDLE
        self._since = 0.0
        self._in_head = True  # the parser is before the end of a request's headers
        self._head_bytes = 0
        self._held = 0  # body bytes of this connection counted in guard.in_flight
        self._refused = False
        self._lane = guard.lane
        self.headers = []
        self._next_request()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._since = self._clock()
        guard = self.guard
        guard.watch(self.loop, self.connections)
        if len(self.connections) > guard.max_connections:
            guard.counts["connections"] += 1
            self._refuse(guard.too_many)

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = _BUSY
        if self._held:
            self.guard.in_flight -= self._held
            self._held = 0
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._phase == _IDLE or self._phase == _KEPT:
            self._phase = _HEAD
            self._since = self._clock()
        if self._in_head:
            room = self.guard.max_header_bytes - self._head_bytes
            if len(data) > room:
                self._over_header_cap(data, room)
                return
            self._head_bytes += len(data)
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        """uvicorn's ``data_received`` without its keep-alive timer (never armed here)."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()  # ws="none": served as a plain request, as uvicorn does

    def _over_header_cap(self, data: bytes, room: int) -> None:
        """Feed only what the cap allows: headers that end inside it go on, else 431 (the rest is never parsed)."""
        if room > 0:
            self._head_bytes += room
            self._feed(data[:room])
            if self._refused or self.transport.is_closing():
                return
        if self._in_head:
            self.guard.counts["header_cap"] += 1
            self._refuse(self.guard.too_large)
            return
        self.data_received(data[room:])

    # The three parser callbacks below are uvicorn 0.55's, inlined (an extra Python frame per
    # callback cost ~1 us per request, 3% of the ingest ratio) and without the websocket-upgrade
    # and limit_concurrency branches: the emulator serves with ws="none" and no concurrency limit,
    # where those branches never apply.

    # No on_message_begin: httptools calls only the callbacks a protocol has, and a Python call per
    # request was 3-4% of a fleet request's CPU. What uvicorn's did is done at the end of the
    # headers instead (``_next_request``), for the request after; the scope is built in
    # ``on_headers_complete`` and only for a request that is not the lane's.
    on_message_begin = None  # type: ignore[assignment]

    def _next_request(self) -> None:
        self.url = b""
        self.expect_100_continue = False

    def on_headers_complete(self) -> None:
        if self._refused:  # a pipelined request behind a refused one: never started
            return
        self._in_head = False
        self._head_bytes = 0
        self._phase = _BODY
        self._since = self._clock()
        parser = self.parser
        http_version = parser.get_http_version()
        method = parser.get_method().decode("ascii")
        url, headers, expect_100_continue = self.url, self.headers, self.expect_100_continue
        parsed_url = httptools.parse_url(url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        self._next_request()
        existing_cycle = self.cycle
        if (self._lane is not None and method == "POST" and not self.root_path and not self.flow.write_paused
                and (existing_cycle is None or existing_cycle.response_complete)):
            ids = split_send_state(method, path)
            if ids is not None and not expect_100_continue and self._start_lane(ids, http_version, headers):
                return
        self.headers = []  # the next request's (the scope keeps this one's)
        scope: Any = {  # uvicorn's on_message_begin, and the request's
            "type": "http", "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": http_version, "server": self.server,
            "client": self.client, "scheme": self.scheme, "root_path": self.root_path, "headers": headers,
            "state": self.app_state.copy(), "method": method, "path": self.root_path + path,
            "raw_path": self.root_path.encode("ascii") + raw_path, "query_string": parsed_url.query or b""}
        self.scope = scope
        self.cycle = RequestResponseCycle(
            scope=scope, transport=self.transport, flow=self.flow, logger=self.logger,
            access_logger=self.access_logger, access_log=self.access_log,
            default_headers=self.server_state.default_headers, message_event=asyncio.Event(),
            expect_100_continue=expect_100_continue,
            keep_alive=http_version != "1.0" and parser.should_keep_alive(), on_response=self.on_response_complete)
        if existing_cycle is None or existing_cycle.response_complete:
            self._start_asgi_task(self.cycle, self.app)
        else:  # pipelined: queued until the answer before it is complete
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, self.app))

    def _start_lane(self, ids: tuple[str, str], http_version: str, headers: list[tuple[bytes, bytes]]) -> bool:
        """Take a send-state request into the lane (lane.py says which); False leaves it to uvicorn."""
        assert self._lane is not None
        authorization = content_type = length = None
        for name, value in headers:  # the last occurrence wins, as on the ASGI path
            if name == b"authorization":
                authorization = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
            elif name == b"transfer-encoding" or name == b"expect":
                return False
        if length is None or not length.isdigit() or int(length) > self._lane.max_body:
            return False
        headers.clear()  # read: the next request's list (nothing else holds this one)
        self.cycle = LaneCycle(self._lane_answered, ids[0], ids[1], authorization, content_type,  # type: ignore[assignment]
                               http_version != "1.0" and self.parser.should_keep_alive())
        return True

    def _serve_lane(self, cycle: LaneCycle) -> None:
        assert self._lane is not None
        self._phase = _BUSY
        answer = self._lane.serve(cycle)
        if answer is not None:
            self._write_lane(cycle, answer)

    def _lane_answered(self, cycle: LaneCycle, error: BaseException | None) -> None:
        """The group commit's word on a lane request: committed (200) or failed (500). Never raises into the
        commit, which tells the rest of its batch after this one."""
        lane = self._lane
        assert lane is not None
        try:
            if error is None:
                self._write_lane(cycle, lane.success if cycle.keep_alive else lane.success_close)
            else:
                self._write_lane(cycle, lane.failed(error, cycle.keep_alive))
        except Exception as exc:  # noqa: BLE001 - a bug here must not cost the batch-mates their answers
            lane.failed(exc, False)
            self.transport.close()

    def _write_lane(self, cycle: LaneCycle, answer: bytes) -> None:
        """uvicorn's end of a response (``RequestResponseCycle.send``), for the lane's one write."""
        if cycle.disconnected or cycle.response_complete:  # the client left, or the guard answered instead
            return
        cycle.response_started = True
        self.transport.write(answer)
        cycle.response_complete = True
        if not cycle.keep_alive:
            self.transport.close()
        if self.cycle is cycle:  # nothing reads an answered lane request again: not held until the next report
            self.cycle = None  # type: ignore[assignment]
        self.on_response_complete()

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if self._refused or cycle.response_complete:
            return
        guard = self.guard
        guard.in_flight += len(body)
        self._held += len(body)
        if guard.in_flight > (guard.cap if self._held <= SMALL_BODY_BYTES else guard.large_cap):
            guard.counts["body_cap"] += 1
            self._refuse(guard.body_cap)
            return
        cycle.body += body
        if len(cycle.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._in_head = True
        cycle = self.cycle
        if cycle.response_complete:  # answered before its body ended: wait for the next request
            self._phase = _KEPT
            self._since = self._clock()
            return
        self._phase = _BUSY
        cycle.more_body = False
        if type(cycle) is LaneCycle:
            self._serve_lane(cycle)
        else:
            cycle.message_event.set()

    def on_response_complete(self) -> None:
        """uvicorn's, minus its keep-alive timer (the sweep times KEPT), plus the release of the body bytes."""
        self.server_state.total_requests += 1
        if self._held:
            self.guard.in_flight -= self._held
            self._held = 0
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self._phase == _BUSY:
            self._phase = _KEPT
            self._since = self._clock()

    def send_400_response(self, msg: str) -> None:
        """What httptools cannot parse, in the emulator's JSON error shape (stock uvicorn answers plain text)."""
        self.guard.counts["bad_request"] += 1
        self._refuse(self.guard.bad_request)

    def expire(self, now: float) -> None:
        """Called by the sweep: close if still over time in the current phase."""
        phase, guard = self._phase, self.guard
        if not phase or now - self._since <= guard.timeouts[phase]:
            return
        if phase == _IDLE or phase == _KEPT:
            guard.counts["idle"] += 1
            self._refuse(b"")
        elif phase == _HEAD:
            guard.counts["header_timeout"] += 1
            self._refuse(guard.late_head)
        elif phase == _BODY:
            guard.counts["body_timeout"] += 1
            self._refuse(guard.late_body)

    def _refuse(self, response: bytes) -> None:
        """Answer (unless another answer is being written on this connection) and close.

        The request being read, if any, is marked disconnected: its reads end and whatever
        the app answers is dropped, so the refusal is the only answer on the wire."""
        self._refused = True
        self._phase = _BUSY
        cycle = self.cycle
        writing = cycle is not None and cycle.response_started and not cycle.response_complete
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        if response and not writing and not self.pipeline and not self.transport.is_closing():
            self.transport.write(response)
        if self._held:
            self.guard.in_flight -= self._held
            self._held = 0
        self.transport.close()
