"""query: filter globs, tag filters and the three advanced query languages."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.emulator.query import (
    compile_query,
    device_matches,
    event_matches,
    filter_records,
    glob_match,
    key_matches,
    tag_filter_matches,
    validate_query,
)

T = 1_465_790_400_000  # 2016-06-13T04:00:00.000Z
ID_A, ID_B, ID_G, ID_P = "a" * 24, "b" * 24, "c" * 24, "d" * 24

PUMP = {
    "id": ID_A,
    "name": "Pump-7",
    "deviceClass": "peripheral",
    "tags": [{"key": "floor", "value": "8"}, {"key": "zone", "value": "north"}],
    "attributes": [{"name": "voltage", "dataType": "number"}, {"name": "on", "dataType": "boolean"}],
    "creationDate": T,
    "lastUpdated": T + 60_000,
    "deletedAt": None,
    "gatewayId": ID_G,
    "parentId": ID_P,
    "ancestorIds": [ID_P],
    "connectionStatus": "connected",
}
GATEWAY = {
    "id": ID_G,
    "name": "gateway 1",
    "deviceClass": "gateway",
    "tags": [],
    "attributes": [],
    "creationDate": T - 86_400_000,
    "lastUpdated": T,
    "deletedAt": T + 1000,
    "gatewayId": None,
    "parentId": None,
    "ancestorIds": [],
    "connectionStatus": "disconnected",
}


@pytest.mark.parametrize(
    "pattern, text, expected",
    [
        ("pump-7", "Pump-7", True),  # case-insensitive
        ("pump*", "Pump-7", True),
        ("*-7", "Pump-7", True),
        ("*mp*", "Pump-7", True),
        ("*", "", True),
        ("p*7", "Pump-7", True),
        ("pump", "Pump-7", False),  # whole string, not a substring
        ("p?mp-7", "Pump-7", False),  # ? is literal
        ("p.mp-7", "Pump-7", False),  # . is literal
        ("[p]ump-7", "Pump-7", False),
        ("a+b", "a+b", True),
        ("**", "x", True),
        ("x", None, False),
        ("12*", 123, True),
        ("line*", "line1\nline2", True),
    ],
)
def test_glob_match(pattern, text, expected):
    assert glob_match(pattern, text) is expected


TAGS = [{"key": "floor", "value": "8"}, {"key": "zone", "value": "north"}]


@pytest.mark.parametrize(
    "tag_filter, expected",
    [
        ([], True),  # no filter: everything
        ([{"key": "floor", "value": "8"}], True),
        ([{"key": "floor"}], True),  # key only: any value
        ([{"value": "north"}], True),  # value only: any key
        ([{"key": "floor", "value": "9"}], False),
        ([{"key": "floor", "value": "north"}], False),  # both halves on one tag
        ([{"key": "Floor"}], False),  # exact case
        ([{"key": "room"}, {"value": "8"}], True),  # any entry
        ([{"key": "room"}, {"value": "9"}], False),
        ([{}], True),  # an entry with neither half constrains nothing
    ],
)
def test_tag_filter_matches(tag_filter, expected):
    assert tag_filter_matches(TAGS, tag_filter) is expected


def test_tag_filter_on_untagged_device():
    assert tag_filter_matches([], [{"key": "floor"}]) is False
    assert tag_filter_matches([], []) is True


# (query, matches PUMP, matches GATEWAY)
DEVICE_CASES = [
    ({}, True, True),
    ({"id": ID_A}, True, False),
    ({"id": {"$in": [ID_A, ID_B]}}, True, False),
    ({"id": {"$nin": [ID_A]}}, False, True),
    ({"id": {"$ne": ID_A}}, False, True),
    ({"id": {"$gt": ID_B}}, False, True),  # ids order as strings
    ({"name": "Pump-7"}, True, False),
    ({"name": "pump-7"}, False, False),  # equality is case-sensitive...
    ({"name": {"$eq": "pump-7", "$ci": True}}, True, False),  # ...unless $ci
    ({"name": {"$startsWith": "Pump"}}, True, False),
    ({"name": {"$startsWith": "pump"}}, False, False),
    ({"name": {"$startsWith": "pump", "$ci": True}}, True, False),
    ({"name": {"$endsWith": " 1"}}, False, True),
    ({"name": {"$contains": "UMP", "$ci": True}}, True, False),
    ({"name": {"$like": "pump*"}}, True, False),
    ({"name": {"$in": ["gateway 1", "x"]}}, False, True),
    ({"name": {"$gte": "a", "$lt": "h"}}, False, True),  # all operators of an object hold
    ({"deviceClass": "gateway"}, False, True),
    ({"deviceClass": {"$in": ["peripheral", "standalone"]}}, True, False),
    ({"gatewayId": ID_G}, True, False),
    ({"gatewayId": None}, False, True),
    ({"gatewayId": {"$ne": None}}, True, False),
    ({"parentId": ID_P}, True, False),
    ({"ancestorId": ID_P}, True, False),
    ({"ancestorId": None}, False, True),  # null against a list: no ancestors
    ({"ancestorId": {"$ne": ID_P}}, False, True),
    ({"ancestorId": {"$nin": [ID_P]}}, False, True),
    ({"attributeName": "voltage"}, True, False),
    ({"attributeName": {"$in": ["on", "x"]}}, True, False),
    ({"attributeName": {"$ne": "voltage"}}, False, True),
    ({"attributeName": {"$startsWith": "volt"}}, True, False),
    ({"connectionStatus": "connected"}, True, False),
    ({"connectionStatus": {"$ne": "connected"}}, False, True),
    # dates: epoch ms or ISO strings
    ({"creationDate": T}, True, False),
    ({"creationDate": "2016-06-13T04:00:00.000Z"}, True, False),
    ({"creationDate": {"$gte": "2016-06-13T00:00:00Z"}}, True, False),
    ({"creationDate": {"$lt": "2016-06-13"}}, False, True),
    ({"creationDate": {"$gt": T - 1, "$lte": str(T)}}, True, False),
    ({"creationDate": {"$gt": "1465790399999.5"}}, True, False),  # numeric text is ms
    ({"lastUpdated": {"$in": [T, "2016-06-13T04:01:00Z"]}}, True, True),
    ({"creationDate": {"$startsWith": "2016-06-13"}}, True, False),  # text ops see ISO text
    ({"deletedAt": None}, True, False),
    ({"deletedAt": {"$ne": None}}, False, True),
    ({"deletedAt": {"$gt": T}}, False, True),
    ({"deletedAt": {"$gte": None}}, True, False),
    ({"deletedAt": True}, False, False),  # a boolean is never a date
    # tags: both schema shapes
    ({"tags": {"floor": "8"}}, True, False),
    ({"tags": {"floor": "9"}}, False, False),
    ({"tags": {"floor": None}}, True, False),
    ({"tags": {"floor": "8", "zone": "north"}}, True, False),  # every entry
    ({"tags": {"floor": "8", "zone": "south"}}, False, False),
    ({"tags": {"floor": {"$in": ["7", "8"]}}}, True, False),
    ({"tags": {"floor": {"$nin": ["8"]}}}, False, False),  # needs a floor tag
    ({"tags": {"$tagKey": "floor"}}, True, False),
    ({"tags": {"$tagValue": "north"}}, True, False),
    ({"tags": {"$tagKey": "floor", "$tagValue": "north"}}, False, False),  # one tag, both halves
    ({"tags": {"$tagKey": {"$in": ["zone", "x"]}, "$tagValue": "north"}}, True, False),
    ({"tags": {"$tagKey": {"$nin": ["floor"]}}}, True, False),  # zone is not floor
    ({"tags": {"$eq": {"floor": "8"}}}, True, False),
    ({"tags": {}}, True, True),
    # boolean combinations
    ({"$and": [{"deviceClass": "peripheral"}, {"tags": {"floor": "8"}}]}, True, False),
    ({"$or": [{"name": "gateway 1"}, {"tags": {"floor": "8"}}]}, True, True),
    ({"$nor": [{"name": "gateway 1"}]}, True, False),
    ({"$or": [{"$and": [{"name": "x"}]}, {"$nor": [{"deviceClass": "gateway"}]}]}, True, False),
    ({"$and": []}, True, True),  # empty lists constrain nothing
    ({"$or": []}, True, True),
    ({"deviceClass": "peripheral", "$or": [{"name": "x"}]}, False, False),  # top level is AND
    # JSON types do not mix
    ({"name": 7}, False, False),
    ({"connectionStatus": True}, False, False),
]


@pytest.mark.parametrize("query, on_pump, on_gateway", DEVICE_CASES)
def test_device_matches(query, on_pump, on_gateway):
    assert device_matches(PUMP, query) is on_pump
    assert device_matches(GATEWAY, query) is on_gateway


def test_device_matches_reads_connection_info_and_iso_dates():
    stored = {
        "deviceId": ID_B,
        "creationDate": "2016-06-13T04:00:00.000Z",
        "connectionInfo": {"time": T, "connected": 1},
    }
    assert device_matches(stored, {"id": ID_B})
    assert device_matches(stored, {"creationDate": T})
    assert device_matches(stored, {"connectionStatus": "connected"})
    assert device_matches(stored, {"connectedAt": {"$gte": "2016-06-13"}})
    assert not device_matches(stored, {"disconnectedAt": {"$ne": None}})


@pytest.mark.parametrize(
    "query, named",
    [
        ({"name": {"$regex": "x"}}, "$regex"),
        ({"name": {"$eq": "x", "$exists": True}}, "$exists"),
        ({"$not": [{"name": "x"}]}, "$not"),
        ({"$or": [{"name": "x"}, {"color": "red"}]}, "color"),  # reached or not
        ({"nickname": "x"}, "nickname"),
        ({"tags": {"$tagKey": "a", "$bogus": "b"}}, "$bogus"),
        ({"tags": {"$tagKey": "a", "floor": "8"}}, "tags"),
        ({"tags": {"floor": {"$ne": "8"}}}, "tags"),
        ({"tags": {"floor": 8}}, "tags"),
        ({"tags": [{"key": "floor"}]}, "tags"),
        ({"$and": {"name": "x"}}, "$and"),
        ({"$or": ["name"]}, "$or"),
        ({"name": {"$in": "abc"}}, "$in"),
        ({"name": {"$startsWith": 5}}, "$startsWith"),
        ({"name": {"$eq": ["a"]}}, "$eq"),
        ({"name": ["a", "b"]}, "name"),
        ({"name": {"$ci": "yes"}}, "$ci"),
        ({"creationDate": {"$gt": "last tuesday"}}, "creationDate"),
        ({"creationDate": {"$in": ["soon"]}}, "creationDate"),
        ({"creationDate": "nan"}, "creationDate"),
        ({"lastUpdated": {"$lt": float("inf")}}, "lastUpdated"),
    ],
)
def test_bad_device_queries_raise_naming_the_problem(query, named):
    with pytest.raises(ValueError, match=named.replace("$", r"\$")):
        validate_query(query, "device")
    with pytest.raises(ValueError):
        device_matches(PUMP, query)


def test_bad_query_raises_even_with_no_records():
    with pytest.raises(ValueError):
        filter_records([], {"name": {"$nope": 1}}, "device")


def test_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        compile_query({}, "widget")


def test_none_query_matches_everything():
    assert device_matches(PUMP, None)
    assert filter_records([PUMP, GATEWAY], None, "device") == [PUMP, GATEWAY]


EVENT = {
    "id": "e" * 24,
    "level": "warning",
    "state": "new",
    "subject": "Pump overheated",
    "deviceId": ID_A,
    "sourceType": "flow",
    "sourceId": "f" * 24,
    "creationDate": T,
    "lastUpdated": T,
    "eventTags": {"site": "plant-2", "shift": ["a", "b"]},
}


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"level": "warning"}, True),
        ({"level": {"$gte": "warning"}}, True),  # severity order, not alphabetical
        ({"level": {"$gt": "warning"}}, False),
        ({"level": {"$lt": "error"}}, True),
        ({"level": {"$in": ["error", "critical"]}}, False),
        ({"state": {"$ne": "resolved"}}, True),
        ({"subject": {"$contains": "overheat"}}, True),
        ({"deviceId": ID_A, "sourceType": "flow"}, True),
        ({"creationDate": {"$lt": "2016-06-14"}}, True),
        ({"eventTags": {"site": "plant-2"}}, True),
        ({"eventTags": {"shift": "b"}}, True),
        ({"eventTags": {"$tagKey": "site", "$tagValue": {"$in": ["plant-1"]}}}, False),
        ({"id": "e" * 24}, True),
        ({"$or": [{"level": "critical"}, {"subject": {"$startsWith": "Pump"}}]}, True),
    ],
)
def test_event_matches(query, expected):
    assert event_matches(EVENT, query) is expected


def test_event_query_rejects_device_fields():
    with pytest.raises(ValueError, match="deviceClass"):
        event_matches(EVENT, {"deviceClass": "gateway"})


KEY = {
    "id": "9" * 24,
    "key": "0123-abcd",
    "status": "active",
    "name": "field units",
    "deviceIds": [ID_A, ID_B],
    "deviceTags": [{"key": "floor"}, {"key": "zone", "value": "north"}],
    "filterType": "none",
    "pubTopics": [],
    "creationDate": T,
    "custom": "x",
}


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"status": "active"}, True),
        ({"deviceIds": ID_B}, True),  # any element
        ({"deviceIds": {"$nin": [ID_G]}}, True),
        ({"deviceIds": {"$in": [ID_G]}}, False),
        ({"deviceTags": {"$tagKey": "floor"}}, True),
        ({"deviceTags": {"zone": "north"}}, True),
        ({"pubTopics": None}, True),
        ({"name": {"$like": "field*"}}, True),
        ({"key": {"$startsWith": "0123"}}, True),
        ({"custom": "x"}, True),  # this schema allows other fields
        ({"missing": None}, True),
        ({"$nor": [{"status": "inactive"}]}, True),
    ],
)
def test_key_matches(query, expected):
    assert key_matches(KEY, query) is expected


# Property tests: the combinators against plain Python over generated devices.
names = st.sampled_from(["Pump-7", "pump-8", "gateway 1", "sensor", ""])
devices = st.builds(
    lambda name, cls, created: {**PUMP, "name": name, "deviceClass": cls, "creationDate": created},
    names,
    st.sampled_from(["standalone", "gateway", "peripheral"]),
    st.integers(min_value=0, max_value=2 * T),
)
leaf = st.one_of(
    names.map(lambda n: {"name": n}),
    st.lists(names, max_size=3).map(lambda ns: {"name": {"$in": ns}}),
    st.integers(min_value=0, max_value=2 * T).map(lambda t: {"creationDate": {"$gte": t}}),
    st.sampled_from(["gateway", "peripheral"]).map(lambda c: {"deviceClass": {"$ne": c}}),
)


def _reference(device, query):
    """Slow reference for the leaf shapes above and $and/$or/$nor over them."""
    if "$and" in query:
        return all(_reference(device, q) for q in query["$and"])
    if "$or" in query:
        return any(_reference(device, q) for q in query["$or"])
    if "$nor" in query:
        return not any(_reference(device, q) for q in query["$nor"])
    (field, cond), = query.items()
    if field == "name":
        return device["name"] in cond["$in"] if isinstance(cond, dict) else device["name"] == cond
    if field == "creationDate":
        return device["creationDate"] >= cond["$gte"]
    return device["deviceClass"] != cond["$ne"]


queries = st.recursive(
    leaf,
    lambda inner: st.builds(
        lambda op, items: {op: items}, st.sampled_from(["$and", "$or", "$nor"]), st.lists(inner, min_size=1, max_size=3)
    ),
    max_leaves=8,
)


@given(devices, queries)
def test_combinators_agree_with_reference(device, query):
    assert device_matches(device, query) is _reference(device, query)


@given(devices, queries)
def test_nor_is_not_or(device, query):
    assert device_matches(device, {"$nor": [query]}) is (not device_matches(device, {"$or": [query]}))


@given(st.lists(names, max_size=4), names)
def test_in_is_any_eq_and_nin_is_its_negation(candidates, name):
    device = {**PUMP, "name": name}
    any_eq = any(device_matches(device, {"name": c}) for c in candidates)
    assert device_matches(device, {"name": {"$in": candidates}}) is any_eq
    assert device_matches(device, {"name": {"$nin": candidates}}) is (not any_eq)


@given(st.text(alphabet="ab*", max_size=6), st.text(alphabet="abAB", max_size=6))
def test_glob_agrees_with_fnmatch_when_only_stars(pattern, text):
    import fnmatch

    assert glob_match(pattern, text) is fnmatch.fnmatchcase(text.lower(), pattern.lower())


# ---- the glob is linear in the text, whatever the pattern ------------------------------------
class CountingFind:
    """Stands in for ``str.find`` and records each search window and where it stopped."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []  # (window start, window stop, end of what it consumed)

    def __call__(self, text: str, run: str, start: int, stop: int) -> int:
        found = text.find(run, start, stop)
        self.calls.append((start, stop, found + len(run) if found >= 0 else stop))
        return found


