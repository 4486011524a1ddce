"""HTML tables and ``operations.csv``; every value that came from data goes through ``esc``.

An operation or key name is data, not markup: a key called ``<script>`` must print as
text. So cells are built from plain strings here and escaped in one place (``cell``),
and numbers are formatted by the few helpers below so the page and the CSV agree.
"""

from __future__ import annotations

import csv
import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.report.figures import LABELS, Figures, OpRow, label_supported
from harness.report.rundata import utc


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def ms(seconds: float | None) -> str:
    """Seconds → milliseconds text with about 3 significant digits: '0.412', '12.3', '1,204'."""
    if seconds is None or seconds != seconds:
        return "–"
    v = seconds * 1000.0
    if abs(v) < 10:
        return f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}"
    if abs(v) < 100:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def num(value: float | int | None, digits: int = 1) -> str:
    if value is None or value != value:
        return "–"
    if isinstance(value, int) or float(value).is_integer() and digits == 0:
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def value(v: Any) -> str:
    """A measured value of unknown type, for criteria and findings."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(value(x) for x in v)
    return str(v)


def rel(t: float, t0: float) -> str:
    """Seconds since the start of the run, '+12.5 s'."""
    return f"+{t - t0:,.1f} s"


def cell(text: Any, cls: str = "", raw: bool = False, title: str = "") -> str:
    attrs = (f' class="{esc(cls)}"' if cls else "") + (f' title="{esc(title)}"' if title else "")
    return f"<td{attrs}>{text if raw else esc(text)}</td>"


def table(headers: Sequence[str], rows: Iterable[str], cls: str = "", caption: str = "",
          numeric_from: int = 1) -> str:
    """A table from escaped header names and pre-built ``<tr>`` rows."""
    numeric = ' class="n"'
    head = "".join(f"<th{numeric if i >= numeric_from else ''}>{esc(h)}</th>" for i, h in enumerate(headers))
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (f'<div class="scroll"><table class="{esc(cls)}">{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


OP_HEADERS = ("operation", "count", "rate /s", "errors", "throttled") + tuple(f"{p} ms" for p in LABELS)


def _op_tr(row: OpRow, kind: str, css: str = "") -> str:
    pct = row.corrected if kind == "corrected" else row.response
    cells = [cell(row.op, "op"), cell(num(row.count), "n"), cell(num(row.rate, 2), "n"),
             cell(num(row.errors), "n bad" if row.errors else "n"), cell(num(row.throttled), "n warn" if row.throttled else "n")]
    for p in LABELS:
        if not label_supported(p, row.count):
            # 15 calls have no p99: the figure would only repeat the maximum and read as a measured tail
            cells.append(cell("–", "n muted", title=f"{p}: {row.count} calls cannot resolve it (see max)"))
        else:
            cells.append(cell(ms(pct[p]), "n", title=f"{p} {kind}"))
    return f'<tr class="{css}" data-op="{esc(row.op)}" data-kind="{kind}">{"".join(cells)}</tr>'


def operations(fig: Figures) -> str:
    """Two tables with the same rows: corrected latency and response time, labelled as such."""
    out = []
    for kind, caption in (("corrected", "Corrected latency (from planned send), ms"),
                          ("response", "Response time (from actual send), ms")):
        rows = [_op_tr(r, kind) for r in fig.rows] + [_op_tr(fig.total, kind, "total")]
        out.append(table(OP_HEADERS, rows, cls=f"ops {kind}", caption=caption))
    return "".join(out)


def _csv_ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.6g}"


def write_operations_csv(fig: Figures, path: Path) -> None:
    """The per-operation table for spreadsheets: both latencies, in milliseconds, unrounded."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["operation", "count", "rate_per_s", "errors", "throttled"]
                   + [f"corrected_{p}_ms" for p in LABELS] + [f"response_{p}_ms" for p in LABELS])
        for r in fig.rows + [fig.total]:
            w.writerow([r.op, r.count, "" if r.rate is None else f"{r.rate:.6g}", r.errors, r.throttled]
                       + [_csv_ms(r.corrected[p]) for p in LABELS] + [_csv_ms(r.response[p]) for p in LABELS])


