"""Request and response plumbing for raw ASGI: body reading, query parsing, JSON answers."""

from __future__ import annotations

import re
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl

import orjson

from .bounds import (MAX_JSON_DEPTH, MAX_JSON_ITEMS, MAX_LIST_INDEX, MAX_QUERY_BRACKETS, MAX_QUERY_FIELDS, check_depth,
                     check_int, measure_json, measure_json_async)
from .errors import ApiError, too_large, validation

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

JSON_HEADERS = [(b"content-type", b"application/json; charset=utf-8")]  # every JSON answer's (lane.py writes them itself)
_BRACKETS = re.compile(r"\[([^\]]*)\]")
_IGNORED_PARAMS = frozenset(("_actions", "_links", "_embedded"))
_DEEPEST_SHORT_BODY = 2 * MAX_JSON_DEPTH  # JSON this short cannot open (and close) more containers than the bound


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing (413) as soon as it exceeds ``limit`` bytes."""
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise too_large(limit)
        return body
    return await rest_of_body(body, receive, limit)


async def rest_of_body(first: bytes, receive: Receive, limit: int) -> bytes:
    """The body after its first chunk (the send-state fast path reads the first one itself)."""
    chunks = [first]
    size = len(first)
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":  # client gone, or refused by the connection guard (guard.py)
            raise ApiError(400, "Validation", "The connection closed before the request body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


SUCCESS_BODY = b'{"success":true}'
_SUCCESS_START = {"type": "http.response.start", "status": 200,
                  "headers": JSON_HEADERS + [(b"content-length", str(len(SUCCESS_BODY)).encode())]}
_SUCCESS_END = {"type": "http.response.body", "body": SUCCESS_BODY}
SUCCESS_START, SUCCESS_END = _SUCCESS_START, _SUCCESS_END  # the two messages, for the fast path


async def send_success(send: Send) -> None:
    """The hot path's answer, built once."""
    await send(_SUCCESS_START)
    await send(_SUCCESS_END)


