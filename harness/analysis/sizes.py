"""Did the target keep the documented size caps? Findings only where the bytes prove them.

Two kinds of cap (``harness/limits.py`` size rows, ``count`` = bytes):

- **answer caps** (Time Series Query 30 MB, Data Table Rows Get/Query 20 MB): the
  sample's ``nbytes`` is the answer body. An accepted answer (2xx) larger than the cap
  is a finding (``answer_over_cap``). A refusal (400 or 413, the statuses the
  documents leave open) says nothing of the answer it did not send, so it is judged
  only when the scenario declared the answer size it built the request to have
  (the sample key's ``@<bytes>`` suffix, see ``request_facts``): a declared size at or
  under the cap refused is a finding (``refused_under_cap``), over it is justified,
  and an undeclared refusal is **undecided**.
- **request caps** (File upload 10 MB): ``nbytes`` is the request body the harness
  sent (harness/record.py). A refusal (400 or 413) of a body at or under the cap is a
  finding (``refused_under_cap``); acceptance of a larger one is a finding
  (``accepted_over_cap``).

Any other status (404, 401, 5xx, no answer) is shown, not judged; a 429 on these
operations is the rate judge's (an undocumented throttle). The error type of a
refusal is the key's ``!<Type>`` suffix when the harness recorded one (the samples
have no other place for it); statuses always come from the samples.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harness.limits import Limit
from harness.record import Samples

REFUSAL_STATUSES = (400, 413)
SIZE_KINDS = ("answer_over_cap", "refused_under_cap", "accepted_over_cap")
REQUEST_BODY_OPS = ("files.post",)  # ops whose cap is on the request body (nbytes = bytes sent)
NEAR = 0.9  # a cap is tested when a call came within 10% of it (or a refusal came)
_FACTS = re.compile(r"^(?P<label>.*?)(?:@(?P<bytes>\d+))?(?:!(?P<type>[A-Za-z][\w.-]*))?$")
RULE = ("A size cap is broken only by bytes the samples show: an accepted answer over the cap, an accepted request "
        "body over the cap, or a refusal (400/413) of a request body at or under the cap, or of a query whose "
        "declared answer size is at or under the cap. A refused query with no declared size is undecided.")


def request_facts(key_name: str) -> tuple[str, int | None, str]:
    """(label, declared bytes or None, error type or "") from a size row's sample key ``label[@bytes][!Type]``."""
    m = _FACTS.match(key_name)
    if m is None:  # the pattern matches every string; kept for type checkers
        return key_name, None, ""
    declared = m.group("bytes")
    return m.group("label"), int(declared) if declared is not None else None, m.group("type") or ""


def applies_to(limit: Limit) -> str:
    """"request body" or "answer": what the cap measures."""
    if "request" in limit.note or all(op in REQUEST_BODY_OPS for op in limit.operations):
        return "request body"
    return "answer"


@dataclass
class SizeReport:
    """What the run showed about one size cap."""

    limit: str
    operations: tuple[str, ...]
    cap_bytes: int
    applies_to: str
    calls: int = 0
    accepted: int = 0
    refused: int = 0  # 400 or 413
    other: int = 0  # any other status, no answer included
    statuses: dict[str, int] = field(default_factory=dict)
    error_types: dict[str, int] = field(default_factory=dict)  # of refusals, where the key carries one
    max_accepted_bytes: int | None = None
    max_refused_bytes: int | None = None  # request bodies, or declared answer sizes
    tested: bool = False
    answer_over_cap: int = 0
    accepted_over_cap: int = 0
    refused_under_cap: int = 0
    refused_over_cap: int = 0  # justified refusals
    undecided_refusals: int = 0  # refused queries with no declared answer size
    rule: str = RULE

    @property
    def findings(self) -> int:
        return self.answer_over_cap + self.accepted_over_cap + self.refused_under_cap

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "findings": self.findings}


@dataclass
class SizeVerdicts:
    """Per-call verdicts at sample positions: findings (kind index into ``SIZE_KINDS``) and undecided ones."""

    finding_index: np.ndarray
    finding_kind: np.ndarray
    finding_bytes: np.ndarray  # the measured or declared size each finding is about
    undecided_index: np.ndarray


