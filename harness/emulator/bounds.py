"""Bounds on what a request may carry, checked at the edge (``http.py``) before any handler runs.

Without them a valid-looking request reached a component that cannot hold it and the
emulator answered 500: orjson reads JSON nested 1,024 deep but writes only 254 levels
(a command payload could be accepted and then not stored), jsonschema and the query
compiler recurse through Python frames (``RecursionError`` near 1,000 frames, reached
by a few hundred levels), SQLite binds integers up to 2**63 - 1 and orjson writes
them up to 2**64 - 1 (``?since=9223372036854775808`` and ``?page=1e300`` broke there).
Each bound sits well inside all of them, and each violation is a 400 ``Validation``
naming the field (docs/LIMITS.md, "Input bounds").
"""

from __future__ import annotations

from typing import Any

from .errors import validation

#: Containers (objects, arrays) nested in one JSON body or JSON query parameter, the
#: outermost counting 1. Losant documents no depth; its store (MongoDB) refuses 100.
#: 32 leaves room for any IoT payload, for an advanced query of 15 nested ``$and``,
#: and for the envelopes answers wrap around stored values (at most 4 more levels).
MAX_JSON_DEPTH = 32
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


def could_be_too_deep(raw: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """False when the text holds too few brackets to nest deeper than ``limit``.

    Counting is a C-speed scan, so the common small body (a send-state has 2)
    skips the walk of ``too_deep`` entirely.
    """
    if isinstance(raw, bytes):
        return raw.count(b"[") + raw.count(b"{") > limit
    return raw.count("[") + raw.count("{") > limit


def check_depth(value: Any, where: str, raw: bytes | str | None = None) -> None:
    """400 naming the field when ``value`` nests too deep.

    ``where`` names the whole input: ``body`` for a request body (its fields are
    named bare, as validation.describe does: ``payload``; an array's elements
    ``body[3]``), or a query parameter (``query``, whose fields become ``query.$and``).
    ``raw``, the text ``value`` was parsed from, lets most inputs skip the walk.
    """
    if raw is not None and not could_be_too_deep(raw):
        return
    top = too_deep(value)
    if top is None:
        return
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
