"""Pass/fail criteria as a scenario declares them: the section's schema, its parser and the
``Criteria`` value; judging a run against them is the analysis's (``harness.analysis.criteria``).

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

The declaration lives with the scenario, before the stages that run and judge it, so a scenario
file and ``analyze --criteria FILE`` accept exactly the same criteria through one parser, and the
data flow of docs/ARCHITECTURE.md (scenario -> ... -> analysis) holds in the imports too.
``null`` switches a defaulted criterion off.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from harness.checking import Checker, read_yaml

#: The percentiles a latency criterion may bound: the ones every summary reports
#: (``harness.analysis.percentiles.LABELS`` is this tuple).
PERCENTILES: tuple[str, ...] = ("p50", "p90", "p95", "p99", "p99.9", "max")
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
            c.bad(f"latency.{op}", bounds, f"a mapping of percentile ({', '.join(PERCENTILES)}) to a bound in ms")
            continue
        for label, bound in bounds.items():
            if label not in PERCENTILES:
                c.unknown(f"latency.{op}.{label}", str(label), PERCENTILES, "percentile")
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
