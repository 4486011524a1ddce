"""Data table rows (REFERENCE 5.10): insert, get, query, and the 20 MB answer cap of section 8.

Why rows are stored at all: the documented cap is on the answer, so only a table that
holds rows can show a client where the cap lies (and a harness whether it is enforced).
Tables themselves are not modelled [I, docs/LIMITS.md]: any 24-hex table id under an
application the caller reaches is an empty table until rows are inserted, and its
columns are whatever the rows carry (``dataTableRowInsert.json``: names
``[0-9a-zA-Z_-]{1,255}``, values string, number, boolean or null).

Work per request is bounded: an insert takes at most ``MAX_INSERT_ROWS`` rows of at most
``MAX_COLUMNS`` columns, checked by hand before anything else (the stock schema check of one
10 MiB body of 800,000 columns took 16 s), a query at most ``MAX_QUERY_TERMS`` fields and
operators (each is tried on every row a filter reads), a table at most ``MAX_TABLE_ROWS``
rows and ``MAX_TABLE_BYTES`` bytes of row JSON, an answer at most ``MAX_LIMIT`` rows. An
answer over the cap is refused (400 ``Validation`` naming the cap, as the time-series query)
as soon as the rows read so far exceed it, so the refusal costs at most the cap's worth of
reading.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from .errors import ApiError, not_found, validation
from .http import ApiResponse, int_param
from .query import compile_query
from .timeparse import format_time
from .validation import validate
from .views import collection, links_wanted

if TYPE_CHECKING:
    from .app import Emulator
    from .http import Request

_HEX24 = re.compile(r"[A-Fa-f0-9]{24}\Z")
_COLUMN = re.compile(r"[0-9a-zA-Z_-]{1,255}\Z")
#: Rows one insert may carry: the bulk answer lists at most 1,000 ``rowIds`` (dataTableRowInsertResult.json) [I].
MAX_INSERT_ROWS = 1000
#: Rows one answer may hold (``limit`` above it is lowered to it) [I]; the documented default is 1,000.
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1000
#: Columns one row may carry [I].
MAX_COLUMNS = 256
#: Fields, operators and list items of one advanced query [I] (rows x terms bounds a filter's work).
MAX_QUERY_TERMS = 8
#: What one table may hold [I] (a filter reads all of it: 5,000 rows against the largest query took
#: ~0.2 s here, ~30 Python calls per term and row in query.py); bytes: three 20 MB answers.
MAX_TABLE_ROWS = 5_000
MAX_TABLE_BYTES = 64 * 1024 * 1024
_SCALARS = (str, int, float, bool, type(None))
#: Columns every row has; an insert naming them is not allowed to set them [I].
_SYSTEM = ("id", "createdAt", "updatedAt")
#: sortColumn values read from the row order itself (ids and creation times grow with it).
_BY_INSERTION = ("", "id", "createdAt")


def _place(emu: Emulator, req: Request) -> tuple[str, str]:
    app = emu.auth.application(req.principal, req.params["applicationId"])
    table = req.params["dataTableId"]
    if not _HEX24.match(table):
        raise not_found("Data table")
    return app["id"], table


def insert(emu: Emulator, req: Request) -> ApiResponse:
    app_id, table = _place(emu, req)
    body = req.json()
    rows = _checked_rows(body)
    now = emu.now_ms()
    created = format_time(now)
    seq = emu.store.next_row_seq()
    docs: list[tuple[int, str]] = []
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        # ids grow with insertion: seconds then the store-wide row number (an ObjectId's layout)
        doc = {"id": f"{(now // 1000) & 0xFFFFFFFF:08x}{seq + i:016x}", "createdAt": created, "updatedAt": created,
               **{k: v for k, v in row.items() if k not in _SYSTEM}}
        docs.append((seq + i, orjson.dumps(doc).decode()))
        out.append(doc)
    count, size = emu.store.table_size(app_id, table)
    added = sum(len(d) for _, d in docs)
    if count + len(docs) > MAX_TABLE_ROWS or size + added > MAX_TABLE_BYTES:
        raise validation(f"body: the data table would hold more than {MAX_TABLE_ROWS} rows or "
                         f"{MAX_TABLE_BYTES} bytes of rows (the emulator's bound)")
    emu.store.insert_table_rows(app_id, table, docs)
    if isinstance(body, list):
        return ApiResponse(201, {"createdAt": created, "count": len(out), "rowIds": [d["id"] for d in out]})
    return ApiResponse(201, out[0])


def _checked_rows(body: Any) -> list[dict[str, Any]]:
    """The rows of ``dataTableRowInsert.json`` (one object or an array of them), checked in one
    pass that stops at the first fault, with the emulator's bounds."""
    rows = body if isinstance(body, list) else [body]
    if len(rows) > MAX_INSERT_ROWS:
        raise validation(f"body: at most {MAX_INSERT_ROWS} rows per insert, got {len(rows)}")
    for i, row in enumerate(rows):
        where = f"body[{i}]" if isinstance(body, list) else "body"
        if not isinstance(row, dict):
            raise validation(f"{where}: a row is an object of column values")
        if len(row) > MAX_COLUMNS:
            raise validation(f"{where}: at most {MAX_COLUMNS} columns per row, got {len(row)}")
        for name, value in row.items():
            if not _COLUMN.match(name):
                raise validation(f"{where}: {name[:60]!r} is not a column name ([0-9a-zA-Z_-], 1 to 255 characters)")
            if not isinstance(value, _SCALARS):
                raise validation(f"{where}.{name}: a value is a string, number, boolean or null")
    return rows