def criteria(verdicts: list[dict[str, Any]]) -> str:
    rows = []
    for v in verdicts:
        status = v.get("status")
        passed = v.get("passed")
        mark, css = (("n/a", "na") if status == "not checked" or passed is None
                     else ("PASS", "pass") if passed else ("FAIL", "fail"))
        rows.append(f'<tr class="{css}">{cell(mark, "badge " + css)}{cell(v.get("name", "?"))}'
                    f'{cell(value(v.get("measured")), "n")}{cell(value(v.get("bound")), "n")}'
                    f'{cell(value(v.get("detail") or v.get("reason") or ""))}</tr>')
    if not rows:
        return '<p class="muted">No criteria were evaluated for this run (no summary.json, or the scenario has none).</p>'
    return table(("", "criterion", "measured", "bound", "note"), rows, cls="criteria", numeric_from=2)


def errors(groups: list[dict[str, Any]], t0: float) -> str:
    if not groups:
        return '<p class="ok">No errors and no throttled calls: every request got a 2xx/3xx answer.</p>'
    rows = []
    for g in groups:
        first, last = float(g["first"]), float(g["last"])
        rows.append(f'<tr>{cell(g["kind"], "kind-" + str(g["kind"]))}{cell(g["status"] or "no response", "n")}'
                    f'{cell(g["op"], "op")}{cell(num(int(g["count"])), "n")}{cell(utc(first))}'
                    f'{cell(rel(first, t0), "n")}{cell(utc(last))}{cell(rel(last, t0), "n")}</tr>')
    note = ('<p class="legend-note">Failed requests by kind: kind "throttled" is the 429s (throttled), every '
            'other kind is an error.</p>')
    return note + table(("kind", "status", "operation", "count", "first", "", "last", ""), rows, cls="errors",
                        numeric_from=9)


def limits(reports: list[dict[str, Any]]) -> str:
    """Documented limit next to what was observed, one row per rate limit the run touched.

    "peak in window" is the most accepted calls one sliding window surely held (at
    least that many, whatever the arrival order); "undecided" counts the 429s and
    accepted calls the bounds cannot decide (never findings).
    """
    rows = []
    for r in reports:
        peak = r.get("max_accepted_in_window")
        count = r.get("count")
        over = isinstance(peak, (int, float)) and isinstance(count, (int, float)) and peak > count
        documented = f"{value(count)} per {value(r.get('window'))} s per {value(r.get('key'))}"
        model = value(r.get("model")) + ("" if r.get("checked", True) else f" (not checked: {r.get('reason', '')})")
        false_, missed, thr = r.get("false_throttles"), r.get("missed_throttles"), r.get("throttled")
        und_t, und_a = r.get("undecided_throttles"), r.get("undecided_accepted")
        undecided = "–" if und_t is None and und_a is None else f"{value(und_t or 0)} / {value(und_a or 0)}"
        tested = r.get("tested")
        rows.append(
            f'<tr data-limit="{esc(r.get("limit", ""))}">{cell(r.get("limit", "?"), "op")}{cell(documented)}'
            f'{cell(value(peak), "n bad" if over else "n")}{cell(value(r.get("calls")), "n")}'
            f'{cell(value(thr), "n warn" if thr else "n")}{cell(value(r.get("keys")), "n")}'
            f'{cell(value(false_), "n bad" if false_ else "n")}{cell(value(missed), "n bad" if missed else "n")}'
            f'{cell(undecided, "n warn" if (und_t or und_a) else "n")}'
            f'{cell("–" if tested is None else ("yes" if tested else "no: not near"))}{cell(model)}</tr>')
    return table(("limit", "documented", "peak in window", "calls", "429s", "keys", "false 429", "missed 429",
                  "undecided 429 / accepted", "tested", "window model"), rows, cls="limits", numeric_from=2)


