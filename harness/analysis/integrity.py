"""Lost writes: states the target accepted but does not return when read back.

Pure comparison; the harness logs the state time (ms) of every state an accepted Send
State call carried (a batch call carries several), for every device, and reads the
devices' states back after the run (``harness/readback.py``): all of them, or a random
sample of devices where reads cost (a live tenant).

Times are compared as multisets: if the same time was accepted twice and read back
once, one write is lost. A device missing from ``read_back`` was not read (its read
failed or it was not in the sample) and is never counted as lost or as intact; an
empty list means it was read and nothing came back.

Every figure says what it covered: ``coverage`` is ``all`` (every accepted state of
every device that had one was read back), ``partial`` (all were meant to be read but
some devices' reads failed) or ``sample`` (a random sample of devices was read). For a
sample, ``loss_rate_ruled_out_95`` is the loss rate the sample excludes at 95 %
confidence: had the run lost writes at random at that rate or more, a sample of this
many states would have shown more lost writes than it did at least 95 % of the time
(one-sided Clopper-Pearson bound; with no loss among ``n`` states, ``1 - 0.05**(1/n)``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Times = Sequence[int] | np.ndarray  # state times (epoch ms) of one device, in any order

MAX_LISTED = 100  # lost writes and unread devices listed in the block (the counts are never capped)


@dataclass(frozen=True, order=True)
class LostWrite:
    device: str
    time: int  # state time, epoch milliseconds


def find_lost_writes(sent: Mapping[str, Times], read_back: Mapping[str, Times]) -> list[LostWrite]:
    """Every accepted state time the read-back lacks, sorted by device then time (reference version).

    >>> find_lost_writes({"d1": [1000, 2000, 3000]}, {"d1": [1000, 3000]})
    [LostWrite(device='d1', time=2000)]
    """
    lost: list[LostWrite] = []
    for device in sorted(sent):
        if device not in read_back:
            continue
        missing = Counter(list(sent[device])) - Counter(list(read_back[device]))
        lost.extend(LostWrite(device, t) for t in sorted(missing.elements()))
    return lost


def flatten(times: Mapping[str, Times], devices: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(device index, time) of every time of ``devices``, as two int64 arrays."""
    arrays = [np.asarray(times[d], dtype=np.int64) for d in devices]
    if not arrays:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    return np.repeat(np.arange(len(arrays), dtype=np.int64), lengths), np.concatenate(arrays)


