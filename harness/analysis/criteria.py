"""Judging a run against its criteria: one ``Verdict`` per criterion, from a summary.

The criteria themselves (the section's schema, ``Criteria``, ``parse_criteria``) are declared
with the scenario, in ``harness.scenario.criteria``, one stage before this one.

Throughput is judged over the steady window (after the ramp-up, before the stop; see
``throughput.steady_window``), whose bounds the verdict's ``detail`` states. A respect-
mode run in which no key came near a limit gets "not checked" for the conformance
criterion ("not tested: ..."), not a pass it did not earn.

``evaluate`` reads only the summary dict, so an old run's ``summary.json`` can be re-judged
with other criteria. A criterion whose figure was not measured (no read-back, no samples of
the operation) gets status "not checked": it neither passes nor fails the run, and says why.
Latency bounds use the corrected latency by default, because response time hides
the waiting that a stalled sender imposes (coordinated omission).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from harness.scenario.criteria import Criteria


@dataclass(frozen=True)
class Verdict:
    name: str
    bound: float | int | None
    measured: float | int | None
    passed: bool | None  # None: not checked
    status: str  # "pass" | "fail" | "not checked"
    unit: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _verdict(name: str, bound: Any, measured: Any, ok: bool | None, unit: str = "", detail: str = "") -> Verdict:
    status = "not checked" if ok is None else ("pass" if ok else "fail")
    return Verdict(name, bound, measured, ok, status, unit, detail)


def evaluate(criteria: Criteria, summary: dict[str, Any]) -> list[Verdict]:
    """One verdict per criterion, with what was measured, in the order of the schema."""
    out: list[Verdict] = []
    basis_key = "corrected_latency_ms" if criteria.latency_basis == "corrected" else "response_time_ms"
    basis_name = "corrected latency" if criteria.latency_basis == "corrected" else "response time"
    overall = summary.get("overall") or {}
    ops = summary.get("operations") or {}
    for op, label, bound in criteria.latency:
        name = f"{basis_name} {label} of {'all requests' if op == '*' else op}"
        block = overall if op == "*" else ops.get(op)
        measured = ((block or {}).get(basis_key) or {}).get(label)
        if measured is None:
            out.append(_verdict(name, bound, None, False, "ms", "no samples of this operation in the run"))
        else:
            out.append(_verdict(name, bound, measured, measured <= bound, "ms"))
    count = overall.get("count", 0)
    for name, field_name, rate in (("error rate (errors other than 429)", "max_error_rate", "error_rate"),
                                   ("throttled rate (429s)", "max_throttled_rate", "throttled_rate")):
        bound = getattr(criteria, field_name)
        if bound is not None:
            measured = overall.get(rate) if count else None
            ok = None if measured is None else measured <= bound
            out.append(_verdict(name, bound, measured, ok, "fraction", "" if count else "no requests"))
    if criteria.min_throughput is not None:
        measured, detail = steady_throughput(overall)
        ok = None if measured is None else measured >= criteria.min_throughput
        out.append(_verdict("throughput", criteria.min_throughput, measured, ok, "requests/s",
                            detail if measured is not None else "no requests"))
    if criteria.lost_writes is not None:
        integ = summary.get("integrity") or {}
        if integ.get("checked"):
            lost = int(integ.get("lost_writes", len(integ.get("lost") or [])))
            out.append(_verdict("lost writes", criteria.lost_writes, lost, lost <= criteria.lost_writes,
                                detail=integ.get("coverage_note", "")))
        else:
            out.append(_verdict("lost writes", criteria.lost_writes, None, None,
                                detail=integ.get("reason", "integrity was not checked")))
    if criteria.conformance_findings is not None:
        conf = summary.get("conformance") or {}
        total = conf.get("findings_total")
        ok = None if total is None else total <= criteria.conformance_findings
        detail = "" if total is not None else "conformance was not checked"
        if conf.get("tested") is False and not total:
            # nothing came near a limit: zero findings would read as a pass the run never earned
            ok, detail = None, not_tested(conf)
        out.append(_verdict("throttle conformance findings", criteria.conformance_findings, total, ok,
                            detail=detail))
    return out


def not_tested(conf: dict[str, Any]) -> str:
    """'not tested: <reason>' for a conformance block whose ``tested`` is false."""
    return f"not tested: {conf.get('not_tested_reason') or 'no key came near a documented limit'}"


def steady_throughput(overall: dict[str, Any]) -> tuple[float | None, str]:
    """The throughput a criterion judges, and the window it was measured over, in words.

    The steady window's rate (after the ramp-up, before the stop) when the summary has it;
    older summaries have only the whole run's ``throughput_rps``."""
    window = overall.get("steady_window")
    steady = overall.get("steady_throughput_rps")
    if not isinstance(window, dict) or steady is None:
        return overall.get("throughput_rps"), "over the whole run, ramp-up and stop included"
    if window.get("whole_run"):
        return steady, f"over {window.get('how') or 'the whole run'}"
    return steady, (f"over the steady window {window.get('start_offset_s', 0):.1f} s .. "
                    f"{window.get('end_offset_s', 0):.1f} s ({window.get('how', '')})")


def measure_text(value: Any, unit: str = "") -> str:
    """A verdict's measured value or bound in its unit (fractions as percentages, counts with
    separators): one wording for the terminal and junit.xml."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, (int, float)):
        return str(value)
    if unit == "fraction":
        return f"{value:.2%}"
    if unit == "requests/s":
        return f"{value:,.1f} req/s"
    text = f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"
    return f"{text} ms" if unit == "ms" else text


def passed(verdicts: list[Verdict]) -> bool:
    """The run passes when no verdict failed ("not checked" is not a failure)."""
    return all(v.passed is not False for v in verdicts)