@pytest.mark.parametrize("pattern", ["*" * 16 + "x", "*" * 16 + "1", "*s*e*n*s*o*r*s*-*0*0*5*0*", "s" + "*s" * 40,
                                     "*" + "*".join("sensors-0050") + "*x", "*-*-*-*-*"])
def test_glob_scans_the_text_once(pattern):
    """Each middle run is searched once, past the previous hit: the windows never overlap, so the
    text is scanned at most once (the old .*-joined regex backtracked exponentially: 24 s here)."""
    from harness.emulator.query import Glob

    glob = Glob(pattern)
    assert len(glob.middle) <= pattern.count("*")
    for n in range(1, 51):
        text = f"sensors-{n:04d}"
        find = CountingFind()
        got = glob.match_folded(text.casefold(), find)
        assert got is fnmatch.fnmatchcase(text, pattern)  # no [ ] ? in these patterns
        assert len(find.calls) <= len(glob.middle)
        ends = [0] + [end for _, _, end in find.calls]
        assert all(start >= prev for (start, _, _), prev in zip(find.calls, ends))  # windows only move right
        assert sum(end - start for start, _, end in find.calls) <= len(text)


def test_pathological_pattern_needs_no_search():
    from harness.emulator.query import Glob

    glob = Glob("*" * 16 + "x")
    assert (glob.head, glob.middle, glob.tail) == ("", (), "x")  # one endswith per name
    assert [n for n in range(1, 51) if glob(f"sensors-{n:04d}")] == []
    long = Glob("*a" * 5000 + "*")  # 5,000 runs: rejected by length before any search
    find = CountingFind()
    assert long.match_folded("a" * 255, find) is False and find.calls == []
    assert long("a" * 5000) is True


