"""The size judge: answers over the cap, refusals under it, bodies over it; statuses and error types shown."""

from __future__ import annotations

import numpy as np

from harness.analysis.conformance import check_conformance
from harness.analysis.sizes import request_facts
from harness.limits import MiB, LimitsTable
from harness.record import Samples, classify

TABLE = LimitsTable()
BASE = 1_700_000_000.0


def run(calls: list[tuple[str, str, int, int]]) -> Samples:
    """(op, key, status, nbytes) per call, one every second."""
    ops = sorted({c[0] for c in calls})
    keys = sorted({c[1] for c in calls})
    rows = [(ops.index(op), keys.index(key), BASE + i, BASE + i, 0.05, status, nbytes, classify(status, None))
            for i, (op, key, status, nbytes) in enumerate(calls)]
    cols = list(zip(*rows))
    return Samples(*(np.array(col) for col in cols), op_names=tuple(ops), key_names=tuple(keys))


def sizes_of(result):  # type: ignore[no-untyped-def]
    return {r.limit: r for r in result.sizes}


def rows_of(result):  # type: ignore[no-untyped-def]
    return {d["row"]: d for d in result.documented_rows}


def test_key_facts() -> None:
    assert request_facts("tsq-under@31000000") == ("tsq-under", 31_000_000, "")
    assert request_facts("upload@12!PayloadTooLarge") == ("upload", 12, "PayloadTooLarge")
    assert request_facts("plain") == ("plain", None, "")
    assert request_facts("a@b") == ("a@b", None, "")


def test_answers_within_the_caps_conform() -> None:
    cap = 30 * MiB
    s = run([("data.timeSeriesQuery", "tsq-under@31000000", 200, cap - 1000),
             ("data.timeSeriesQuery", "tsq-over@33000000!Validation", 400, 120),
             ("dataTableRows.get", "rows", 200, 5000), ("dataTableRows.query", "rows", 200, 4000)])
    result = check_conformance(s, TABLE, "probe")
    assert result.findings_total == 0 and result.undecided_total == 0
    ts = sizes_of(result)["data.timeSeriesQuery"]
    assert (ts.accepted, ts.refused, ts.refused_over_cap, ts.max_accepted_bytes) == (1, 1, 1, cap - 1000)
    assert ts.error_types == {"Validation": 1} and ts.statuses == {"200": 1, "400": 1} and ts.tested
    rows = rows_of(result)
    assert rows[16]["verdict"] == "conforms" and rows[16]["refused"] == 1
    assert rows[17]["verdict"] == "not tested" and rows[17]["driven"] == "yes"  # tiny answers prove nothing
    assert rows[18]["verdict"] == "not driven"


def test_answer_over_the_cap_is_a_finding() -> None:
    cap = 20 * MiB
    s = run([("dataTableRows.query", "big", 200, cap + 1), ("dataTableRows.get", "small", 200, cap)])
    result = check_conformance(s, TABLE, "probe")
    assert result.findings_by_kind == {"answer_over_cap": 1}
    (f,) = result.findings
    assert (f.limit, f.op, f.in_window, f.count) == ("dataTableRows.get", "dataTableRows.query", cap + 1, cap)
    assert "answer of 20,971,521 bytes was accepted (status 200)" in f.detail
    assert rows_of(result)[17]["verdict"] == "findings"


def test_refusal_of_a_declared_small_answer_is_a_finding_and_undeclared_is_undecided() -> None:
    s = run([("data.timeSeriesQuery", "tsq-under@1000!Validation", 400, 100),
             ("data.timeSeriesQuery", "tsq", 400, 100)])
    result = check_conformance(s, TABLE, "probe")
    assert result.findings_by_kind == {"refused_under_cap": 1}
    assert "status 400 Validation" in result.findings[0].detail
    assert result.undecided_by_kind["refused"] == 1 and result.undecided_total == 1
    ts = sizes_of(result)["data.timeSeriesQuery"]
    assert (ts.refused_under_cap, ts.undecided_refusals) == (1, 1)
    row = rows_of(result)[16]
    assert (row["findings"], row["undecided"], row["verdict"]) == (1, 1, "findings")


def test_upload_bodies_under_and_over_the_cap() -> None:
    cap = 10 * MiB
    s = run([("files.post", "under", 201, cap - 10), ("files.post", "over!PayloadTooLarge", 413, cap + 10),
             ("files.post", "under2!PayloadTooLarge", 413, cap - 10), ("files.post", "over2", 201, cap + 10),
             ("files.post", "missing", 404, 100)])
    result = check_conformance(s, TABLE, "probe")
    assert result.findings_by_kind == {"refused_under_cap": 1, "accepted_over_cap": 1}
    r = sizes_of(result)["files.post"]
    assert (r.applies_to, r.refused_over_cap, r.other, r.error_types) == ("request body", 1, 1, {"PayloadTooLarge": 2})
    details = sorted(f.detail for f in result.findings)
    assert details[0].startswith("a request body of 10,485,770 bytes was accepted (status 201)")
    assert "refused (status 413 PayloadTooLarge) although the size, 10,485,750 bytes" in details[1]
    row = rows_of(result)[18]
    assert row["statuses"] == {"201": 2, "404": 1, "413": 2} and row["refused"] == 2 and row["findings"] == 2


def test_a_smaller_cap_in_force_is_judged() -> None:
    """The judge follows the table in force (limits.json), whatever the documented figure."""
    from harness.limits import parse_limits

    table = parse_limits({"limits": {"files.post": {"count": 1000}}})
    result = check_conformance(run([("files.post", "x", 201, 1001)]), table, "probe")
    assert result.findings_by_kind == {"accepted_over_cap": 1}
