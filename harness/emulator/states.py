"""Turning a send-state body into rows, fast.

The hot path checks the common shape by hand (a dict or list of dicts with a ``data``
object of scalar values under valid names); only when that check fails is the
jsonschema validator run, to produce the error message naming the field. Rules of
REFERENCE 5.6: undeclared attributes are dropped, declared data types convert values
where possible, states older than 30 days or more than a day ahead are ignored,
same-millisecond states merge (done by the store's upsert).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from .bounds import check_depth
from .timeparse import parse_input_time
from .validation import validate

DAY_MS = 86_400_000
MAX_AGE_MS = 30 * DAY_MS
MAX_AHEAD_MS = DAY_MS
MAX_STRING = 64 * 1024
_NAME = re.compile(r"[0-9a-zA-Z_-]{1,255}\Z")
_STATE_KEYS = frozenset(("data", "time", "meta", "flowVersion"))
_SCALARS = (int, float, str, bool)
_SCALAR_TYPES = frozenset(_SCALARS)  # orjson builds exactly these types, never subclasses
_FEW = 16
_NAMES = re.compile(r"[0-9a-zA-Z_-]{1,255}(?:\0[0-9a-zA-Z_-]{1,255})*")


def _names_ok(names: set[str]) -> bool:
    """Every name matches ``_NAME``: one regex pass over them all instead of a call each.

    NUL cannot be in a valid name, so joined with NUL each name must be one run of the class.
    """
    joined = "\0".join(names)
    return joined.count("\0") == len(names) - 1 and _NAMES.fullmatch(joined) is not None


def _fast_ok(state: Any, known: dict[str, str]) -> bool:
    if type(state) is not dict or not _STATE_KEYS.issuperset(state):
        return False
    data = state.get("data")
    if type(data) is not dict:
        return False
    if len(data) > _FEW:  # per item in C: 65,000 names cost ~10 ms instead of ~65 ms
        if not _SCALAR_TYPES.issuperset(map(type, data.values())):
            return False
        unknown = data.keys() - known.keys()
        if unknown and not _names_ok(unknown):
            return False
    else:
        for name, value in data.items():  # declared names were validated when the device was saved
            if not isinstance(value, _SCALARS) or (name not in known and not _NAME.match(name)):
                return False
    fv = state.get("flowVersion")
    if fv is not None and not (isinstance(fv, str) and 1 <= len(fv) <= 255):
        return False
    t = state.get("time")
    # type() not isinstance(): a bool is an int to Python, but not a number to the schema
    return t is None or type(t) in (int, float, str) or (type(t) is dict and set(t) == {"$date"})


def check_body(body: Any, known: dict[str, str] | None = None, depth_checked: bool = False) -> list[dict[str, Any]]:
    """The states of a body (one object or an array); 400 naming the field when invalid.

    ``known`` (the device's declared attribute names) lets valid names skip the regex.
    ``depth_checked``: the body came through ``http.parse_json``, which checked its depth.
    """
    if not depth_checked:  # MQTT messages: checked here, before jsonschema recurses into them
        check_depth(body, "body")
    states = body if isinstance(body, list) else [body]
    if not states or not isinstance(body, (list, dict)):
        validate("deviceStateOrStates", body)
    known = known or {}
    for i, state in enumerate(states):
        if not _fast_ok(state, known):  # slow path only to name the failing field
            validate("deviceState", state, root=f"[{i}]" if isinstance(body, list) else "")
            validate("deviceStateOrStates", body)
    return states


def coerce(value: Any, data_type: str) -> Any:
    """Convert a value to the attribute's declared type; None when it cannot be."""
    if data_type == "number":
        if isinstance(value, bool):
            return 1 if value else 0
        if isinstance(value, (int, float)):
            return value
        try:
            number = float(value)
        except ValueError:
            return None
        return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
    if data_type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return value != 0
        low = value.strip().lower()
        return True if low in ("true", "1", "yes") else False if low in ("false", "0", "no") else None
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
    return text if len(text) <= MAX_STRING else None


def declared_types(device: dict[str, Any]) -> dict[str, str]:
    """Attribute name -> dataType, memoised on the cached device document (memory only)."""
    types = device.get("_types")
    if types is None:
        types = {a["name"]: a.get("dataType", "string") for a in device.get("attributes") or []}
        device["_types"] = types
    return types


_EXACT = {"number": (int, float), "string": (str,), "boolean": (bool,)}


def common_rows(device: dict[str, Any], body: Any, now_ms: int) -> list[tuple[str, int, str]] | None:
    """The rows of the commonest body, ``{"data": {...}}`` with declared names and exact types; else None.

    For such a body ``check_body`` passes and ``rows_for`` keeps every value as it is
    at ``now_ms``, so this gives the same rows without either; any other body (a
    ``time``, an array, an undeclared name, a value to convert) answers None and takes
    the general ``check_body`` + ``rows_for``.
    """
    if type(body) is not dict or len(body) != 1:
        return None
    data = body.get("data")
    if type(data) is not dict:
        return None
    types = declared_types(device)
    for name, value in data.items():
        dtype = types.get(name)
        if dtype is None or type(value) not in _EXACT.get(dtype, ()) or (dtype == "string" and len(value) > MAX_STRING):
            return None
    return [(device["id"], now_ms, orjson.dumps(data).decode())] if data else []


def rows_for(device: dict[str, Any], states: list[dict[str, Any]], now_ms: int) -> list[tuple[str, int, str]]:
    """Rows (device_id, time ms, data JSON) to store; ignored states and attributes left out."""
    types = declared_types(device)
    rows = []
    device_id = device["id"]
    for state in states:
        raw_time = state.get("time")
        if raw_time is None:
            t = now_ms
        else:
            parsed = parse_input_time(raw_time, now_ms)
            if parsed is None:
                t = now_ms
            elif parsed < now_ms - MAX_AGE_MS or parsed > now_ms + MAX_AHEAD_MS:
                continue
            else:
                t = parsed
        data = {}
        given = state["data"]
        if len(given) > _FEW + len(types):  # mostly undeclared: look up the few declared names instead
            given = {name: given[name] for name in types if name in given}
        for name, value in given.items():
            dtype = types.get(name)
            if dtype is None:
                continue
            kind = type(value)
            if (dtype == "number" and (kind is int or kind is float)) or (dtype == "string" and kind is str and len(value) <= MAX_STRING):
                data[name] = value
            else:
                converted = coerce(value, dtype)
                if converted is not None:
                    data[name] = converted
        if data:
            rows.append((device_id, t, orjson.dumps(data).decode()))
    return rows
