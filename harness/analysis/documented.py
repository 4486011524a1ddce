"""The 18 rows of the documented table (REFERENCE.md section 8), and what a run showed of each.

The report promises to say, for every documented row, whether the run drove it and
what the judges concluded, so a row the run never touched reads "not driven" instead
of vanishing. A row groups the operations the documents list together (the six
per-application jobs are one row, as are the four per-application exports); its
verdict is judged against whatever limits of the table in force count those
operations (``harness/limits.py``, ``limits.json``), so a merged counter or an
override is followed, not assumed away.

Verdicts: ``not driven`` (no call), ``not judged`` (no limit in force covers the
operations, or the samples key them differently), ``findings`` (some call proves a
departure), ``undecided`` (no finding, but calls the bounds cannot decide),
``not tested`` (driven, but never near the limit: a conformance the run did not
earn), ``conforms`` (the note names any limit of the row that was called but never
came near, and any operation of the row the run did not call).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.limits import Limit, LimitsTable


@dataclass(frozen=True)
class DocumentedRow:
    number: int
    name: str  # as REFERENCE.md words the row
    kind: str  # rate | concurrency | size
    operations: tuple[str, ...]
    documented: str  # the documented figure, in words


ROWS: tuple[DocumentedRow, ...] = (
    DocumentedRow(1, "Device: Send State", "rate", ("device.sendState",), "30 calls per 15 s per device"),
    DocumentedRow(2, "Device: Send Command", "rate", ("device.sendCommand",), "30 calls per 15 s per device"),
    DocumentedRow(3, "Device: Set Connection Status", "rate", ("device.setConnectionStatus",),
                  "30 calls per 15 s per device"),
    DocumentedRow(4, "Application: MQTT Publish Message", "rate", ("application.mqttPublishMessage",),
                  "30 calls per 15 s (per topic [I])"),
    DocumentedRow(5, "Events: Create", "rate", ("events.post",), "15 calls per 15 s per application"),
    DocumentedRow(6, "Workflow: Press Virtual Button", "rate", ("flow.pressVirtualButton",),
                  "100 calls per 10 s per virtual button"),
    DocumentedRow(7, "Device: Data Export", "concurrency", ("device.export",), "1 concurrent per device"),
    DocumentedRow(8, "Data Table Rows: Export", "concurrency", ("dataTableRows.export",),
                  "1 concurrent per data table"),
    DocumentedRow(9, "Embedded Deployments: Export", "rate", ("embeddedDeployments.export",),
                  "1 call per 5 min per application"),
    DocumentedRow(10, "Notebook: Input Data Export", "rate", ("notebook.requestInputDataExport",),
                  "1 call per 15 min per notebook"),
    DocumentedRow(11, "Application: Archive Data, Backfill Archive Data, Export, Full Data Tables Archive, "
                      "Full Events Archive, Import", "concurrency",
                  ("application.archiveData", "application.backfillArchiveData", "application.export",
                   "application.fullDataTablesArchive", "application.fullEventsArchive", "application.import"),
                  "1 concurrent each per application"),
    DocumentedRow(12, "Application: Clone; Applications: Import", "concurrency",
                  ("application.clone", "applications.import"), "1 concurrent per owner"),
    DocumentedRow(13, "Dashboard: Send Report", "concurrency", ("dashboard.sendReport",), "1 concurrent per dashboard"),
    DocumentedRow(14, "Data: Bulk Export; Devices: Export; Devices: Payload Counts; Events: Export", "concurrency",
                  ("data.export", "devices.export", "devices.payloadCounts", "events.export"),
                  "1 concurrent each per application"),
    DocumentedRow(15, "Instance: Generate Report", "concurrency", ("instance.generateReport",),
                  "1 concurrent per instance"),
    DocumentedRow(16, "Data: Time Series Query", "size", ("data.timeSeriesQuery",), "answer at most 30 MB"),
    DocumentedRow(17, "Data Table Rows: Get / Query", "size", ("dataTableRows.get", "dataTableRows.query"),
                  "answer at most 20 MB"),
    DocumentedRow(18, "File upload", "size", ("files.post",), "request body at most 10 MB"),
)
VERDICTS = ("conforms", "findings", "undecided", "not tested", "not driven", "not judged")


def limit_text(lim: Limit) -> str:
    """A limit in force, in words: '30 per 15 s per device', '1 running job per owner', '31,457,280 bytes'."""
    if lim.kind == "rate":
        return f"{lim.count:,} per {lim.window or 0:g} s per {lim.key}"
    if lim.kind == "concurrency":
        return f"{lim.count} running job{'s' if lim.count != 1 else ''} per {lim.key}"
    return f"{lim.count:,} bytes"


def _in_force(limits: list[Limit]) -> str:
    """The limits of a row in words, once when they all say the same ('1 running job per application, each of 6')."""
    if not limits:
        return "none"
    texts = list(dict.fromkeys(limit_text(lim) for lim in limits))
    if len(texts) == 1:
        return texts[0] + (f" (each of {len(limits)} limits)" if len(limits) > 1 else "")
    return "; ".join(f"{lim.name}: {limit_text(lim)}" for lim in limits)


def documented_rows(table: LimitsTable, by_op: Mapping[str, Mapping[str, Any]],
                    reports: Mapping[str, Mapping[str, Any]], judged: Mapping[str, str],
                    basis: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One entry per documented row.

    ``by_op``: per operation the run called, ``calls``, ``accepted``, ``refused``,
    ``statuses``, ``findings``, ``findings_by_kind``, ``undecided``; ``reports``: the
    judges' report per limit name (``tested``, ``checked``, ``reason``); ``judged``:
    per limit name, which rule applied, in words; ``basis``: the same in a few words.
    """
    out = []
    for row in ROWS:
        limits: list[Limit] = []
        for op in row.operations:
            for lim in table.for_operation(op):
                if lim not in limits:
                    limits.append(lim)
        driven_ops = [op for op in row.operations if int((by_op.get(op) or {}).get("calls", 0))]
        entry: dict[str, Any] = {
            "row": row.number, "name": row.name, "kind": row.kind, "operations": list(row.operations),
            "documented": row.documented, "limits": [lim.name for lim in limits],
            "limits_in_force": _in_force(limits),
            "driven": "no" if not driven_ops else ("yes" if len(driven_ops) == len(row.operations) else "partly"),
            "operations_driven": driven_ops,
            "operations_not_driven": [op for op in row.operations if op not in driven_ops],
        }
        statuses: dict[str, int] = {}
        kinds: dict[str, int] = {}
        totals = {"calls": 0, "accepted": 0, "refused": 0, "findings": 0, "undecided": 0}
        for op in driven_ops:
            stats = by_op[op]
            for name in totals:
                totals[name] += int(stats.get(name, 0))
            for s, n in (stats.get("statuses") or {}).items():
                statuses[str(s)] = statuses.get(str(s), 0) + int(n)
            for k, n in (stats.get("findings_by_kind") or {}).items():
                kinds[k] = kinds.get(k, 0) + int(n)
        entry.update(totals)
        entry["refused_means"] = "400 or 413" if row.kind == "size" else "429"
        entry["statuses"] = dict(sorted(statuses.items()))
        entry["findings_by_kind"] = kinds
        rep = [reports[lim.name] for lim in limits if lim.name in reports]  # the limits the run called
        untested = [lim.name for lim in limits if lim.name in reports and not reports[lim.name].get("tested")]
        unchecked = [r for r in rep if r.get("checked") is False]
        entry["judged"] = " / ".join(dict.fromkeys(judged[lim.name] for lim in limits if lim.name in judged)) or "–"
        entry["basis"] = " / ".join(dict.fromkeys((basis or {})[lim.name] for lim in limits
                                                  if lim.name in (basis or {}))) or "–"
        if not driven_ops:
            verdict, note = "not driven", "the run called none of these operations"
        elif not limits:
            verdict, note = "not judged", "no limit in force counts these operations"
        elif totals["findings"]:
            verdict, note = "findings", ""
        elif unchecked:
            verdict, note = "not judged", "; ".join(str(r.get("reason", "")) for r in unchecked)
        elif totals["undecided"]:
            verdict, note = "undecided", "calls the bounds cannot decide (never findings)"
        elif not any(r.get("tested") for r in rep):
            verdict, note = "not tested", "no call came near the limit"
        else:
            verdict, note = "conforms", ("not near the limit: " + ", ".join(untested)) if untested else ""
        if driven_ops and len(driven_ops) < len(row.operations):
            note = "; ".join(x for x in (note, "not driven: " + ", ".join(entry["operations_not_driven"])) if x)
        entry["verdict"], entry["note"] = verdict, note
        out.append(entry)
    return out


def rows_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How many rows were driven and how each was judged (the line the terminal and the report print)."""
    by = {v: sum(1 for r in rows if r.get("verdict") == v) for v in VERDICTS}
    return {"rows": len(rows), "driven": sum(1 for r in rows if r.get("driven") != "no"),
            "fully_driven": sum(1 for r in rows if r.get("driven") == "yes"),
            "by_verdict": {k: v for k, v in by.items() if v}}
