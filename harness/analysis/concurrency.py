"""Did the target hold "one running job at a time" as documented? Findings only where the samples prove them.

A job's running time is not visible through the API: an export, archive, clone or
report is accepted (202) and then runs for a while the caller cannot see. So the judge
works with a stated range of job lengths ``[min_s, max_s]`` (``JobLength``) and the
same per-call bounds as the rate judge (``windows.py``): the server decided call i at
some instant in ``[sent_i, sent_i + latency_i]`` (plus ``slack``), and a job accepted
at decision instant d runs over ``[d, d + D)`` for an unknown D in ``[min_s, max_s]``.

That is a sliding log whose window is the job length, so the rate judge's two counts
answer the question, each with its own window:

- ``could(X)`` with window ``max_s``: the most earlier accepted (or unanswered) calls
  of X's key whose job *may* still have been running when X was decided;
- ``sure(X)`` with window ``min_s``: the fewest whose job was *surely* still running
  (decided before X's earliest decision instant, and started less than ``min_s``
  before it, whatever the order).

Verdicts, with ``count`` simultaneous jobs allowed (1 in the documented table):

- a 429 is a **false throttle** when ``could < count``: no earlier accepted call of
  its key could still be running under any job length up to ``max_s``;
- a 429 is **justified** when ``sure >= count``, else **undecided** (an earlier job
  may or may not have ended);
- an accepted call is a **missed throttle** when ``sure >= count``: ``count`` jobs
  were certainly still running. Without a stated minimum job length ``sure`` is 0,
  and nothing can be called missed;
- an accepted call is **undecided** when ``sure < count <= could`` (an earlier job
  may have been running), fine otherwise.

Where the job length comes from (``job_length``): the scenario's
``target.job_seconds`` (a number: exact; ``{min, max}``: a range); else for the
emulator the limits table's ``job_seconds`` (the emulator's own, exact); else (a live
tenant) ``max_s`` = ``ASSUMED_MAX_JOB_S`` (conservative: long jobs only make 429s
harder to call false) and no minimum. ``JobLength.basis`` says which, and every
report and documented row repeats it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.checking import parse_duration
from harness.errors import ConfigError
from harness.limits import Limit, LimitsTable
from harness.record import Samples

from .windows import SLACK, arrange, could_sliding, sure_sliding

ASSUMED_MAX_JOB_S = 3600.0  # a live tenant's job length when nobody states one: an hour (conservative)
RULE = ("A 429 of a one-running-job limit is a false throttle only if no earlier accepted call of its key could "
        "still have been running under any job length up to the stated maximum; an accepted call is a missed "
        "throttle only if an earlier accepted call of its key was certainly still running (started, by the "
        "calls' own send and answer times, less than the stated minimum job length before). Everything else "
        "is undecided, never a finding.")


@dataclass(frozen=True)
class JobLength:
    """The job lengths the judge allows: ``min_s`` (None: unknown, nothing is called missed) to ``max_s``."""

    min_s: float | None
    max_s: float
    basis: str  # where the figures come from, in words

    @property
    def text(self) -> str:
        if self.min_s is not None and self.min_s == self.max_s:
            return f"{self.max_s:g} s"
        low = f"{self.min_s:g}" if self.min_s is not None else "an unknown minimum"
        return f"{low} to {self.max_s:g} s"


def job_length(stated: Any, target_kind: str | None, table: LimitsTable) -> JobLength:
    """The job lengths to judge with (module docstring); ``stated`` is the scenario's ``target.job_seconds``
    (seconds or a duration like ``30s``, or ``{min, max}`` of those, as ``harness.scenario`` accepts it)."""
    where = "target.job_seconds"
    if stated is not None:
        def seconds(value: Any, field: str) -> float:
            try:
                return parse_duration(value)
            except ConfigError as exc:
                raise ConfigError(f"{field}: {exc}") from None

        if isinstance(stated, dict):
            if set(stated) != {"min", "max"}:
                raise ConfigError(f"{where}: {stated!r} is not allowed; expected a duration or {{min: 1s, max: 10m}}")
            low, high = seconds(stated["min"], f"{where}.min"), seconds(stated["max"], f"{where}.max")
        else:
            low = high = seconds(stated, where)
        if high <= 0 or low < 0 or low > high:
            raise ConfigError(f"{where}: {stated!r} is not allowed; expected 0 <= min <= max and max > 0")
        return JobLength(low, high, "stated by the scenario (target.job_seconds)")
    if target_kind == "emulator":
        j = float(table.job_seconds)
        return JobLength(j, j, "the emulator's job_seconds (limits table)")
    return JobLength(None, ASSUMED_MAX_JOB_S,
                     f"not stated: at most {ASSUMED_MAX_JOB_S:g} s assumed (conservative), no minimum known")


@dataclass
class ConcurrencyReport:
    """What the run showed about one concurrency limit."""

    limit: str
    operations: tuple[str, ...]
    count: int  # jobs allowed to run at once per key
    key: str
    job_min_s: float | None
    job_max_s: float
    job_basis: str
    checked: bool = True
    reason: str = ""
    calls: int = 0
    accepted: int = 0
    throttled: int = 0
    no_response: int = 0
    keys: int = 0
    keys_throttled: int = 0
    tolerance_s: float = 0.0
    tested: bool = False  # a 429 came, or some accepted call may have overlapped a running job
    false_throttles: int = 0
    missed_throttles: int = 0
    justified_throttles: int = 0
    undecided_throttles: int = 0
    undecided_accepted: int = 0
    missed_judged: bool = True  # False without a minimum job length: accepted calls cannot be called missed
    rule: str = RULE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ConcurrencyVerdicts:
    """Per-call verdicts of one limit, at sample positions (for the shared marks of ``conformance``)."""

    thr_index: np.ndarray
    thr_false: np.ndarray
    thr_justified: np.ndarray
    thr_could: np.ndarray  # most jobs that may have been running (the bound a false throttle is shown with)
    acc_index: np.ndarray
    acc_missed: np.ndarray
    acc_undecided: np.ndarray
    acc_sure: np.ndarray  # fewest jobs surely running (the bound a missed throttle is shown with)


def judge_concurrency(samples: Samples, limit: Limit, idx: np.ndarray, jobs: JobLength,
                      slack: float = SLACK) -> tuple[ConcurrencyReport, ConcurrencyVerdicts]:
    """Judge the calls at sample positions ``idx`` (all of ``limit``'s operations) against ``limit``.

    A 5xx answer is judged as no answer: the job may or may not have been queued.
    """
    report = ConcurrencyReport(limit.name, limit.operations, limit.count, limit.key, jobs.min_s, jobs.max_s,
                               jobs.basis, tolerance_s=slack, missed_judged=jobs.min_s is not None)
    keys = samples.key[idx]
    window = max(jobs.max_s, jobs.min_s or 0.0)
    status = samples.status[idx]
    status = np.where(status >= 500, 0, status)
    calls = arrange(idx, keys, samples.sent[idx], samples.latency[idx], status, window, slack)
    acc, thr, maybe = calls.acc, calls.thr, calls.maybe
    report.calls, report.accepted, report.throttled, report.no_response = len(calls), len(acc), len(thr), calls.n_unk
    report.keys = len(np.unique(keys)) if len(idx) else 0
    report.keys_throttled = len(np.unique(calls.key_of(thr.s)))
    count = limit.count
    thr_could = could_sliding(maybe, thr.s, thr.e, jobs.max_s)
    acc_could = could_sliding(maybe, acc.s, acc.e, jobs.max_s, 1)
    if jobs.min_s:
        thr_sure = sure_sliding(acc, thr.s, thr.e, jobs.min_s)
        acc_sure = sure_sliding(acc, acc.s, acc.e, jobs.min_s)
    else:
        thr_sure = np.zeros(len(thr), np.int64)
        acc_sure = np.zeros(len(acc), np.int64)
    thr_false = thr_could < count
    thr_justified = ~thr_false & (thr_sure >= count)
    acc_missed = acc_sure >= count
    acc_undecided = ~acc_missed & (acc_could >= count)
    report.false_throttles = int(thr_false.sum())  # conformance recounts: a 429 another limit explains is not false
    report.justified_throttles = int(thr_justified.sum())
    report.undecided_throttles = int((~thr_false & ~thr_justified).sum())
    report.missed_throttles = int(acc_missed.sum())
    report.undecided_accepted = int(acc_undecided.sum())
    report.tested = bool(len(thr)) or bool((acc_could >= count).any())
    verdicts = ConcurrencyVerdicts(thr.index, thr_false, thr_justified, thr_could.astype(float),
                                   acc.index_at(np.arange(len(acc))), acc_missed, acc_undecided,
                                   acc_sure.astype(float))
    return report, verdicts


def judged_text(jobs: JobLength) -> str:
    """Which concurrency rule applied, for a documented row."""
    text = (f"jobs last {jobs.text} ({jobs.basis}): a 429 is false when no earlier accepted call of its key "
            "could still be running")
    if jobs.min_s:
        return text + "; an accepted call is missed when an earlier one was surely still running"
    return text + "; accepted calls cannot be called missed (no minimum job length), overlaps are undecided"


def judged_short(jobs: JobLength) -> str:
    """The same in a few words: 'jobs 2 s (emulator)', 'jobs up to 3600 s (assumed); missed not judged'."""
    source = ("scenario" if jobs.basis.startswith("stated") else "emulator" if "emulator" in jobs.basis
              else "assumed")
    text = f"jobs {jobs.text} ({source})" if jobs.min_s is not None else f"jobs up to {jobs.max_s:g} s ({source})"
    return text if jobs.min_s else text + "; missed not judged"