async def send_json(send: Send, status: int, payload: Any) -> None:
    body = orjson.dumps(payload)
    await send({"type": "http.response.start", "status": status,
                "headers": JSON_HEADERS + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


#: Admin endpoints answer these clients only; to anyone else they are the 404 of an unknown path.
LOOPBACK = frozenset(("127.0.0.1", "::1", "::ffff:127.0.0.1"))


def from_loopback(scope: dict[str, Any]) -> bool:
    """Whether an admin request may be served: the admin endpoints change what every client sees."""
    client = scope.get("client") or ("", 0)
    return client[0] in LOOPBACK


def _listify(node: Any, name: str) -> Any:
    """Objects whose keys are all list indexes become lists (recursion bounded by MAX_QUERY_BRACKETS)."""
    if isinstance(node, dict):
        node = {k: _listify(v, name) for k, v in node.items()}
        if node and all(k.isascii() and k.isdigit() for k in node):  # "²".isdigit() is True, int("²") fails
            if any(len(k) > len(str(MAX_LIST_INDEX)) or int(k) > MAX_LIST_INDEX for k in node):
                raise validation(f"Query parameter {name}: list index above {MAX_LIST_INDEX}")
            return [node[k] for k in sorted(node, key=int)]
    return node


def parse_query(raw: bytes) -> dict[str, Any]:
    """Query string -> nested dict, undoing the client's bracket flattening.

    ``tagFilter[0][key]=k&deviceClass[0]=gateway`` becomes
    ``{"tagFilter": [{"key": "k"}], "deviceClass": ["gateway"]}``. ``_actions``,
    ``_links`` and ``_embedded`` are dropped: the client always sends them.
    """
    out: dict[str, Any] = {}
    if not raw:
        return out
    try:
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:  # only the field count: parse_qsl is lenient about everything else
        raise validation(f"Query string: more than {MAX_QUERY_FIELDS} parameters") from None
    for key, value in pairs:
        if key in _IGNORED_PARAMS:
            continue
        head, _, rest = key.partition("[")
        if not rest:
            out[head] = value
            continue
        path = [head] + _BRACKETS.findall("[" + rest)
        if len(path) > MAX_QUERY_BRACKETS + 1:
            raise validation(f"Query parameter {head}: nests deeper than {MAX_QUERY_BRACKETS} bracket levels")
        node = out
        for part in path[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                node[part] = nxt
            node = nxt
        node[path[-1]] = value
    return {k: _listify(v, k) for k, v in out.items()}


def parse_json(body: bytes, content_type: str | None, deep: bool | None = None) -> Any:
    """Decode a JSON body; wrong content type, malformed JSON or nesting past MAX_JSON_DEPTH is a 400 Validation.

    Too much structure (``bounds.MAX_JSON_ITEMS``) is a 413 before orjson builds any of it: size
    alone does not bound the work (10 MiB of ``[[],[],...]`` held the loop 0.3-2 s). The depth is
    known from the text before parsing (``bounds.measure_json``; ``deep`` when the caller measured
    a large body already, with ``measure_body``); the parsed value is walked only when too deep, to
    name the field. A body this short skips both.
    """
    if content_type is not None and "json" not in content_type.lower():
        raise validation(f"Content-Type must be application/json, got {content_type[:80]!r}")
    if not body:
        return None
    if deep is None:
        deep = len(body) > _DEEPEST_SHORT_BODY and measure_json(body)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise validation("Request body is not valid JSON") from None
    if deep:
        check_depth(value, "body")
    return value


async def measure_body(body: bytes, content_type: str | None) -> bool | None:
    """For ``parse_json``: a large JSON body measured in slices, the loop serving others in between; else None.

    Called once the caller is known (after authentication), so a stranger's 10 MiB costs no scan.
    """
    if len(body) <= MAX_JSON_ITEMS or (content_type is not None and "json" not in content_type.lower()):
        return None
    return await measure_json_async(body)


class Request:
    """What a handler sees: params from the path, parsed query, principal and body."""

    __slots__ = ("method", "path", "params", "raw_query", "_query", "headers", "body", "principal", "content_type", "deep")

    def __init__(self, method: str, path: str, params: dict[str, str], raw_query: bytes,
                 headers: dict[bytes, bytes], body: bytes) -> None:
        self.method = method
        self.path = path
        self.params = params
        self.raw_query = raw_query
        self._query: dict[str, Any] | None = None
        self.headers = headers
        self.body = body
        self.principal: Any = None
        ct = headers.get(b"content-type")
        self.content_type = ct.decode("latin-1") if ct is not None else None
        self.deep: bool | None = None  # measure_body's answer for a large body, before the handler runs

    @property
    def query(self) -> dict[str, Any]:
        if self._query is None:
            self._query = parse_query(self.raw_query)
        return self._query

    def json(self) -> Any:
        return parse_json(self.body, self.content_type, self.deep)

    def json_query(self, name: str) -> Any:
        """A JSON-encoded query parameter (``query={"$and": [...]}``); 400 when malformed."""
        value = self.query.get(name)
        if value is None or isinstance(value, (dict, list)):
            return value
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise validation(f"Query parameter {name} is not valid JSON") from None
        check_depth(parsed, name, value)
        return parsed


class ApiResponse:
    """A non-200 success (201, 202) or a 200 with a body; handlers may also return plain data."""

    __slots__ = ("status", "payload")

    def __init__(self, status: int, payload: Any) -> None:
        self.status = status
        self.payload = payload


def int_param(query: dict[str, Any], name: str, default: int, minimum: int | None = None,
              maximum: int | None = None) -> int:
    value = query.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(float(value)) if isinstance(value, str) else int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: "1e400" is a float, but infinite
        raise validation(f"Query parameter {name} must be a number, got {str(value)[:40]!r}") from None
    check_int(name, number)
    if minimum is not None and number < minimum:
        raise validation(f"Query parameter {name} must be >= {minimum}")
    if maximum is not None and number > maximum:
        number = maximum
    return number


def bool_param(query: dict[str, Any], name: str) -> bool:
    return str(query.get(name, "")).lower() in ("true", "1", "yes")


__all__ = ["ApiError", "ApiResponse", "Request", "bool_param", "int_param", "measure_body", "parse_json", "parse_query", "read_body",
           "send_json"]