def throttle_status(conf: dict[str, Any]) -> str:
    """The judge's rule in two sentences, then what it concluded: not tested, findings, or none (with undecided)."""
    rule = conf.get("rule") or ""
    head = f'<p class="legend-note" id="throttle-rule"><b>Rule.</b> {esc(rule)}</p>' if rule else ""
    total = conf.get("findings_total")
    und = conf.get("undecided_total")
    by = conf.get("undecided_by_kind") or {}
    refused = int(by.get("refused") or 0)
    und_text = (f" Undecided (not findings): {int(by.get('throttled', 0)):,} 429s and "
                f"{int(by.get('accepted', 0)):,} accepted calls the bounds cannot judge"
                + (f", and {refused:,} size refusals of undeclared size." if refused else ".")
                if isinstance(und, int) and und else "")
    if conf.get("tested") is False:
        reason = conf.get("not_tested_reason") or "no key came within 10% of a limit"
        return head + f'<div class="alert warn" id="throttle-status">Not tested: {esc(reason)}.</div>'
    if isinstance(total, int) and total:
        kinds = ", ".join(f"{int(n):,} {k.replace('_', ' ')}" for k, n in (conf.get("findings_by_kind") or {}).items())
        return head + (f'<div class="alert fail" id="throttle-status">{total:,} conformance finding'
                       f'{"s" if total != 1 else ""} ({esc(kinds)}).{esc(und_text)}</div>')
    if isinstance(total, int):
        return head + ('<div class="alert ok" id="throttle-status">No finding: no call proves the target departed '
                       f'from the documented limits.{esc(und_text)}</div>')
    return head


def probes(reports: list[dict[str, Any]]) -> str:
    """Probe results per limit that drew 429s: onset, recovery, and the inferred window model and count."""
    rows = []
    for r in reports:
        p = r.get("probe")
        if not isinstance(p, dict):
            continue
        raw = r.get("inference")
        inf: dict[str, Any] = raw if isinstance(raw, dict) else {}
        onset = p.get("onset_count") or {}
        rec = p.get("recovery_s") or {}
        onset_text = (f"{value(onset.get('median'))} ({value(onset.get('min'))} .. {value(onset.get('max'))})"
                      if onset else "–")
        rec_text = (f"{num(rec.get('median'), 2)} s ({num(rec.get('min'), 2)} .. {num(rec.get('max'), 2)})"
                    if rec else "not recovered")
        model = inf.get("model") or inf.get("inferred") or ("not inferred" if not inf else "undetermined")
        count = inf.get("count") if inf else None
        pairs = inf.get("consistent_pairs") or []
        consistent = ", ".join(f"{q.get('model')} {q.get('count')}" for q in pairs) or ("none" if inf else "–")
        rows.append(
            f'<tr data-probe="{esc(r.get("limit", ""))}">{cell(r.get("limit", "?"), "op")}'
            f'{cell(value(p.get("keys_throttled")), "n")}{cell(onset_text, "n")}{cell(rec_text, "n")}'
            f'{cell(model)}{cell("undetermined" if count is None and inf else value(count), "n")}'
            f'{cell(value(inf.get("window_s")) if inf else "–", "n")}{cell(consistent)}</tr>')
    if not rows:
        return ""
    return ("<h3>Probe results</h3>" + table(
        ("limit", "keys throttled", "onset count (median, range)", "recovery (median, range)", "window model",
         "count", "window (s)", "consistent (model count)"), rows, cls="probes", numeric_from=9)
        + '<p class="legend-note">Onset: accepted calls in the window before each key\'s first 429 (bounds over '
        "every allowed arrival order). Recovery: from that 429 to the key's next accepted call. A (model, count) is "
        "consistent when no call proves it wrong; one consistent model or count is named, else undetermined.</p>")


