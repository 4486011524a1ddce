"""Pass/fail criteria: parsed from the scenario's ``criteria`` section, judged on a summary.

```yaml
criteria:
  latency:                 # ms; an operation name, or "*" for all requests pooled together
    device.sendState: {p99: 250, p50: 50}
    "*": {p95: 1000}
  latency_basis: corrected # corrected | response   [corrected]
  max_error_rate: 0.01     # fraction of requests with an error other than 429
  max_throttled_rate: 0.0  # fraction of requests answered 429
  lost_writes: 0           # most lost writes allowed                 [0]
  conformance_findings: 0  # most throttle conformance findings allowed [0]
  min_throughput: 20       # overall requests per second, over the steady window
```

Throughput is judged over the steady window (after the ramp-up, before the stop; see
``throughput.steady_window``), whose bounds the verdict's ``detail`` states. A respect-
mode run in which no key came near a limit gets "not checked" for the conformance
criterion ("not tested: ..."), not a pass it did not earn.

``null`` switches a defaulted criterion off. ``evaluate`` reads only the summary
dict, so an old run's ``summary.json`` can be re-judged with other criteria. A
criterion whose figure was not measured (no read-back, no samples of the operation)
gets status "not checked": it neither passes nor fails the run, and says why.
Latency bounds use the corrected latency by default, because response time hides
the waiting that a stalled sender imposes (coordinated omission).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from harness.checking import Checker, read_yaml

from .percentiles import LABELS

BASES = ("corrected", "response")
FIELDS = ("latency", "latency_basis", "max_error_rate", "max_throttled_rate", "lost_writes",
          "conformance_findings", "min_throughput")


@dataclass(frozen=True)
class Criteria:
    latency: tuple[tuple[str, str, float], ...] = ()  # (op or "*", percentile label, bound ms)
    latency_basis: str = "corrected"
    max_error_rate: float | None = None
    max_throttled_rate: float | None = None
    lost_writes: int | None = 0
    conformance_findings: int | None = 0
    min_throughput: float | None = None


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


def parse_criteria(data: object, where: str = "criteria", known_ops: Iterable[str] | None = None, *,
                   checker: Checker | None = None) -> Criteria:
    """Validate the section; one ``InputError`` (a ``ConfigError``) lists every problem, one per line.

    ``where`` is ``"<file>: criteria"`` as the messages print it; a scenario passes its own
    ``checker`` (at its ``criteria`` section) instead, so these problems join the file's list
    and nothing is raised here.

    >>> parse_criteria({"latency": {"*": {"p99": 500}}}, "s.yaml: criteria").latency
    (('*', 'p99', 500.0),)
    """
    c = checker if checker is not None else Checker.at(where)
    criteria = _parse(c, data, known_ops)
    if checker is None:
        c.check()
    return criteria


def load_criteria(path: str | Path) -> Criteria:
    """The criteria of a file for ``analyze --criteria``: a ``criteria:`` section (a scenario file
    will do) or the section's fields at the top level."""
    data = read_yaml(path, "criteria file")
    section = data.get("criteria", data) if isinstance(data, dict) else data
    return parse_criteria(section, f"{path}: criteria")


def _parse(c: Checker, data: object, known_ops: Iterable[str] | None) -> Criteria:
    if data is None:
        return Criteria()
    if not isinstance(data, dict):
        c.bad("", data, f"a mapping with {', '.join(FIELDS)}")
        return Criteria()
    c.mapping("", data, FIELDS)
    latency: list[tuple[str, str, float]] = []
    lat = c.mapping("latency", data.get("latency"), None,
                    'a mapping of operation name (or "*") to {percentile: bound in ms}')
    known = sorted(set(known_ops)) if known_ops is not None else None
    for op, bounds in lat.items():
        if not isinstance(op, str) or not op:
            c.bad("latency", op, 'an operation name or "*"')
            continue
        if known is not None and op != "*" and op not in known:
            c.unknown(f"latency.{op}", op, known, "operation", '"*" or an operation the harness calls')
            continue
        if not isinstance(bounds, dict) or not bounds:
            c.bad(f"latency.{op}", bounds, f"a mapping of percentile ({', '.join(LABELS)}) to a bound in ms")
            continue
        for label, bound in bounds.items():
            if label not in LABELS:
                c.unknown(f"latency.{op}.{label}", str(label), LABELS, "percentile")
                continue
            value = c.number(f"latency.{op}.{label}", bound, None, lo=0, lo_open=True)
            if value is not None:
                latency.append((op, label, value))
    basis = c.choice("latency_basis", data.get("latency_basis"), BASES, "corrected")
    dflt = Criteria()  # a field left out keeps its default; null switches it off

    def count(name: str, default: int | None) -> int | None:
        return c.number(name, data.get(name), None, lo=0, integer=True) if name in data else default

    return Criteria(
        latency=tuple(latency), latency_basis=basis,
        max_error_rate=c.number("max_error_rate", data.get("max_error_rate"), None, lo=0, hi=1),
        max_throttled_rate=c.number("max_throttled_rate", data.get("max_throttled_rate"), None, lo=0, hi=1),
        lost_writes=count("lost_writes", dflt.lost_writes),
        conformance_findings=count("conformance_findings", dflt.conformance_findings),
        min_throughput=c.number("min_throughput", data.get("min_throughput"), None, lo=0, lo_open=True))


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
