"""Bounds on what a request may carry, checked at the edge (``http.py``) before any handler runs.

Without them a valid-looking request reached a component that cannot hold it and the
emulator answered 500: orjson reads JSON nested 1,024 deep but writes only 254 levels
(a command payload could be accepted and then not stored), jsonschema and the query
compiler recurse through Python frames (``RecursionError`` near 1,000 frames, reached
by a few hundred levels), SQLite binds integers up to 2**63 - 1 and orjson writes
them up to 2**64 - 1 (``?since=9223372036854775808`` and ``?page=1e300`` broke there).
Each bound sits well inside all of them, and each violation is a 400 ``Validation``
naming the field (docs/LIMITS.md, "Input bounds").

A body's size in bytes does not bound its cost: 10 MiB of ``[[],[],...]`` is 3.4 million
Python objects, and orjson building them plus the depth walk held the event loop 0.3-0.7 s
(2 s on a busy machine) for every other client. So the raw text is measured first with
C-speed byte scans (``measure_json``): the JSON values and keys it holds (over
``MAX_JSON_ITEMS``: 413 before orjson runs) and how deep it nests (a walk of the parsed
value only when it is too deep, to name the field).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .errors import ApiError, validation

#: Containers (objects, arrays) nested in one JSON body or JSON query parameter, the
#: outermost counting 1. Losant documents no depth; its store (MongoDB) refuses 100.
#: 32 leaves room for any IoT payload, for an advanced query of 15 nested ``$and``,
#: and for the envelopes answers wrap around stored values (at most 4 more levels).
MAX_JSON_DEPTH = 32
#: JSON values and object keys in one body (``[1, {"a": 2}]`` holds 5: the array, 1, the object,
#: the key ``a`` and 2). No document states one. Any body under 128 KiB holds at most 65,536
#: whatever its shape (a value or key takes two bytes with its separator); a state report at the
#: platform's 256 KB cap on an MQTT message, written as JSON usually is (four bytes or more per
#: value or key), and a 1,000-row data table insert of 32 columns hold fewer. Each costs orjson and
#: the handlers' checks 1-3 us on the 2-core build machine: 131,072 let one body hold the event
#: loop 100-170 ms there, 65,536 about half (bench/hostile_bodies.py, docs/LIMITS.md "Input bounds").
MAX_JSON_ITEMS = 65_536
#: Fields in one query string (``parse_qsl``); the longest documented list, ``tagFilter``,
#: holds 100 entries of two fields each.
MAX_QUERY_FIELDS = 1000
#: Bracket levels of one flattened query key (``tagFilter[0][key]`` has 2).
MAX_QUERY_BRACKETS = 8
#: A bracket list index (``tagFilter[12]``): every documented list holds at most 1,000.
MAX_LIST_INDEX = 9999
#: Integers in query parameters: the JavaScript safe range Losant's Node parses exactly.
MAX_SAFE_INT = 2**53 - 1


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Where the first container nested deeper than ``limit`` sits, or None when none does.

    The answer names the top-level field holding it (``payload``, ``[3]`` for an
    array's fourth element), ``""`` for the root itself. The walk recurses at most
    ``limit`` frames (it stops there) and touches each value once.
    """
    if limit < 1:
        return ""
    items: Any = value.items() if type(value) is dict else enumerate(value) if type(value) is list else ()
    for key, child in items:
        kind = type(child)
        if (kind is dict or kind is list) and _exceeds(child, limit - 2):
            return f"[{key}]" if type(key) is int else str(key)
    return None


def _exceeds(node: dict[str, Any] | list[Any], budget: int) -> bool:
    """Whether ``node`` holds containers nested more than ``budget`` levels below it."""
    if budget < 0:
        return True
    for child in node.values() if type(node) is dict else node:
        kind = type(child)
        if (kind is dict or kind is list) and _exceeds(child, budget - 1):  # type: ignore[arg-type]
            return True
    return False


#: bodies measured in slices this long, the event loop served between them (``measure_json_async``)
SLICE_BYTES = 256 * 1024
_DELETE_ALL_BUT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_VALUES_AS_ZERO = bytes(c if c in b"[]{},: \t\r\n" else ord("0") for c in range(256))
_BRACES_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")