def missing(sd: np.ndarray, st: np.ndarray, rd: np.ndarray, rt: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Multiset difference of (device index, time) pairs, vectorised: sent minus read.

    Returns (lost device index, lost time) sorted by device then time, the number of sent
    pairs found, and the number of read pairs inside their device's sent time range that
    were not sent. Falls back to the reference when the keys would not fit 64 bits.
    """
    empty = np.zeros(0, dtype=np.int64)
    if not len(st):
        return empty, empty, 0, 0
    n_dev = int(max(sd.max(), rd.max() if len(rd) else 0)) + 1
    lo_t = np.full(n_dev, np.iinfo(np.int64).max)
    hi_t = np.full(n_dev, np.iinfo(np.int64).min)
    np.minimum.at(lo_t, sd, st)
    np.maximum.at(hi_t, sd, st)
    inside = (rt >= lo_t[rd]) & (rt <= hi_t[rd]) if len(rt) else np.zeros(0, dtype=bool)
    rd, rt = rd[inside], rt[inside]
    lo = int(st.min())
    if int(st.max()) - lo >= 1 << 32 or n_dev >= 1 << 31:  # the keys would not fit: the slow, exact path
        sent: dict[int, list[int]] = {}
        read: dict[int, list[int]] = {}
        for d, t in zip(sd.tolist(), st.tolist()):
            sent.setdefault(d, []).append(t)
        for d, t in zip(rd.tolist(), rt.tolist()):
            read.setdefault(d, []).append(t)
        lost = [(d, t) for d in sorted(sent) for t in sorted((Counter(sent[d]) - Counter(read.get(d, []))).elements())]
        found = len(st) - len(lost)
        return (np.array([d for d, _ in lost], dtype=np.int64), np.array([t for _, t in lost], dtype=np.int64),
                found, len(rt) - found)
    s_key = (sd << 32) | (st - lo)
    r_key = (rd << 32) | (rt - lo)
    us, cs = np.unique(s_key, return_counts=True)
    ur, cr = np.unique(r_key, return_counts=True)
    got = np.zeros(len(us), dtype=np.int64)
    if len(ur):
        at = np.minimum(np.searchsorted(ur, us), len(ur) - 1)
        hit = ur[at] == us
        got[hit] = cr[at[hit]]
    short = np.maximum(cs - got, 0)
    lost_keys = np.repeat(us, short)  # sorted: by device index, then time
    found = int((cs - short).sum())
    return lost_keys >> 32, (lost_keys & 0xFFFFFFFF) + lo, found, int(len(r_key)) - found


def _compare(sent: Mapping[str, Times], read: Mapping[str, Times],
             devices: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """(lost device index, lost time, found not accepted) over ``devices`` (sorted)."""
    sd, st = flatten(sent, devices)
    rd, rt = flatten(read, devices)
    lost_dev, lost_time, _, extra = missing(sd, st, rd, rt)
    return lost_dev, lost_time, extra


def loss_rate_ruled_out_95(lost: int, n: int) -> float | None:
    """The smallest loss rate a random sample of ``n`` states with ``lost`` lost excludes at 95 %.

    One-sided Clopper-Pearson upper bound: the rate p at which P(X <= lost) = 0.05 for
    X ~ Binomial(n, p). With nothing lost it is ``1 - 0.05 ** (1 / n)``.

    >>> round(loss_rate_ruled_out_95(0, 49), 4), round(loss_rate_ruled_out_95(0, 299), 4)
    (0.0593, 0.01)
    """
    if n <= 0:
        return None
    if lost <= 0:
        return 1.0 - 0.05 ** (1.0 / n)
    if lost >= n:
        return 1.0
    i = np.arange(lost + 1, dtype=np.float64)
    # log C(n, i), cumulatively: log C(n, i+1) = log C(n, i) + log(n - i) - log(i + 1)
    log_binom = np.concatenate(([0.0], np.cumsum(np.log(n - i[:-1]) - np.log(i[:-1] + 1))))

    def cdf(p: float) -> float:
        terms = log_binom + i * math.log(p) + (n - i) * math.log1p(-p)
        top = terms.max()
        return math.exp(top) * float(np.exp(terms - top).sum())

    lo, hi = lost / n, 1.0 - 1e-12
    for _ in range(100):
        mid = (lo + hi) / 2
        if cdf(mid) > 0.05:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-9:
            break
    return hi


def _pct(x: float) -> str:
    """A rate as a short percentage, three significant digits: 0.0593 -> '5.93%'."""
    return f"{x * 100:.3g}%"


def not_checked(reason: str) -> dict[str, Any]:
    """The block when no read-back was done, with the reason and the one-sentence statement."""
    return {"checked": False, "reason": reason, "statement": f"integrity not checked: {reason}"}


def integrity_block(sent: Mapping[str, Times], read_back: Mapping[str, Times] | None,
                    lost: list[LostWrite] | None = None, max_listed: int = MAX_LISTED, *,
                    coverage: str | None = None, accepted_total: int | None = None,
                    devices_total: int | None = None, unread_reasons: Mapping[str, str] | None = None,
                    extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The summary's ``integrity`` section; ``read_back=None`` means not checked.

    ``sent``: accepted state times of the devices chosen for reading (every device with
    accepted states, or the sample); ``read_back``: what came back for the devices read.
    ``accepted_total`` / ``devices_total``: all accepted states / devices with accepted
    states of the run (default: those of ``sent``). ``coverage``: ``"sample"`` when
    ``sent`` is a sample, else derived (``all`` or ``partial``). ``unread_reasons``: why
    a device was not read (device -> reason). Field meanings: docs/SUMMARY.md.
    """
    if read_back is None:
        return not_checked("no read-back was done")
    chosen = sorted(d for d in sent if len(sent[d]))
    read = [d for d in chosen if d in read_back]
    unread = [d for d in chosen if d not in read_back]
    if lost is None:
        lost_dev, lost_time, extra_found = _compare(sent, read_back, read)
        n_lost = int(len(lost_dev))
        listed = [{"device": read[int(i)], "time": int(t)} for i, t in zip(lost_dev[:max_listed], lost_time[:max_listed])]
    else:
        n_lost = len(lost)
        listed = [{"device": lw.device, "time": lw.time} for lw in lost[:max_listed]]
        extra_found = 0
    accepted_checked = sum(len(sent[d]) for d in read)
    accepted_chosen = sum(len(sent[d]) for d in chosen)
    accepted_total = accepted_chosen if accepted_total is None else int(accepted_total)
    devices_total = len(chosen) if devices_total is None else int(devices_total)
    if coverage != "sample":
        coverage = "all" if not unread and len(read) >= devices_total else "partial"
    bound = loss_rate_ruled_out_95(n_lost, accepted_checked) if coverage == "sample" else None
    reasons = Counter((unread_reasons or {}).get(d, "not read") for d in unread)
    block: dict[str, Any] = {
        "checked": True,
        "coverage": coverage,
        "devices_checked": len(read),
        "devices_total": devices_total,
        "accepted_checked": accepted_checked,
        "accepted_total": accepted_total,
        "read_back": accepted_checked - n_lost,
        "lost_writes": n_lost,
        "loss_rate": (n_lost / accepted_checked) if accepted_checked else None,
        "loss_rate_ruled_out_95": bound,
        "lost": listed,
        "devices_unread": len(unread),
        "unread_devices": unread[:max_listed],
        "unread_reasons": dict(reasons.most_common(5)),
        "found_not_accepted": extra_found,
        # the names older readers use (the report, earlier summaries): same figures
        "devices": len(read),
        "accepted": accepted_checked,
    }
    if extra:
        block.update(extra)
    block["statement"] = statement(block)
    block["coverage_note"] = coverage_note(block)
    return block


def coverage_note(block: Mapping[str, Any]) -> str:
    """What a lost-writes figure covered, in a few words (the criterion's detail).

    >>> coverage_note({"coverage": "sample", "devices_checked": 25, "devices_total": 218,
    ...                "accepted_checked": 49, "accepted_total": 840, "loss_rate_ruled_out_95": 0.0593})
    'a sample: 49 of 840 accepted states (25 of 218 devices) read back; rules out a loss rate of 5.93% or more'
    """
    s, s_all = int(block.get("accepted_checked", 0)), int(block.get("accepted_total", 0))
    n, n_all = int(block.get("devices_checked", 0)), int(block.get("devices_total", 0))
    coverage = block.get("coverage")
    if coverage == "all":
        return f"all {s_all:,} accepted states of {n_all:,} {'device' if n_all == 1 else 'devices'} read back"
    text = f"{s:,} of {s_all:,} accepted states ({n:,} of {n_all:,} devices) read back"
    if coverage == "sample":
        bound = block.get("loss_rate_ruled_out_95")
        if bound is not None:
            text += (f"; a loss rate above {_pct(bound)} is ruled out" if block.get("lost_writes")
                     else f"; rules out a loss rate of {_pct(bound)} or more")
        return f"a sample: {text}"
    return f"{text}; {int(block.get('devices_unread', 0)):,} unread"


def statement(block: Mapping[str, Any]) -> str:
    """One sentence saying what was read back, of what, and what was found.

    >>> statement({"checked": True, "coverage": "all", "devices_checked": 218, "devices_total": 218,
    ...            "accepted_checked": 840, "accepted_total": 840, "lost_writes": 236})
    'every accepted state of all 218 devices read back (840 states): 236 lost (28.1%)'
    """
    if not block.get("checked"):
        return f"integrity not checked: {block.get('reason', 'no reason given')}"
    n, n_all = int(block.get("devices_checked", 0)), int(block.get("devices_total", 0))
    s, s_all = int(block.get("accepted_checked", 0)), int(block.get("accepted_total", 0))
    lost = int(block.get("lost_writes", 0))
    found = "none lost" if not lost else f"{lost:,} lost ({_pct(lost / s) if s else '?'}"
    dev = "device" if n_all == 1 else "devices"
    coverage = block.get("coverage")
    if coverage == "all":
        head = f"every accepted state of all {n_all:,} {dev} read back ({s:,} states)"
        return f"{head}: {found}{')' if lost else ''}"
    unread = int(block.get("devices_unread", 0))
    reasons = list(block.get("unread_reasons") or {})
    why = (reasons[0] + (" (and other reasons)" if len(reasons) > 1 else "")) if reasons else "read failed"
    if coverage == "sample":
        head = (f"a random sample of {n:,} of {n_all:,} {dev} read back "
                f"({s:,} of {s_all:,} accepted states")
        head += f"; {unread:,} sampled devices unread: {why})" if unread else ")"
        if lost:
            tail = f"{found} of the sample)"
            bound = block.get("loss_rate_ruled_out_95")
            if bound is not None:
                tail += f"; a loss rate above {_pct(bound)} is ruled out at 95% confidence"
        else:
            tail = found
            bound = block.get("loss_rate_ruled_out_95")
            if bound is not None:
                tail += (f"; a random loss of {_pct(bound)} of writes or more would have shown a lost write "
                         "with 95% probability")
        return f"{head}: {tail}"
    head = (f"accepted states of {n:,} of {n_all:,} {dev} read back ({s:,} of {s_all:,} states; "
            f"{unread:,} {'device' if unread == 1 else 'devices'} unread: {why})")
    return f"{head}: {found}{')' if lost else ''}"
