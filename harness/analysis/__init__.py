"""Judge a run from its samples: pure functions of ``Samples`` and data, no I/O but ``write_summary``.

Modules: ``percentiles`` (exact order statistics, per-bucket series), ``throughput``
(counts, rates), ``windows`` + ``judgement`` + ``conformance`` (did the target throttle
as documented), ``concurrency`` (one running job at a time) and ``sizes`` (answer and
body caps) joined into it, ``documented`` (the 18 documented rows, each driven or not,
with its verdict), ``mqtt`` (MQTT connections, storms and the broker judge, whose findings join
the conformance total), ``integrity`` (lost writes), ``criteria`` (pass/fail against the scenario's ``Criteria``), ``summary``
(``summary.json``; fields in docs/SUMMARY.md).
"""

from harness.scenario.criteria import Criteria, parse_criteria

from .concurrency import JobLength, job_length
from .conformance import Conformance, Finding, LimitReport, check_conformance
from .criteria import Verdict, evaluate, passed
from .integrity import LostWrite, find_lost_writes, integrity_block
from .percentiles import LABELS, exact_percentiles, percentile_series
from .summary import analyze, build_summary, write_summary

__all__ = [
    "LABELS", "Conformance", "Criteria", "Finding", "JobLength", "LimitReport", "LostWrite", "Verdict", "analyze",
    "build_summary", "check_conformance", "evaluate", "exact_percentiles", "find_lost_writes",
    "integrity_block", "job_length", "parse_criteria", "passed", "percentile_series", "write_summary",
]