def findings(items: list[dict[str, Any]], total: int | None, t0: float, shown: int = 200,
             tested: bool | None = None) -> str:
    if not items:
        if tested is False:
            return '<p class="muted">No findings, and nothing tested: no key came within 10% of a limit.</p>'
        return '<p class="ok">No conformance findings: no call proves the target departed from the documented limits.</p>'
    rows = [f'<tr>{cell(f.get("kind", "?"), "bad")}{cell(f.get("limit") or "–")}{cell(f.get("op", ""), "op")}'
            f'{cell(f.get("key", ""))}{cell(rel(float(f.get("time") or t0), t0), "n")}'
            f'{cell(value(f.get("in_window")), "n")}{cell(value(f.get("count")), "n")}'
            f'{cell(f.get("detail") or f.get("note", ""))}</tr>'
            for f in items[:shown]]
    total = total if total is not None else len(items)
    shown_n = min(len(items), shown)
    listed = (f"summary.json lists the first {len(items):,}" if len(items) < total
              else "summary.json lists them all")
    tail = (f'<p class="muted">The first {shown_n:,} of {total:,} findings are shown; {listed}.</p>'
            if shown_n < total else "")
    return table(("finding", "limit", "operation", "key", "when", "bound (calls, jobs or bytes)", "limit count", "why"),
                 rows,
                 cls="findings", numeric_from=4) + tail


VERDICT_CSS = {"conforms": "ok", "findings": "bad", "undecided": "warn", "not tested": "warn", "not driven": "muted",
               "not judged": "muted"}


def statuses_text(statuses: dict[str, Any] | None) -> str:
    """'200 × 3, 429 × 1' (status 0 reads 'no answer')."""
    if not statuses:
        return "–"
    return ", ".join(f"{'no answer' if str(s) == '0' else s} × {int(n):,}" for s, n in statuses.items())


def documented_rows(rows: list[dict[str, Any]]) -> str:
    """Every row of the documented table: driven or not, what was observed, the verdict and the rule applied."""
    out = []
    for r in rows:
        verdict = str(r.get("verdict", "?"))
        findings_n = int(r.get("findings") or 0)
        shown = f"{verdict} ({findings_n:,})" if verdict == "findings" else verdict
        driven = str(r.get("driven", "no"))
        refused = r.get("refused")
        judged = str(r.get("judged") or "")
        short = str(r.get("basis") or "") if driven != "no" else ""  # which rule applied, where calls were judged
        note = " · ".join(x for x in (str(r.get("note") or ""), short) if x and x != "–")
        out.append(
            f'<tr data-row="{esc(r.get("row", ""))}" data-verdict="{esc(verdict)}">{cell(r.get("row", "?"), "n")}'
            f'{cell(r.get("name", "?"))}{cell(r.get("documented", ""))}{cell(r.get("limits_in_force", ""), "op")}'
            f'{cell(driven, "" if driven == "yes" else "warn" if driven == "partly" else "muted")}'
            f'{cell(num(r.get("calls") or 0), "n")}{cell(num(r.get("accepted") or 0), "n")}'
            f'{cell(num(refused or 0), "n warn" if refused else "n", title="refused = " + str(r.get("refused_means", "")))}'
            f'{cell(statuses_text(r.get("statuses")))}'
            f'{cell(shown, VERDICT_CSS.get(verdict, ""), title=judged)}{cell(num(r.get("undecided") or 0), "n")}'
            f'{cell(note)}</tr>')
    if not out:
        return '<p class="muted">Not judged: this summary.json predates the documented-rows table.</p>'
    return table(("#", "documented row", "documented", "limit in force", "driven", "calls", "accepted (2xx)",
                  "refused", "statuses", "verdict", "undecided", "judged on / note"), out, cls="documented",
                 numeric_from=99)


