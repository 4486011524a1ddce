"""Matching devices, events and access keys against Losant's query languages.

Three inputs select things in the API:

- ``filter`` globs (``filterField``/``filter`` list parameters): ``glob_match``;
- tag filters, ``[{key?, value?}]`` (``deviceTagFilter.json``, ``deviceTags``
  of data queries and access keys): ``tag_filter_matches``;
- advanced queries, Mongo-like JSON (``advancedDeviceQuery.json``,
  ``advancedEventQuery.json``, ``advancedApplicationKeyQuery.json``):
  ``compile_query`` and the ``*_matches`` wrappers.

An advanced query is compiled once into a predicate, which checks the whole
query up front: a bad operator is a ``ValueError`` (the emulator's 400) even
when no record would reach it, and a query used for thousands of devices is
parsed once. Semantics chosen where the schemas are silent are marked [I];
see ``_compile_condition`` and ``_compile_tags``.

>>> device = {"id": "a" * 24, "name": "Pump-7", "tags": [{"key": "floor", "value": "8"}]}
>>> device_matches(device, {"$and": [{"name": {"$startsWith": "pump", "$ci": True}},
...                                  {"tags": {"floor": "8"}}]})
True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from typing import Any

from harness.emulator.timeparse import format_time, parse_input_time

__all__ = ["Glob", "glob_match", "glob_matcher", "tag_filter_matches", "tag_filter_predicate", "compile_query", "validate_query",
           "device_matches", "event_matches", "key_matches", "filter_records"]

Predicate = Callable[[dict[str, Any]], bool]
Getter = Callable[[dict[str, Any]], Any]


Find = Callable[[str, str, int, int], int]


class Glob:
    """A compiled ``filter`` glob, matched in time linear in the text, whatever the pattern.

    The old matcher joined the literal runs with ``.*`` and let ``re.fullmatch``
    backtrack: ``****************x`` against 50 device names took 24 s, and the
    event loop with it. A glob with only ``*`` needs no backtracking: the run
    before the first star must start the text, the run after the last star must
    end it, and each run between is taken at its leftmost place after the
    previous one (a later place never leaves more room for the rest). So one
    ``str.find`` per middle run, each searching only past the previous hit: the
    text is scanned once. Runs are case-folded once here, the text once per call.
    """

    __slots__ = ("head", "middle", "tail", "exact", "min_len")

    def __init__(self, pattern: str) -> None:
        parts = pattern.casefold().split("*")
        self.exact = len(parts) == 1
        self.head, self.tail = parts[0], parts[-1] if len(parts) > 1 else ""
        self.middle = tuple(p for p in parts[1:-1] if p)  # "**" is "*"
        self.min_len = sum(map(len, parts))  # a text shorter than every literal together cannot match

    def __call__(self, text: Any) -> bool:
        if text is None:
            return False
        return self.match_folded(str(text).casefold())

    def match_folded(self, text: str, find: Find = str.find) -> bool:
        """The match against an already case-folded text (``find`` is a seam for the step-count test)."""
        if self.exact:
            return text == self.head
        if len(text) < self.min_len or not text.startswith(self.head) or not text.endswith(self.tail):
            return False
        pos, stop = len(self.head), len(text) - len(self.tail)
        for run in self.middle:
            found = find(text, run, pos, stop)
            if found < 0:
                return False
            pos = found + len(run)
        return True


@functools.lru_cache(maxsize=512)
def _cached_glob(pattern: str) -> Glob:
    return Glob(pattern)


def glob_matcher(pattern: str) -> Glob:
    """The compiled glob; short patterns are cached (a long one is compiled per call, so
    callers matching many records compile once, as ``views.page`` does)."""
    return _cached_glob(pattern) if len(pattern) <= 256 else Glob(pattern)


def glob_match(pattern: str, text: Any) -> bool:
    """Losant ``filter`` semantics: whole-string, case-insensitive, ``*`` = any run.

    Every other character (``?``, ``[``, ``.``) is literal. None never matches;
    other non-strings are compared through ``str``. Case-insensitive by
    ``str.casefold`` on both sides. Linear in the text (``Glob``).

    >>> glob_match("pump*", "PUMP-7"), glob_match("*-7", "pump-7"), glob_match("p?mp", "pump")
    (True, True, False)
    """
    return glob_matcher(str(pattern))(text)


def tag_filter_matches(tags: list[dict[str, Any]], tag_filter: list[dict[str, Any]]) -> bool:
    """True when any filter entry matches any tag (REFERENCE.md §4.3, §5.4).

    An entry with only ``key`` matches that key with any value, only ``value``
    that value under any key, both: one tag with both. Comparison is exact
    (case-sensitive). An empty filter, or an entry with neither half,
    constrains nothing and matches every device [I]. For many devices, compile
    the filter once with ``tag_filter_predicate``.

    >>> tags = [{"key": "floor", "value": "8"}]
    >>> [tag_filter_matches(tags, f) for f in ([], [{"key": "floor"}], [{"value": "9"}],
    ...                                        [{"key": "room", "value": "8"}, {"value": "8"}])]
    [True, True, False, True]
    """
    return tag_filter_predicate(tag_filter)(tags)


def tag_filter_predicate(tag_filter: list[dict[str, Any]]) -> Callable[[list[dict[str, Any]] | None], bool]:
    """``tag_filter_matches`` compiled: three set lookups per tag, whatever the filter's length
    (100 entries against devices of 100 tags was 10,000 comparisons per device)."""
    keys: set[Any] = set()
    values: set[Any] = set()
    pairs: set[tuple[Any, Any]] = set()
    for entry in tag_filter or ():
        key, value = entry.get("key"), entry.get("value")
        if key is None and value is None:
            return lambda tags: True
        try:
            if value is None:
                keys.add(key)
            elif key is None:
                values.add(value)
            else:
                pairs.add((key, value))
        except TypeError:  # an object (a nested query parameter) equals no tag's string
            continue
    if not tag_filter:
        return lambda tags: True

    def matches(tags: list[dict[str, Any]] | None) -> bool:
        for tag in tags or ():
            key, value = tag.get("key"), tag.get("value")
            if key in keys or value in values or (key, value) in pairs:
                return True
        return False

    return matches


# ---------------------------------------------------------------------------
# Field tables: how each queryable field is read from our record dicts.
# kind: "scalar", "date" (epoch ms, compared as times), "level" (event
# severity, ordered), "list" (any/none element semantics), "tags".


def _get(name: str, *aliases: str) -> Getter:
    def read(record: dict[str, Any]) -> Any:
        for key in (name, *aliases):
            if record.get(key) is not None:
                return record[key]
        return None

    return read


def _date(read: Getter) -> Getter:
    """Dates are compared as epoch ms; a record holding ISO text is converted."""

    def as_ms(record: dict[str, Any]) -> Any:
        value = read(record)
        if isinstance(value, str) or isinstance(value, dict):
            return parse_input_time(value, now_ms=0)
        return value

    return as_ms


def _connection_status(record: dict[str, Any]) -> Any:
    """``connectionStatus`` if stored, else derived from ``connectionInfo.connected`` (1/0)."""
    if record.get("connectionStatus") is not None:
        return record["connectionStatus"]
    connected = (record.get("connectionInfo") or {}).get("connected")
    return {1: "connected", 0: "disconnected"}.get(connected) if isinstance(connected, int) else None


def _connection_time(state: int, key: str) -> Getter:
    """``connectedAt``/``disconnectedAt`` if stored, else ``connectionInfo.time`` in that state."""

    def read(record: dict[str, Any]) -> Any:
        if record.get(key) is not None:
            return record[key]
        info = record.get("connectionInfo") or {}
        return info.get("time") if info.get("connected") == state else None

    return read


def _attribute_names(record: dict[str, Any]) -> list[Any]:
    return [a.get("name") for a in record.get("attributes") or () if isinstance(a, dict)]


def _tag_pairs_from_list(field: str) -> Getter:
    return lambda record: [
        (t.get("key"), t.get("value")) for t in record.get(field) or () if isinstance(t, dict)
    ]


def _tag_pairs_from_dict(field: str) -> Getter:
    """Event tags are ``{key: value}`` (``eventPost.json``); a list value yields several pairs."""
    return lambda record: [
        (key, one)
        for key, value in (record.get(field) or {}).items()
        for one in (value if isinstance(value, list) else [value])
    ]


def _list(name: str) -> Getter:
    return lambda record: list(record.get(name) or ())


def _table(plain: dict[str, str], special: dict[str, tuple[str, Getter]]) -> dict[str, tuple[str, Getter]]:
    """Field table from {kind: "space-separated fields read under their own name"} plus special cases."""
    wrap: dict[str, Callable[[str], Getter]] = {
        "scalar": _get, "level": _get, "list": _list, "date": lambda n: _date(_get(n))
    }
    table = {name: (kind, wrap[kind](name)) for kind, names in plain.items() for name in names.split()}
    return table | special


_DEVICE_FIELDS = _table(
    {"scalar": "name deviceClass gatewayId parentId", "date": "creationDate lastUpdated deletedAt"},
    {
        "id": ("scalar", _get("id", "deviceId")),
        "ancestorId": ("list", _list("ancestorIds")),
        "attributeName": ("list", _attribute_names),
        "experienceUserId": ("list", _list("experienceUserIds")),
        "experienceGroupId": ("list", _list("experienceGroupIds")),
        "tags": ("tags", _tag_pairs_from_list("tags")),
        "disconnectedAt": ("date", _date(_connection_time(0, "disconnectedAt"))),
        "connectedAt": ("date", _date(_connection_time(1, "connectedAt"))),
        "connectionStatus": ("scalar", _connection_status),
    },
)
_EVENT_FIELDS = _table(
    {
        "scalar": "sourceId sourceType state subject deviceId experienceUserId experienceGroupId",
        "date": "creationDate lastUpdated",
        "level": "level",
    },
    {"id": ("scalar", _get("id", "eventId")), "eventTags": ("tags", _tag_pairs_from_dict("eventTags"))},
)
_KEY_FIELDS = _table(
    {
        "scalar": "status key name description filterType addressFilterType",
        "date": "creationDate lastUpdated",
        "list": "deviceIds pubTopics subTopics addresses",
    },
    {"id": ("scalar", _get("id", "applicationKeyId")), "deviceTags": ("tags", _tag_pairs_from_list("deviceTags"))},
)

#: data table rows (routes_tables.py): any column, besides the three every row has
_ROW_FIELDS = _table({"scalar": "id", "date": "createdAt updatedAt"}, {})

# kind -> (field table, whether fields outside the table are allowed).
# advancedApplicationKeyQuery.json alone lacks additionalProperties: false.
_KINDS: dict[str, tuple[dict[str, tuple[str, Getter]], bool]] = {
    "device": (_DEVICE_FIELDS, False),
    "event": (_EVENT_FIELDS, False),
    "key": (_KEY_FIELDS, True),
    "row": (_ROW_FIELDS, True),
}
_KIND_ALIASES = {"devices": "device", "events": "event", "keys": "key", "applicationKey": "key"}

# Severity order for $gt/$lt on event levels [I]: comparing level names as
# strings ("critical" < "error" < "info") would be meaningless.
_LEVEL_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}


# ---------------------------------------------------------------------------
# Value comparison. JSON types do not mix: true is not 1, "5" is not 5.


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fold(v: Any, ci: bool) -> Any:
    return v.casefold() if ci and isinstance(v, str) else v


def _equal(a: Any, b: Any, ci: bool) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, str) and isinstance(b, str):
        return _fold(a, ci) == _fold(b, ci)
    return a is None and b is None


def _member_key(v: Any, ci: bool) -> tuple[str, Any] | None:
    """A key equal exactly when ``_equal`` holds (None for containers, which equal nothing)."""
    if isinstance(v, bool):
        return ("b", v)
    if _is_number(v):
        return ("n", v)  # 1 and 1.0 hash alike, as they compare
    if isinstance(v, str):
        return ("s", _fold(v, ci))
    return ("z", None) if v is None else None


def _order(a: Any, b: Any, ci: bool, kind: str) -> int | None:
    """-1/0/1 when a and b are comparable, else None (the comparison fails)."""
    if kind == "level" and a in _LEVEL_RANK and b in _LEVEL_RANK:
        a, b = _LEVEL_RANK[a], _LEVEL_RANK[b]
    if _is_number(a) and _is_number(b) or isinstance(a, str) and isinstance(b, str):
        a, b = _fold(a, ci), _fold(b, ci)
        return (a > b) - (a < b)
    return None


def _query_time(field: str, operand: Any) -> Any:
    """A date operand as epoch ms: numbers are ms, strings ISO or numeric ms.

    None and booleans pass through unchanged (None matches unset dates;
    a boolean matches nothing, as in Mongo).
    """
    if operand is None or isinstance(operand, bool):
        return operand
    if _is_number(operand):
        if not math.isfinite(operand):
            raise ValueError(f"query field {field!r}: {operand!r} is not a time")
        return operand
    if isinstance(operand, str):
        text = operand.strip()
        for number in (int, float):
            try:
                value = number(text)
            except ValueError:
                continue
            if math.isfinite(value):
                return value  # numeric text is epoch ms, never seconds
            break
        else:
            ms = parse_input_time(text, now_ms=0)
            if ms is not None:
                return ms
    raise ValueError(f"query field {field!r}: cannot read {operand!r} as a time (use ISO-8601 or epoch ms)")


def _as_text(value: Any, kind: str) -> str | None:
    """String view for $startsWith/$endsWith/$contains: dates as ISO text."""
    if kind == "date" and _is_number(value):
        try:
            return format_time(int(value))
        except ValueError:
            return None
    return value if isinstance(value, str) else None


_SCALAR_OPS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
_LIST_OPS = ("$in", "$nin")
_TEXT_OPS = ("$startsWith", "$endsWith", "$contains")
# $like is our extension (a Losant filter glob), not in the 1.29.3 schemas.
_KNOWN_OPS = frozenset((*_SCALAR_OPS, *_LIST_OPS, *_TEXT_OPS, "$ci", "$like"))

ValueTest = Callable[[Any], bool]


def _value_test(field: str, kind: str, op: str, operand: Any, ci: bool) -> ValueTest:
    """A test of one (non-list) field value against one operator."""
    if op in _LIST_OPS:
        if not isinstance(operand, list):
            raise ValueError(f"query field {field!r}: {op} needs a list, got {operand!r}")
        items = [_query_time(field, x) for x in operand] if kind == "date" else list(operand)
        # one set lookup per value, not one comparison per item: a 10,000-item $in over
        # 10,000 devices would be 10^8 comparisons
        keys = {k for x in items if (k := _member_key(x, ci)) is not None}
        if op == "$in":
            return lambda v: (k := _member_key(v, ci)) is not None and k in keys
        return lambda v: (k := _member_key(v, ci)) is None or k not in keys
    if op in _TEXT_OPS or op == "$like":
        if not isinstance(operand, str):
            raise ValueError(f"query field {field!r}: {op} needs a string, got {operand!r}")
        if op == "$like":
            like = Glob(operand)  # compiled once per query, not per record
            return lambda v: (t := _as_text(v, kind)) is not None and like(t)
        needle = _fold(operand, ci)
        check = {
            "$startsWith": lambda s: s.startswith(needle),
            "$endsWith": lambda s: s.endswith(needle),
            "$contains": lambda s: needle in s,
        }[op]
        return lambda v: (t := _as_text(v, kind)) is not None and check(_fold(t, ci))
    if isinstance(operand, (dict, list)):
        raise ValueError(f"query field {field!r}: {op} needs a single value, got {operand!r}")
    if kind == "date":
        operand = _query_time(field, operand)
    if op == "$eq":
        return lambda v: _equal(v, operand, ci)
    if op == "$ne":
        return lambda v: not _equal(v, operand, ci)
    if operand is None:
        # Mongo: {$gte: null} matches null, {$gt: null} matches nothing.
        return (lambda v: v is None) if op in ("$gte", "$lte") else (lambda v: False)
    want = {"$gt": (1,), "$gte": (0, 1), "$lt": (-1,), "$lte": (-1, 0)}[op]
    return lambda v: _order(v, operand, ci, kind) in want


def _compile_condition(field: str, kind: str, getter: Getter, cond: Any) -> Predicate:
    """One field condition: a literal (equality) or an object of operators (all must hold).

    ``$ci: true`` makes every string comparison of that object case-insensitive.
    List fields (ancestorId, attributeName, deviceIds, ...) follow Mongo
    array rules: a positive operator needs some element to pass, ``$ne`` and
    ``$nin`` need every element to pass. Against a list, null means
    "empty": ``{"ancestorId": null}`` matches devices without ancestors [I].
    """
    if isinstance(cond, list):
        raise ValueError(f"query field {field!r}: a list is not a condition; use {{'$in': [...]}}")
    if not isinstance(cond, dict):
        cond = {"$eq": cond}
    unknown = [op for op in cond if op not in _KNOWN_OPS]
    if unknown:
        raise ValueError(f"query field {field!r}: unknown operator {unknown[0]!r}")
    ci = cond.get("$ci", False)
    if not isinstance(ci, bool):
        raise ValueError(f"query field {field!r}: $ci must be true or false, got {ci!r}")
    tests: list[Predicate] = []
    for op, operand in cond.items():
        if op == "$ci":
            continue
        if kind == "list" and op in ("$eq", "$ne") and operand is None:
            empty = op == "$eq"
            tests.append(_is_empty(getter, empty))
            continue
        test = _value_test(field, kind, op, operand, ci)
        if kind == "list":
            every = op in ("$ne", "$nin")
            tests.append(_over_items(getter, test, every))
        else:
            tests.append(_on_value(getter, test))
    return lambda r: all(t(r) for t in tests)


def _tag_part_test(field: str, spec: Any) -> Callable[[Any], bool]:
    """Matcher for a tag key or value: a string, null (any), {$in: [...]} or {$nin: [...]}."""
    if spec is None:
        return lambda v: True
    if isinstance(spec, str):
        return lambda v: v == spec
    if isinstance(spec, dict) and len(spec) == 1:
        (op, items), = spec.items()
        if op in _LIST_OPS and isinstance(items, list) and all(isinstance(x, str) for x in items):
            wanted = frozenset(items)
            return (lambda v: v in wanted) if op == "$in" else (lambda v: v not in wanted)
    raise ValueError(
        f"query field {field!r}: tag matcher {spec!r} must be a string, null, "
        "{'$in': [strings]} or {'$nin': [strings]}"
    )


def _compile_tags(field: str, getter: Getter, cond: Any) -> Predicate:
    """Tag queries, per the schemas' two shapes (optionally wrapped in ``$eq``).

    - ``{"$tagKey": K, "$tagValue": V}``: some tag matches both halves;
      a missing or null half is a wildcard.
    - ``{"<tagKey>": V, ...}``: for every entry, some tag has that key and a
      value matching V (null = any value).

    ``$nin`` applies to the matching tag, not the device [I]: ``{"floor":
    {"$nin": ["8"]}}`` needs a floor tag whose value is not "8".
    """
    if isinstance(cond, dict) and set(cond) == {"$eq"}:
        cond = cond["$eq"]
    if not isinstance(cond, dict):
        raise ValueError(f"query field {field!r}: expected a tag query object, got {cond!r}")
    pairs_tests: list[tuple[Callable[[Any], bool], Callable[[Any], bool]]] = []
    special = {k for k in cond if k.startswith("$")}
    if special:
        extra = special - {"$tagKey", "$tagValue"}
        if extra:
            raise ValueError(f"query field {field!r}: unknown operator {sorted(extra)[0]!r}")
        if len(special) != len(cond):
            raise ValueError(f"query field {field!r}: do not mix $tagKey/$tagValue with tag keys")
        pairs_tests.append(
            (_tag_part_test(field, cond.get("$tagKey")), _tag_part_test(field, cond.get("$tagValue")))
        )
    else:
        for key, spec in cond.items():
            pairs_tests.append((_equals(key), _tag_part_test(field, spec)))

    def matches(record: dict[str, Any]) -> bool:
        pairs = getter(record)
        return all(any(kt(k) and vt(v) for k, v in pairs) for kt, vt in pairs_tests)

    return matches


# Closures built by named factories (not default-argument lambdas): each binds its own values
# and keeps a type the checker can follow.
def _is_empty(getter: Getter, empty: bool) -> Predicate:
    return lambda r: (not getter(r)) is empty


def _over_items(getter: Getter, test: Callable[[Any], bool], every: bool) -> Predicate:
    if every:
        return lambda r: all(test(v) for v in getter(r))
    return lambda r: any(test(v) for v in getter(r))


def _on_value(getter: Getter, test: Callable[[Any], bool]) -> Predicate:
    return lambda r: test(getter(r))


def _equals(key: Any) -> Callable[[Any], bool]:
    return lambda k: bool(k == key)


def _all_of(subs: list[Predicate]) -> Predicate:
    return lambda r: all(p(r) for p in subs)


def _any_of(subs: list[Predicate]) -> Predicate:
    return lambda r: any(p(r) for p in subs)


def _none_of(subs: list[Predicate]) -> Predicate:
    return lambda r: not any(p(r) for p in subs)


def _as_list(name: str) -> Getter:
    return lambda r: list(r.get(name) or ())


def _by_shape(getter: Getter, scalar: Predicate, listed: Predicate) -> Predicate:
    return lambda r: (listed if isinstance(getter(r), list) else scalar)(r)


def _compile(query: Any, fields: dict[str, tuple[str, Getter]], open_fields: bool, path: str) -> Predicate:
    if not isinstance(query, dict):
        raise ValueError(f"query{path}: expected an object, got {query!r}")
    parts: list[Predicate] = []
    for name, cond in query.items():
        if name in ("$and", "$or", "$nor"):
            if not isinstance(cond, list):
                raise ValueError(f"query{path}: {name} needs a list of queries, got {cond!r}")
            subs = [_compile(q, fields, open_fields, f"{path}.{name}[{i}]") for i, q in enumerate(cond)]
            if not subs:
                continue  # an empty list constrains nothing [I]
            if name == "$and":
                parts.append(_all_of(subs))
            elif name == "$or":
                parts.append(_any_of(subs))
            else:
                parts.append(_none_of(subs))
        elif name.startswith("$"):
            raise ValueError(f"query{path}: unknown operator {name!r}")
        elif name in fields:
            kind, getter = fields[name]
            if kind == "tags":
                parts.append(_compile_tags(name, getter, cond))
            else:
                parts.append(_compile_condition(name, kind, getter, cond))
        elif open_fields:
            getter = _get(name)
            scalar = _compile_condition(name, "scalar", getter, cond)
            listed = _compile_condition(name, "list", _as_list(name), cond)
            parts.append(_by_shape(getter, scalar, listed))
        else:
            raise ValueError(f"query{path}: unknown field {name!r}; allowed: {', '.join(sorted(fields))}")
    return lambda r: all(p(r) for p in parts)


def compile_query(query: dict[str, Any] | None, kind: str) -> Predicate:
    """Check an advanced query and return a predicate over records of ``kind``.

    ``kind`` is ``"device"``, ``"event"`` or ``"key"``. Top-level entries
    and ``$and`` items must all hold, ``$or`` needs one, ``$nor`` none.
    None or ``{}`` matches everything. Raises ``ValueError`` naming the
    unknown field or operator, or the malformed value.

    >>> is_warning_or_worse = compile_query({"level": {"$gte": "warning"}}, "event")
    >>> [is_warning_or_worse({"level": lv}) for lv in ("info", "warning", "critical")]
    [False, True, True]
    """
    kind = _KIND_ALIASES.get(kind, kind)
    if kind not in _KINDS:
        raise ValueError(f"query kind {kind!r} is not one of {sorted(_KINDS)}")
    fields, open_fields = _KINDS[kind]
    return _compile(query if query is not None else {}, fields, open_fields, "")


def validate_query(query: Any, kind: str) -> None:
    """Raise ``ValueError`` when ``query`` is not a usable advanced query of ``kind``."""
    compile_query(query, kind)


def device_matches(device: dict[str, Any], query: dict[str, Any] | None) -> bool:
    """advancedDeviceQuery. For many devices, call ``compile_query`` once instead."""
    return compile_query(query, "device")(device)


def event_matches(event: dict[str, Any], query: dict[str, Any] | None) -> bool:
    """advancedEventQuery (``eventTags`` is the event's ``{key: value}`` object)."""
    return compile_query(query, "event")(event)


def key_matches(key: dict[str, Any], query: dict[str, Any] | None) -> bool:
    """advancedApplicationKeyQuery; fields outside the schema's list are read from the key dict."""
    return compile_query(query, "key")(key)


def filter_records(records: Iterable[dict[str, Any]], query: dict[str, Any] | None, kind: str) -> list[dict[str, Any]]:
    """The records matching ``query``, compiled once."""
    predicate = compile_query(query, kind)
    return [r for r in records if predicate(r)]
