"""Data table rows: insert, get, query and the answer cap (REFERENCE 5.10, section 8).

Every answer here passes through ``Api``, which checks it against the official schema of
its endpoint and status (dataTableRowInsertResult, dataTableRows, error).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from emulator_support import Api, FakeClock, make_api

from harness.emulator.routes_tables import MAX_COLUMNS, MAX_INSERT_ROWS, MAX_LIMIT, MAX_QUERY_TERMS, MAX_TABLE_ROWS
from harness.limits import parse_limits

HEX = "0123456789abcdef01234567"
OTHER = "abcdefabcdefabcdefabcdef"


@pytest.fixture()
def api() -> Any:
    api = make_api(FakeClock())
    api.login()
    yield api
    api.close()


def rows_path(app: str, table: str = HEX) -> str:
    return f"/applications/{app}/data-tables/{table}/rows"


def test_insert_one_row_then_many_and_read_them_back_in_order(api: Api) -> None:
    app = api.application()
    r = api.post(rows_path(app), json={"name": "pump", "temp": 21.5, "on": True, "note": None})
    assert r.status_code == 201, r.text
    one = r.json()
    assert one["name"] == "pump" and one["temp"] == 21.5 and one["createdAt"].endswith("Z") and len(one["id"]) == 24
    r = api.post(rows_path(app), json=[{"name": f"r{i}", "n": i} for i in range(5)])
    assert r.status_code == 201, r.text
    bulk = r.json()
    assert bulk["count"] == 5 and len(bulk["rowIds"]) == 5
    got = api.get(rows_path(app)).json()
    assert got["totalCount"] == got["count"] == 6 and got["limit"] == 1000 and got["offset"] == 0
    assert [row["id"] for row in got["items"]] == [one["id"], *bulk["rowIds"]]  # insertion order
    page = api.get(rows_path(app), params={"limit": 2, "offset": 1, "sortDirection": "desc"}).json()
    assert [row["name"] for row in page["items"]] == ["r3", "r2"] and page["totalCount"] == 6
    by_n = api.get(rows_path(app), params={"sortColumn": "n", "sortDirection": "desc", "includeFields": "n"}).json()
    assert [row.get("n") for row in by_n["items"]] == [4, 3, 2, 1, 0, None] and set(by_n["items"][0]) == {"n"}
    assert api.get(rows_path(app, OTHER)).json()["totalCount"] == 0  # another table is its own
    other_app = api.application("b")
    assert api.get(rows_path(other_app)).json()["totalCount"] == 0  # the same id under another application too


def test_query_filters_rows_with_the_advanced_query(api: Api) -> None:
    app = api.application()
    api.post(rows_path(app), json=[{"kind": "a" if i % 2 else "b", "n": i} for i in range(10)])
    r = api.post(rows_path(app) + "/query", json={"kind": "a", "n": {"$gte": 5}}, params={"limit": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [row["n"] for row in body["items"]] == [5, 7] and body["totalCount"] == 3 and body["count"] == 2
    assert body["query"] == {"kind": "a", "n": {"$gte": 5}}
    r = api.post(rows_path(app) + "/query", json={"$or": [{"n": 0}, {"n": {"$in": [9]}}]})
    assert [row["n"] for row in r.json()["items"]] == [0, 9]
    assert api.post(rows_path(app) + "/query", json={}).json()["totalCount"] == 10


@pytest.mark.parametrize("method, suffix, body, params", [
    ("POST", "", {"bad name!": 1}, None),  # a column outside [0-9a-zA-Z_-]
    ("POST", "", {"nested": {"a": 1}}, None),  # values are scalars
    ("POST", "", [{"n": i} for i in range(MAX_INSERT_ROWS + 1)], None),
    ("POST", "", {f"c{i}": i for i in range(MAX_COLUMNS + 1)}, None),  # refused before any schema walk
    ("POST", "", [{"n": 1}, "not a row"], None),
    ("POST", "/query", {f"c{i}": i for i in range(MAX_QUERY_TERMS + 1)}, None),
    ("POST", "/query", {"n": {"$bogus": 1}}, None),
    ("GET", "", None, {"sortColumn": "no such!"}),
    ("GET", "", None, {"sortDirection": "sideways"}),
    ("GET", "", None, {"limit": "-1"}),
    ("GET", "", None, {"offset": "many"}),
])
def test_malformed_requests_are_400_validation(api: Api, method: str, suffix: str, body: Any, params: Any) -> None:
    app = api.application()
    r = api.request(method, rows_path(app) + suffix, json=body, params=params)
    assert r.status_code == 400 and r.json()["type"] == "Validation", r.text


def test_unknown_table_id_and_other_owner_are_404(api: Api) -> None:
    app = api.application()
    assert api.get(rows_path(app, "not-hex")).status_code == 404
    assert api.post(rows_path(app, "not-hex"), json={"a": 1}).status_code == 404
    assert api.get(rows_path(OTHER)).status_code == 404  # no such application


def test_limit_and_table_size_are_bounded(api: Api) -> None:
    app = api.application()
    assert api.get(rows_path(app), params={"limit": 10**9}).json()["limit"] == MAX_LIMIT
    for _ in range(MAX_TABLE_ROWS // MAX_INSERT_ROWS):
        assert api.post(rows_path(app), json=[{"n": 1}] * MAX_INSERT_ROWS).status_code == 201
    r = api.post(rows_path(app), json={"n": 2})
    assert r.status_code == 400 and str(MAX_TABLE_ROWS) in r.json()["message"]
    assert api.get(rows_path(app), params={"limit": 0}).json()["totalCount"] == MAX_TABLE_ROWS


def cap_api(cap: int) -> Api:
    api = make_api(FakeClock(), limits=parse_limits({"limits": {"dataTableRows.get": {"count": cap}}}))
    api.login()
    return api


def test_answer_cap_refuses_just_over_and_answers_just_under() -> None:
    """The cap is on the answer's bytes: a page one row over it is 400 naming the cap, one row
    under it is answered, and both get and query obey it."""
    cap = 20_000
    api = cap_api(cap)
    try:
        app = api.application()
        api.post(rows_path(app), json=[{"blob": "x" * 900, "n": i} for i in range(40)])
        sizes = {n: len(orjson.dumps(api.get(rows_path(app), params={"limit": n}).json())) for n in (1, 2)}
        per = sizes[2] - sizes[1]
        under = (cap - (sizes[1] - per)) // per
        r = api.get(rows_path(app), params={"limit": under})
        assert r.status_code == 200 and len(r.content) <= cap < len(r.content) + per
        for method, suffix, body in (("GET", "", None), ("POST", "/query", {})):
            r = api.request(method, rows_path(app) + suffix, json=body, params={"limit": under + 1})
            assert r.status_code == 400 and r.json()["type"] == "Validation", r.text
            assert str(cap) in r.json()["message"]
        r = api.post(rows_path(app) + "/query", json={"n": {"$lt": under}}, params={"limit": 40})
        assert r.status_code == 200 and r.json()["count"] == under
    finally:
        api.close()


def test_rows_go_with_their_application() -> None:
    api = cap_api(20 * 1024 * 1024)
    try:
        app = api.application()
        api.post(rows_path(app), json=[{"n": 1}])
        assert api.delete(f"/applications/{app}").status_code == 200
        assert api.app.store.table_size(app, HEX) == (0, 0)
    finally:
        api.close()