@given(st.text(alphabet="aAbß*?[.", max_size=10), st.text(alphabet="aAbBßs\n", max_size=12))
def test_glob_agrees_with_a_reference_matcher(pattern, text):
    """Against a plain recursive matcher over case-folded text (only * is special)."""

    def ref(p: str, t: str) -> bool:
        if not p:
            return not t
        if p[0] == "*":
            return any(ref(p[1:], t[i:]) for i in range(len(t) + 1))
        return bool(t) and t[0] == p[0] and ref(p[1:], t[1:])

    assert glob_match(pattern, text) is ref(pattern.casefold(), text.casefold())


tag_parts = st.sampled_from(["floor", "8", "zone", "north", None])


@given(st.lists(st.fixed_dictionaries({"key": st.sampled_from(["floor", "zone", "room"]), "value": st.sampled_from(["8", "north"])}),
                max_size=4),
       st.lists(st.fixed_dictionaries({"key": tag_parts, "value": tag_parts}), max_size=5))
def test_compiled_tag_filter_agrees_with_the_pairwise_rule(tags, tag_filter):
    """The set-based ``tag_filter_predicate`` against the rule spelled out pairwise."""
    from harness.emulator.query import tag_filter_predicate

    def pairwise() -> bool:
        if not tag_filter:
            return True
        for entry in tag_filter:
            key, value = entry.get("key"), entry.get("value")
            if key is None and value is None:
                return True
            if any((key is None or t["key"] == key) and (value is None or t["value"] == value) for t in tags):
                return True
        return False

    assert tag_filter_predicate(tag_filter)(tags) is pairwise() is tag_filter_matches(tags, tag_filter)


@given(st.lists(st.one_of(st.booleans(), st.integers(-2, 2), st.floats(-2, 2, allow_nan=False), st.none(),
                          st.sampled_from(["a", "A", "1"]), st.just([1])), max_size=5),
       st.one_of(st.booleans(), st.integers(-2, 2), st.just(1.0), st.none(), st.sampled_from(["a", "A", "1"])),
       st.booleans())
def test_in_by_set_lookup_keeps_json_equality(items, value, ci):
    """true is not 1, 1 is 1.0, "1" is not 1, $ci folds strings, a list equals nothing."""
    from harness.emulator.query import _equal

    device = {**PUMP, "name": value}
    assert device_matches(device, {"name": {"$in": items, "$ci": ci}}) is any(_equal(value, x, ci) for x in items)