def _terms(node: Any, budget: int) -> int:
    """Fields, operators and list items in a query, counted until ``budget`` is passed."""
    count = 0
    stack = [node]
    while stack and count <= budget:
        item = stack.pop()
        if isinstance(item, dict):
            count += len(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            count += len(item)
            stack.extend(item)
    return count


def _options(req: Request) -> tuple[str, str, int, int, list[str] | None]:
    q = req.query
    column = str(q.get("sortColumn") or "")
    if column and not _COLUMN.match(column):
        raise validation("Query parameter sortColumn must be a column name ([0-9a-zA-Z_-], 1 to 255 characters)")
    direction = str(q.get("sortDirection") or "asc")
    if direction.lower() not in ("asc", "desc"):
        raise validation("Query parameter sortDirection must be asc or desc")
    limit = int_param(q, "limit", DEFAULT_LIMIT, 0, MAX_LIMIT)
    offset = int_param(q, "offset", 0, 0)
    fields = q.get("includeFields")
    include = None
    if fields:
        include = [f for f in str(fields).split(",") if f]
        bad = [f for f in include if not _COLUMN.match(f)]
        if bad:
            raise validation(f"Query parameter includeFields: {bad[0][:60]!r} is not a column name")
    return column, direction, limit, offset, include


def _too_large(cap: int) -> ApiError:
    return ApiError(400, "Validation", f"The answer would exceed {cap} bytes; narrow the query "
                                      "(a smaller limit, includeFields or a query)")


def rows(emu: Emulator, req: Request) -> dict[str, Any]:
    """Get (``GET .../rows``) and query (``POST .../rows/query``, body ``advancedQuery.json``)."""
    app_id, table = _place(emu, req)
    query = req.json() if req.method == "POST" else None
    match = None
    if query is not None:
        if _terms(query, MAX_QUERY_TERMS) > MAX_QUERY_TERMS:
            raise validation(f"body: a data table query holds at most {MAX_QUERY_TERMS} fields, operators and list items")
        validate("advancedQuery", query)
        try:
            match = compile_query(query, "row")
        except ValueError as exc:
            raise validation(str(exc)) from None
    column, direction, limit, offset, include = _options(req)
    cap = emu.throttle.size_cap("dataTableRows.get")
    sort = None if column in _BY_INSERTION else column
    descending = direction.lower() == "desc"
    budget = cap if cap is not None else float("inf")
    page: list[bytes] = []
    used = 0
    if query:  # a filter: every row is read once (MAX_TABLE_BYTES at most), the page kept
        total = 0
        for text in emu.store.iter_table_rows(app_id, table, sort, descending):
            if match is not None and not match(orjson.loads(text)):
                continue
            total += 1
            if offset < total <= offset + limit:
                page.append(text.encode())
                used += len(page[-1]) + 1
                if used > budget:
                    raise _too_large(cap or 0)
    else:
        total = emu.store.table_size(app_id, table)[0]
        for text in emu.store.iter_table_rows(app_id, table, sort, descending, limit, offset):
            page.append(text.encode())
            used += len(page[-1]) + 1
            if used > budget:
                raise _too_large(cap or 0)
    items: list[Any]
    if include is None:  # the stored JSON as it is: no decoding, one copy into the answer
        items = [orjson.Fragment(raw) for raw in page]
        items_bytes = sum(map(len, page)) + max(0, len(page) - 1)
    else:
        items = [{k: v for k, v in orjson.loads(raw).items() if k in include} for raw in page]
        items_bytes = len(orjson.dumps(items)) - 2
    answer: dict[str, Any] = {
        "items": [], "count": len(items), "totalCount": total, "limit": limit, "offset": offset,
        "sortColumn": column or "id", "sortDirection": direction, "dataTableId": table, "applicationId": app_id,
        "query": query or {}}
    base = f"/applications/{app_id}/data-tables/{table}"
    collection(answer, "dataTableRows", base + "/rows", links_wanted(req.raw_query),
               {"application": f"/applications/{app_id}", "dataTable": base})
    if cap is not None and len(orjson.dumps(answer)) + items_bytes > cap:  # the answer's exact bytes
        raise _too_large(cap)
    answer["items"] = items
    return answer


def register(emu: Emulator) -> None:
    base = "/applications/{applicationId}/data-tables/{dataTableId}/rows"
    emu.route("POST", base, "dataTableRows.post", insert)
    emu.route("GET", base, "dataTableRows.get", rows)
    emu.route("POST", base + "/query", "dataTableRows.query", rows)