def judge_sizes(samples: Samples, limit: Limit, idx: np.ndarray) -> tuple[SizeReport, SizeVerdicts]:
    """Judge the calls at sample positions ``idx`` (all of ``limit``'s operations) against its cap."""
    cap = int(limit.count)
    body = applies_to(limit) == "request body"
    report = SizeReport(limit.name, limit.operations, cap, applies_to(limit))
    status = samples.status[idx]
    nbytes = samples.nbytes[idx]
    ok = (status >= 200) & (status < 300)
    refused = np.isin(status, REFUSAL_STATUSES)
    report.calls, report.accepted, report.refused = len(idx), int(ok.sum()), int(refused.sum())
    report.other = report.calls - report.accepted - report.refused
    values, counts = np.unique(status, return_counts=True)
    report.statuses = {str(int(v)): int(c) for v, c in zip(values, counts)}
    # declared sizes and error types live in the key names: parse each distinct key once
    codes, inverse = np.unique(samples.key[idx], return_inverse=True)
    facts = [request_facts(samples.key_names[c] if c < len(samples.key_names) else "") for c in codes.tolist()]
    declared = np.array([-1 if f[1] is None else f[1] for f in facts], np.int64)[inverse] if len(idx) else \
        np.zeros(0, np.int64)
    for i in np.flatnonzero(refused).tolist():
        kind = facts[inverse[i]][2]
        if kind:
            report.error_types[kind] = report.error_types.get(kind, 0) + 1
    if ok.any():
        report.max_accepted_bytes = int(nbytes[ok].max())
    kinds = np.full(len(idx), -1, np.int8)
    size = nbytes.astype(np.int64)
    if body:
        over = ok & (nbytes > cap)
        kinds[over] = SIZE_KINDS.index("accepted_over_cap")
        under = refused & (nbytes <= cap)
        kinds[under] = SIZE_KINDS.index("refused_under_cap")
        report.refused_over_cap = int((refused & (nbytes > cap)).sum())
        undecided = np.zeros(len(idx), bool)
        if refused.any():
            report.max_refused_bytes = int(nbytes[refused].max())
        near = (nbytes >= NEAR * cap).any()
    else:
        over = ok & (nbytes > cap)
        kinds[over] = SIZE_KINDS.index("answer_over_cap")
        known = refused & (declared >= 0)
        under = known & (declared <= cap)
        kinds[under] = SIZE_KINDS.index("refused_under_cap")
        size = np.where(refused, declared, size)
        report.refused_over_cap = int((known & (declared > cap)).sum())
        undecided = refused & (declared < 0)
        if known.any():
            report.max_refused_bytes = int(declared[known].max())
        # an answered call is near by its measured bytes (its declaration may have been wrong), a refusal by
        # its declared size
        near = bool((nbytes[ok] >= NEAR * cap).any()) or bool((declared[refused] >= NEAR * cap).any())
    report.answer_over_cap = int((kinds == SIZE_KINDS.index("answer_over_cap")).sum())
    report.accepted_over_cap = int((kinds == SIZE_KINDS.index("accepted_over_cap")).sum())
    report.refused_under_cap = int((kinds == SIZE_KINDS.index("refused_under_cap")).sum())
    report.undecided_refusals = int(undecided.sum())
    report.tested = bool(near) or report.refused > 0
    hit = np.flatnonzero(kinds >= 0)
    return report, SizeVerdicts(idx[hit], kinds[hit], size[hit], idx[undecided])


def judged_text(limit: Limit) -> str:
    """Which size rule applied, for a documented row."""
    cap = f"{limit.count:,} bytes"
    if applies_to(limit) == "request body":
        return (f"request body cap {cap}: a refusal (400/413) of a body at or under it, or acceptance of a larger "
                "one, is a finding")
    return (f"answer cap {cap}: an accepted answer over it is a finding; a refusal (400/413) is a finding when the "
            "scenario declared an answer at or under it, undecided when it declared none")


def finding_detail(kind: str, nbytes: int, cap: int, status: int, error_type: str) -> str:
    answer = f"status {status}" + (f" {error_type}" if error_type else "")
    return {
        "answer_over_cap": f"an answer of {nbytes:,} bytes was accepted ({answer}); the cap is {cap:,} bytes",
        "accepted_over_cap": f"a request body of {nbytes:,} bytes was accepted ({answer}); the cap is {cap:,} bytes",
        "refused_under_cap": f"refused ({answer}) although the size, {nbytes:,} bytes, is within the cap of "
                             f"{cap:,} bytes",
    }[kind]
