"""Probe rounds: push one limit at one key just past its documented count, then let it recover.

A round is the smallest run of calls that shows what the target does at the limit:

- rate (count per window): count + 1 calls of one key back to back, each sent
  ``ROUND_GAP`` after the previous answer, so the server surely decided them in that
  order (the judge allows each decision 0.5 ms either side of a call's interval) and
  all inside one window (the round lasts far less than the window): the last one is
  the first over;
- concurrency (count running jobs): count + 1 job calls back to back, the extra one
  while the first job is certainly still held (jobs run for seconds, the calls take
  milliseconds);
- size caps: one request built to land just under the cap and one just over. For an
  upload the body size is exact; for an answer cap (time series, data table rows) the
  answer size is predicted from two small calibrating queries of the same shape, and
  the prediction travels in the sample key (``label@bytes``) for the judge.

The next round at the same key waits until the previous one can no longer count (the
window, or the longest job, plus a second), so every round starts from zero. Rounds of
one (limit, key) never overlap, even across operators (``RunContext.probe_rounds``).
Calls go through ``LosantUser.call`` like every other: recorded, and admitted by the
ledger for the limits the scenario does not probe.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any, Callable

import orjson

from harness.limits import Limit
from harness.session import RunContext
from harness.users.limited import Objects, Request, file_upload, insert_rows, table_rows

#: Seconds a due round of a shared limit waits for another operation's turn.
TURN_WAIT = 2.0
#: Seconds added to a window (or job) before the next round at the same key.
ROUND_SLACK = 1.0
#: Seconds between one call's answer and the next call of a round: more than the judge's
#: 2 x 0.5 ms decision slack, so consecutive calls' order is certain.
ROUND_GAP = 0.005
#: Distance from an upload cap of the under and over bodies.
UPLOAD_STEP = 1024
#: Characters of each seeded state's string value (the emulator drops strings over 64 KiB).
SEED_STRING = 60_000
#: Seeded states per state call (about 4 MB a body, well under any body cap).
SEED_BATCH = 64
#: Times a seeding state call refused with 429 is sent (one state window apart).
SEED_TRIES = 3
#: Points the time-series probe asks past (and short of) the predicted cap.
POINT_STEP = 2
#: Rows of the data table probe's pages near the cap (each row's value is cap / this long).
ROWS_PER_CAP = 500
#: The most rows one page may ask (the emulator's bound; Losant documents a default of 1,000).
MAX_ROWS_LIMIT = 10_000
#: Rows and bytes of one insert call filling the table (well under any body cap).
INSERT_ROWS = 1000
INSERT_BYTES = 4_000_000

Send = Callable[[Request], tuple[int, Any]]


def driven_operations(ctx: RunContext, limit: Limit) -> list[str]:
    """The operations of ``limit`` this scenario's operators call, in the limit's order."""
    driven = {a.operation for a in ctx.scenario.operators.actions}
    return [op for op in limit.operations if op in driven]


def probed_limit(ctx: RunContext, op: str) -> Limit | None:
    """The limit of ``op`` this probe run pushes (None: the op is paced as usual)."""
    if not ctx.probing:
        return None
    names = ctx.scenario.pacing.probe_limits
    for lim in ctx.limits.for_operation(op):
        if lim.name in names or any(o in names for o in lim.operations):
            return lim
    return None


def run_round(ctx: RunContext, limit: Limit, key: str, body: Callable[[], None], op: str = "") -> None:
    """Run ``body`` as the round of (limit, key) when it is due; otherwise do nothing.

    A limit shared by several operations (clone and applications import: one slot per
    owner) takes its rounds in turn: an operation that ran the last round leaves a due round
    to another one the scenario drives, for up to ``TURN_WAIT`` seconds.
    """
    gate = (limit.name, key)
    now = time.time()
    due, last = ctx.probe_rounds.get(gate, (-math.inf, ""))
    if due > now:
        return
    if op and last == op and now < due + TURN_WAIT:
        driven = {a.operation for a in ctx.scenario.operators.actions}
        if any(o != op and o in driven for o in limit.operations):
            return
    ctx.probe_rounds[gate] = (math.inf, op)  # running: no other operator starts this round
    try:
        body()
    finally:
        if limit.kind == "rate":
            rest = (limit.window or 0.0) + ROUND_SLACK
        elif limit.kind == "concurrency":
            rest = ctx.job_max + ROUND_SLACK
        else:
            rest = math.inf  # one under/over pair per size cap and run
        ctx.probe_rounds[gate] = (time.time() + rest, op)


def count_round(limit: Limit, make: Callable[[], Request], send: Send, sleep: Callable[[float], None]) -> None:
    """count + 1 calls of one key, each ``ROUND_GAP`` after the previous answer (rate and concurrency)."""
    for i in range(limit.count + 1):
        if i:
            sleep(ROUND_GAP)
        send(make())


def upload_round(limit: Limit, objects: Objects, send: Send) -> None:
    for i, (label, size) in enumerate((("file-under", limit.count - UPLOAD_STEP), ("file-over", limit.count + UPLOAD_STEP))):
        send(file_upload(objects, size, i, label=f"{label}@{size}"))


def rows_round(limit: Limit, objects: Objects, ops: Iterable[str], send: Send) -> None:
    """Data table rows: fill the table with equal rows until a page can pass the cap, then for each
    driven operation (get, query) calibrate with 1 and 2 rows and ask one page just under the
    cap and one just over (labels ``rows-under@N`` / ``rows-over@N``, N the predicted answer bytes).

    A table already holding enough rows (a live tenant's table prepared for the probe, or
    the other operation's round) is not filled again; its rows must all be the probe's (the
    prediction assumes equal rows). When the table cannot be filled or read, one page is
    asked with its size undeclared (observed, not judged)."""
    string = max(16, min(SEED_STRING, limit.count // ROWS_PER_CAP))
    needed = limit.count // string + 2 * POINT_STEP + 2
    if needed + 2 * POINT_STEP > MAX_ROWS_LIMIT:
        return  # a cap no page of rows this long can reach within the documented page size
    for op in ops:
        query = op == "dataTableRows.query"
        status, body = send(table_rows(objects, query, 1, label="rows-calibrate"))
        held = body.get("totalCount") if 200 <= status < 300 and isinstance(body, dict) else None
        if not isinstance(held, int):
            send(table_rows(objects, query, 1, label="rows", parse=False))
            continue
        if held < needed and not _fill_table(objects, needed - held, string, send):
            send(table_rows(objects, query, 1, label="rows", parse=False))
            continue
        sizes = []
        for n in (1, 2):
            status, body = send(table_rows(objects, query, n, label="rows-calibrate"))
            sizes.append(len(orjson.dumps(body)) if 200 <= status < 300 and body is not None else 0)
        per = sizes[1] - sizes[0]
        if not (sizes[0] and per > 0):
            continue
        head = sizes[0] - per

        def predicted(n: int) -> int:  # the answer echoes ``limit`` and ``count``: their digits add bytes
            return head + n * per + 2 * (len(str(n)) - 1)

        n_under = max(1, (limit.count - head) // per - POINT_STEP + 1)
        while n_under > 1 and predicted(n_under) > limit.count:
            n_under -= 1
        for n, label in ((n_under, "rows-under"), (n_under + 2 * POINT_STEP, "rows-over")):
            send(table_rows(objects, query, n, label=f"{label}@{predicted(n)}", parse=False))


def _fill_table(objects: Objects, rows: int, string: int, send: Send) -> bool:
    """Insert ``rows`` equal rows of a ``string``-character value, about ``INSERT_BYTES`` a call."""
    per_call = max(1, min(INSERT_ROWS, INSERT_BYTES // (string + 32)))
    value = "x" * string
    for start in range(0, rows, per_call):
        status, _ = send(insert_rows(objects, [{"blob": value} for _ in range(min(per_call, rows - start))]))
        if not 200 <= status < 300:
            return False
    return True


def seed_states(application: str, device: str, attribute: str, points: int, now: float) -> list[Request]:
    """State calls filling ``device`` with ``points`` states of a long string, 1 ms apart, ending
    two minutes before ``now`` (before this run's own reports)."""
    first = int(now * 1000) - 120_000 - points
    value = "x" * SEED_STRING
    out = []
    for start in range(0, points, SEED_BATCH):
        states = [{"time": first + i, "data": {attribute: value}} for i in range(start, min(points, start + SEED_BATCH))]
        out.append(Request("device.sendState", "POST", f"/applications/{application}/devices/{device}/state",
                           {"device": device, "application": application}, states, parse=False))
    return out


def seed_window(now: float, points: int) -> tuple[int, int]:
    """The [start, end] of the seeded states (see ``seed_states``), in ms."""
    first = int(now * 1000) - 120_000 - points
    return first, first + points - 1


def time_series_request(application: str, device: str, attribute: str, window: tuple[int, int], limit: int,
                        label: str) -> Request:
    """A raw-points query of ``limit`` points; the calibrating ones (small) are decoded to size them."""
    body = {"start": window[0], "end": window[1], "aggregation": "NONE", "attributes": [attribute],
            "deviceIds": [device], "limit": limit, "order": "asc"}
    return Request("data.timeSeriesQuery", "POST", f"/applications/{application}/data/time-series-query",
                   {"application": application}, body, parse=limit <= 2, label=label)


def time_series_round(limit: Limit, application: str, device: str, attribute: str, now: float,
                      send: Send, send_sized: Callable[[Request], tuple[int, int]],
                      sleep: Callable[[float], None], state_window: float) -> None:
    """Seed enough long states to pass the answer cap, calibrate, then ask just under and just over.

    A seeding call refused by the state limit (a probe of that limit may share the device)
    is sent again after ``state_window``, up to ``SEED_TRIES`` times."""
    points = limit.count // SEED_STRING + 4 * POINT_STEP + 2
    for req in seed_states(application, device, attribute, points, now):
        for _ in range(SEED_TRIES):
            status, _ = send(req)
            if status != 429:
                break
            sleep(state_window + ROUND_GAP)
        if not 200 <= status < 300:
            return  # the device refused the data: nothing to size the answers with
    window = seed_window(now, points)
    status1, a1 = send_sized(time_series_request(application, device, attribute, window, 1, "tsq-calibrate"))
    status2, a2 = send_sized(time_series_request(application, device, attribute, window, 2, "tsq-calibrate"))
    if not (200 <= status1 < 300 and 200 <= status2 < 300) or a2 <= a1:
        return
    per = a2 - a1
    head = a1 - per
    n_under = max(1, (limit.count - head) // per - POINT_STEP + 1)
    n_over = n_under + 2 * POINT_STEP
    for n, label in ((n_under, "tsq-under"), (n_over, "tsq-over")):
        # the answer echoes ``limit``: its digits beyond the calibration's one digit add bytes
        predicted = head + n * per + len(str(n)) - 1
        send_sized(time_series_request(application, device, attribute, window, n, f"{label}@{predicted}"))