class JsonMeasure:
    """The values, keys and nesting of JSON text fed to it in pieces, found with C-speed byte operations.

    Strings are cut out first (their brackets and commas are not structure): escaped
    backslashes and quotes are dropped, then each piece is split at its quotes (UTF-8 never
    has ``"`` or ``\\`` inside a multi-byte character); what lies outside strings is carried
    from piece to piece, as is an escape cut at a piece's end. ``items`` counts values
    and keys: one (the root) plus every comma, colon and container holding anything, outside
    strings. Exact for valid JSON; orjson refuses the rest right after.
    """

    def __init__(self, where: str = "body", max_items: int = MAX_JSON_ITEMS) -> None:
        self.where, self.max_items = where, max_items
        self.items = 1
        self.open_at_end = False  # the last structural character fed opened a container
        self.in_string = False
        self.escaped = False  # the last piece ended inside a string on an unpaired backslash
        self.brackets: list[bytes] = []

    def feed(self, piece: bytes) -> None:
        """Take the next piece; 413 as soon as the values and keys so far pass ``max_items``."""
        if self.escaped and piece:
            piece, self.escaped = piece[1:], False  # the escaped character
        if b"\\" in piece:
            piece = piece.replace(b"\\\\", b"")
            if piece[-1:] == b"\\":
                piece, self.escaped = piece[:-1], True
            piece = piece.replace(b'\\"', b"")
        if b'"' in piece:
            parts = piece.split(b'"')
            # each string becomes one "0"; a string cut at a piece's end gets its "0" in the piece that ends it
            piece = b"0" + b"0".join(parts[1::2]) if self.in_string else b"0".join(parts[0::2])
            self.in_string ^= len(parts) % 2 == 0
        elif self.in_string:
            return
        marks = piece.translate(_VALUES_AS_ZERO, b" \t\r\n")  # whitespace gone ("[ ]" is empty), "[0]" is not
        if not marks:
            return
        opened = marks.count(b"[") + marks.count(b"{") - marks.count(b"[]") - marks.count(b"{}")  # holding anything
        if self.open_at_end and marks[:1] in (b"]", b"}"):  # an empty container cut between two pieces
            opened -= 1
        self.open_at_end = marks[-1:] in (b"[", b"{")
        self.items += opened + marks.count(b",") + marks.count(b":")
        if self.items > self.max_items:
            raise too_complex(self.where, self.max_items)
        self.brackets.append(marks.translate(_BRACES_AS_BRACKETS, _DELETE_ALL_BUT_BRACKETS))

    def nests_deeper(self, limit: int = MAX_JSON_DEPTH) -> bool:
        """Whether the containers fed nest deeper than ``limit``.

        Each ``replace`` removes every innermost pair at once, so the brackets are gone after
        exactly as many rounds as the deepest nesting: at most ``limit`` C-speed passes over
        at most ``2 * max_items`` bytes (more closing than opening brackets: not JSON, and
        orjson says so).
        """
        brackets = b"".join(self.brackets)
        if len(brackets) > 2 * self.max_items:
            return False
        for _ in range(limit):
            if not brackets:
                return False
            brackets = brackets.replace(b"[]", b"")
        return bool(brackets)


def measure_json(raw: bytes, where: str = "body", max_items: int = MAX_JSON_ITEMS, limit: int = MAX_JSON_DEPTH) -> bool:
    """Before parsing: 413 when ``raw`` holds more than ``max_items`` values and keys; whether it nests too deep.

    In one go (for text up to a few hundred KiB; ``measure_json_async`` for more). The common
    small body costs two byte counts: a value or key takes two bytes with its separator (so
    ``n`` bytes hold at most ``(n + 1) // 2``), and too few brackets to nest deeper.
    """
    if len(raw) < 2 * max_items and raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    measure = JsonMeasure(where, max_items)
    measure.feed(raw)
    return measure.nests_deeper(limit)


async def measure_json_async(raw: bytes, where: str = "body", max_items: int = MAX_JSON_ITEMS,
                             limit: int = MAX_JSON_DEPTH) -> bool:
    """``measure_json`` a slice of ``SLICE_BYTES`` at a time, the event loop serving others in between.

    A 10 MiB body dense with quotes costs ~0.1-0.4 s of byte scanning (splitting at a million
    quotes); in slices of 256 KiB no single stall passes ~10-40 ms, and a body over the bound is
    refused within its first slices (one slice of ``[[],[],...]`` holds 87,000 values).
    """
    measure = JsonMeasure(where, max_items)
    for start in range(0, len(raw), SLICE_BYTES):
        if start:
            await asyncio.sleep(0)
        measure.feed(raw[start:start + SLICE_BYTES])
    return measure.nests_deeper(limit)


def too_complex(where: str, max_items: int) -> ApiError:
    return ApiError(413, "PayloadTooLarge", f"{where}: JSON holds more than {max_items} values and keys")


def check_depth(value: Any, where: str, raw: bytes | str | None = None) -> None:
    """400 naming the field when ``value`` nests too deep.

    ``where`` names the whole input: ``body`` for a request body (its fields are
    named bare, as validation.describe does: ``payload``; an array's elements
    ``body[3]``), or a query parameter (``query``, whose fields become ``query.$and``).
    ``raw``, the text ``value`` was parsed from, decides without a walk whether it nests
    too deep (``measure_json``); the walk then only finds the field to name.
    """
    if raw is not None and not measure_json(raw.encode() if isinstance(raw, str) else raw, where):
        return
    top = too_deep(value)
    if top is not None:
        raise_too_deep(where, top)


def raise_too_deep(where: str, top: str) -> None:
    """The 400 for a container nested too deep under ``top`` (from ``too_deep``) of input ``where``."""
    if not top:
        field = where
    elif where == "body":
        field = f"body{top}" if top.startswith("[") else top  # "body[0]", "payload"
    else:
        field = f"{where}{top}" if top.startswith("[") else f"{where}.{top}"
    raise validation(f"{field}: JSON nests deeper than {MAX_JSON_DEPTH} levels")


def check_int(name: str, number: int) -> int:
    """400 when a query parameter's integer is outside the safe range (it would overflow SQLite or orjson)."""
    if not -MAX_SAFE_INT <= number <= MAX_SAFE_INT:
        raise validation(f"Query parameter {name} must be between {-MAX_SAFE_INT} and {MAX_SAFE_INT}")
    return number