def concurrency(reports: list[dict[str, Any]]) -> str:
    """One row per concurrency limit the run called: the job lengths judged with and what they allowed."""
    rows = []
    for r in reports:
        low = r.get("job_min_s")
        jobs = (f"{value(low)} to {value(r.get('job_max_s'))} s" if low != r.get("job_max_s")
                else f"{value(low)} s") if low is not None else f"? to {value(r.get('job_max_s'))} s"
        false_, missed = r.get("false_throttles"), r.get("missed_throttles")
        und = f"{value(r.get('undecided_throttles') or 0)} / {value(r.get('undecided_accepted') or 0)}"
        checked = r.get("checked", True)
        documented = f"{value(r.get('count'))} per {value(r.get('key'))}"
        rows.append(
            f'<tr data-concurrency="{esc(r.get("limit", ""))}">{cell(r.get("limit", "?"), "op")}'
            f'{cell(documented)}{cell(jobs, "n")}'
            f'{cell(value(r.get("calls")), "n")}{cell(value(r.get("accepted")), "n")}'
            f'{cell(value(r.get("throttled")), "n warn" if r.get("throttled") else "n")}'
            f'{cell(value(r.get("justified_throttles")), "n")}'
            f'{cell(value(false_), "n bad" if false_ else "n")}'
            f'{cell(value(missed) if r.get("missed_judged", True) else "not judged", "n bad" if missed else "n")}'
            f'{cell(und, "n warn" if und != "0 / 0" else "n")}'
            f'{cell(r.get("job_basis", "") if checked else "not checked: " + str(r.get("reason", "")))}</tr>')
    if not rows:
        return ""
    return ("<h3>Concurrency limits</h3>" + table(
        ("limit", "documented", "job length judged", "calls", "accepted", "429s", "justified 429", "false 429",
         "missed 429", "undecided 429 / accepted", "job length from"), rows, cls="concurrency", numeric_from=99)
        + '<p class="legend-note">A job\'s running time is not visible through the API. A 429 is false only when '
          "no earlier accepted call of its key could still be running under the longest job length; an accepted "
          "call is missed only when an earlier one was certainly still running (started less than the shortest "
          "job length before). Everything else is undecided, never a finding.</p>")


def sizes(reports: list[dict[str, Any]]) -> str:
    """One row per size cap the run called: statuses, error types, largest sizes, findings."""
    rows = []
    for r in reports:
        found = int(r.get("findings") or 0)
        kinds = ", ".join(f"{int(r.get(k) or 0):,} {k.replace('_', ' ')}"
                          for k in ("answer_over_cap", "accepted_over_cap", "refused_under_cap") if r.get(k))
        types = ", ".join(f"{t} × {n}" for t, n in (r.get("error_types") or {}).items()) or "–"
        cap = f"{r.get('applies_to', '')} ≤ {num(r.get('cap_bytes'))} bytes"
        rows.append(
            f'<tr data-size="{esc(r.get("limit", ""))}">{cell(r.get("limit", "?"), "op")}'
            f'{cell(cap)}'
            f'{cell(value(r.get("calls")), "n")}{cell(statuses_text(r.get("statuses")))}{cell(types)}'
            f'{cell(num(r.get("max_accepted_bytes")), "n")}{cell(num(r.get("max_refused_bytes")), "n")}'
            f'{cell(value(r.get("refused_over_cap")), "n")}'
            f'{cell(kinds or "0", "bad" if found else "")}'
            f'{cell(value(r.get("undecided_refusals")), "n warn" if r.get("undecided_refusals") else "n")}</tr>')
    if not rows:
        return ""
    return ("<h3>Size limits</h3>" + table(
        ("limit", "cap", "calls", "statuses", "error types", "largest accepted (bytes)",
         "largest refused (bytes)", "justified refusals", "findings", "undecided refusals"), rows, cls="sizes",
        numeric_from=99)
        + '<p class="legend-note">Answer caps: an accepted answer over the cap is a finding; a refusal (400/413) is '
          "judged only when the scenario declared the answer's size (else undecided). Request caps: a refusal of a "
          "body at or under the cap, or acceptance of a larger one, is a finding.</p>")
