"""The throttle ledger: when may this call go without breaking a documented rate limit?

One ``Ledger`` per process is shared by every user, so an operator's command to a
device and the device's own traffic draw on the same entries (one entry per limit
and key value, e.g. ``("device.sendCommand", <deviceId>)``). Like vegeta's pacer it
answers a question from data: no clock, no sleeping, no I/O. Locust runs users as
greenlets, which never switch inside these methods, so no lock is needed.

Measured the strictest way: a sliding window. A limit of ``count`` calls per
``window`` seconds is met for *every* window model the emulator offers (sliding log,
fixed aligned windows, token bucket of ``count`` tokens) when no closed interval of
length ``window`` holds more than ``count`` send times; in sorted send times that is
``t[i] - t[i-count] > window`` for every i. We plan with ``n`` = the allowed count
below the documented one (``margin``), because the server counts *arrival* times and
those jitter too: sending at exactly 30 per 15 s put 31 arrivals into some window for
nearly every device, while 97.5 % of the rate drew no 429 (ANCHOR-FIGURES.md).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field
from typing import Collection, Literal, Mapping

from harness.limits import Limit, LimitsTable

Mode = Literal["respect", "probe", "off"]
MODES = ("respect", "probe", "off")
#: Planned times sit this far past a window edge, so "more than ``window`` apart" holds
#: after float rounding even for epoch timestamps (one ulp at 1.7e9 s is 2.4e-7 s).
EPSILON = 1e-4
#: Entries looked at per reservation by the incremental sweep: a pass over n entries takes
#: n/16 reservations. A whole sweep at once every 4,096 calls stalled a 100,000-device
#: fleet's generator for ~70 ms every 2.5 s (bench/fleet.py), which showed as lateness.
_SWEEP_STEP = 16


@dataclass(frozen=True)
class Rule:
    """How the ledger paces one limit: at most ``allowed`` calls in any closed ``span``."""

    limit: str
    key: str  # key kind: device, application, topic, ...
    allowed: int
    span: float
    probing: bool = False


def plan_rule(limit: Limit, mode: Mode, margin: float, probe: bool, factor: float) -> Rule:
    """The pacing rule for a rate limit.

    respect: n = floor(count·(1−margin)) calls per window. When that floor would be 0
    (count 1, e.g. one export per 5 min) we keep n = 1 and stretch the span instead,
    span = n·window / (count·(1−margin)), so the long-run rate n/span never exceeds
    count·(1−margin)/window. For count=30, margin=0.025: n = 29, span = 15 s
    (29·15/29.25 = 14.87 < 15, so the window itself is the span).

    probe: calls go evenly at factor × the documented rate: spacing
    s = window / (count·factor), i.e. n = 1 per span s. Then count+1 consecutive calls
    span count·s = window/factor < window, so the (count+1)-th lands inside the window
    of the first and is the first call over the limit.
    """
    window = float(limit.window or 0.0)
    if probe:
        return Rule(limit.name, limit.key, 1, window / (limit.count * factor), probing=True)
    budget = limit.count * (1.0 - margin)
    allowed = max(1, math.floor(budget + 1e-9))
    span = max(window, allowed * window / budget)
    return Rule(limit.name, limit.key, allowed, span)


@dataclass
class _Entry:
    """Reserved send times (sorted) of one limit at one key value, and any back-off."""

    times: list[float] = field(default_factory=list)
    blocked_until: float = -math.inf


class Ledger:
    """Plans send times within the documented limits for every user of a process.

    >>> ledger = Ledger(LimitsTable(), "respect", margin=0.025)
    >>> keys = {"device": "d1"}
    >>> times = [ledger.reserve("device.sendState", keys, 0.0) for _ in range(30)]
    >>> times[28], round(times[29], 4)      # 29 fit in the window; the 30th waits for it to pass
    (0.0, 15.0001)
    """

    def __init__(self, table: LimitsTable, mode: Mode = "respect", margin: float = 0.025,
                 probe_limits: Collection[str] = (), probe_factor: float = 1.5):
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"margin {margin!r}: expected 0 <= margin < 1")
        if mode == "probe" and probe_factor <= 1.0:
            raise ValueError(f"probe_factor {probe_factor!r}: expected > 1")
        self.table = table
        self.mode = mode
        self.margin = margin
        self.probe_limits = frozenset(probe_limits)
        self.probe_factor = probe_factor
        self._rules: dict[str, tuple[Rule, ...]] = {}
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._high_water = -math.inf
        self._sweep_keys: list[tuple[str, str]] = []
        self._sweep_pos = 0
        self._sweep_spans: dict[str, float] = {}
        self._unlimited_429: set[str] = set()

    # -- rules ---------------------------------------------------------------------------------
    def rules(self, operation: str) -> tuple[Rule, ...]:
        """The pacing rules for ``operation`` (rate limits only; concurrency and size caps
        are not a matter of timing)."""
        cached = self._rules.get(operation)
        if cached is None:
            cached = tuple(
                plan_rule(lim, self.mode, self.margin, self._probed(lim), self.probe_factor)
                for lim in self.table.for_operation(operation) if lim.kind == "rate" and lim.window
            )
            self._rules[operation] = cached
        return cached

    def _probed(self, limit: Limit) -> bool:
        """A limit is probed when the scenario names it or one of its operations."""
        return self.mode == "probe" and (limit.name in self.probe_limits
                                         or any(op in self.probe_limits for op in limit.operations))

    def _entries_for(self, operation: str, keys: Mapping[str, str],
                     throttled: bool = False) -> list[tuple[Rule, _Entry]]:
        out = []
        for rule in self.rules(operation):
            try:
                value = keys[rule.key]
            except KeyError:
                raise KeyError(f"{operation} is limited per {rule.key} ({rule.limit}); "
                               f"pass keys={{{rule.key!r}: ...}}, got {sorted(keys)}") from None
            out.append((rule, self._entries.setdefault((rule.limit, value), _Entry())))
        if not out and (throttled or operation in self._unlimited_429):
            # No documented limit, yet the server answered 429: keep its back-off here,
            # per operation and keys. Entries exist only after such a 429.
            self._unlimited_429.add(operation)
            key = ("op:" + operation, "|".join(f"{k}={v}" for k, v in sorted(keys.items())))
            out.append((Rule(operation, "", 1 << 30, 0.0), self._entries.setdefault(key, _Entry())))
        return out

    # -- planning ------------------------------------------------------------------------------
    def earliest(self, operation: str, keys: Mapping[str, str], desired: float) -> float:
        """The time ``reserve`` would return, without recording it."""
        if self.mode == "off":
            return desired
        return self._solve(self._entries_for(operation, keys), desired)

    def reserve(self, operation: str, keys: Mapping[str, str], desired: float) -> float:
        """Plan a call: the earliest time >= ``desired`` within every limit of the
        operation at its key (``keys`` maps key kind → value); the time is recorded."""
        if self.mode == "off":
            return desired
        self._tick(desired)
        pairs = self._entries_for(operation, keys)
        t = self._solve(pairs, desired)
        for rule, entry in pairs:
            if rule.span > 0:
                insort(entry.times, t)
        return t

    def try_reserve(self, operation: str, keys: Mapping[str, str], desired: float,
                    latest: float) -> float | None:
        """``reserve`` unless the planned time would be after ``latest``; then None and
        nothing is recorded (the caller counts a dropped send instead of queueing it)."""
        if self.earliest(operation, keys, desired) > latest:
            return None
        return self.reserve(operation, keys, desired)

    def _solve(self, pairs: list[tuple[Rule, _Entry]], desired: float) -> float:
        # Each rule only ever moves t later, so alternating over the rules until none
        # moves it reaches the earliest time all of them accept.
        t = desired
        while True:
            moved = t
            for rule, entry in pairs:
                moved = _earliest_in(entry, rule, moved, self._high_water)
            if moved == t:
                return t
            t = moved

    # -- throttled answers ---------------------------------------------------------------------
    def on_throttled(self, operation: str, keys: Mapping[str, str], at: float,
                     retry_after: float | None = None) -> float:
        """A call sent at ``at`` got a 429: move later reservations; returns the back-off end.

        With Retry-After, nothing goes before ``at + retry_after``. Without it we wait
        until the oldest call in the window has left it (one slot frees up), or a whole
        span when our ledger saw none (the budget went to callers we cannot see).
        Probed limits are over on purpose and only honour an explicit Retry-After.
        In ``off`` mode nothing changes.
        """
        if self.mode == "off":
            return at
        end = at
        for rule, entry in self._entries_for(operation, keys, throttled=True):
            if retry_after is not None:
                until = at + max(0.0, retry_after)
            elif rule.probing:
                continue
            else:
                times = entry.times
                i = bisect_right(times, at - rule.span)
                inside = times[i:bisect_right(times, at)]
                until = (inside[0] + rule.span + EPSILON) if inside else at + max(rule.span, 1.0)
            entry.blocked_until = max(entry.blocked_until, until)
            end = max(end, until)
        return end

    # -- memory --------------------------------------------------------------------------------
    def _tick(self, desired: float) -> None:
        if desired > self._high_water:
            self._high_water = desired
        self._sweep_some()

    def _sweep_some(self) -> None:
        """Prune the next few entries of a pass over all of them (a fresh pass starts from a
        copy of the keys, so entries added meanwhile wait for the next pass)."""
        keys, i = self._sweep_keys, self._sweep_pos
        if i >= len(keys):
            keys = self._sweep_keys = list(self._entries)
            self._sweep_spans = self._spans()
            i = 0
        end = i + _SWEEP_STEP
        entries, spans = self._entries, self._sweep_spans
        for key in keys[i:end]:
            entry = entries.get(key)
            if entry is not None:
                self._prune_entry(key, entry, spans)
        self._sweep_pos = end

    def prune(self) -> None:
        """Forget what can no longer matter: times older than two spans before the latest
        desired time seen (one span of slack for callers that run a little late)."""
        spans = self._spans()
        for key in list(self._entries):
            self._prune_entry(key, self._entries[key], spans)

    def _spans(self) -> dict[str, float]:
        return {r.limit: r.span for rules in self._rules.values() for r in rules}

    def _prune_entry(self, key: tuple[str, str], entry: _Entry, spans: dict[str, float]) -> None:
        _drop_before(entry, self._high_water - 2 * spans.get(key[0], 0.0))
        if not entry.times and entry.blocked_until < self._high_water:
            del self._entries[key]

    def __len__(self) -> int:
        """Recorded times across all entries (for tests and memory checks)."""
        return sum(len(e.times) for e in self._entries.values())


def _drop_before(entry: _Entry, cutoff: float) -> None:
    i = bisect_left(entry.times, cutoff)
    if i:
        del entry.times[:i]


def _earliest_in(entry: _Entry, rule: Rule, t: float, high_water: float) -> float:
    """Earliest time >= t at which one more call keeps every closed ``span`` within ``allowed``.

    Only the existing times within one span of t can share a window with it. If fewer
    than ``allowed`` are there, t is fine (the common case: a device reporting well
    under its limit costs two bisections). Otherwise see ``_jump``.
    """
    t = max(t, entry.blocked_until)
    if rule.span <= 0:
        return t
    times = entry.times
    if len(times) > 64:
        _drop_before(entry, high_water - 2 * rule.span)
    reach = rule.span + EPSILON
    if bisect_right(times, t + reach) - bisect_left(times, t - reach) < rule.allowed:
        return t
    while (later := _jump(times, t, rule.allowed, rule.span)) is not None:
        t = later
    return t


def _jump(times: list[float], t: float, n: int, span: float) -> float | None:
    """None when inserting t keeps ``new[i+n] - new[i] > span`` for every run through t;
    otherwise the earliest time that can possibly fix every run found too tight.

    Why the jump is safe: let R be the other n times of a tight run (all within one
    span, t among them). For any t' with t < t' <= min(R) + span, R and t' still fit
    in the closed interval [min(R), min(R) + span] (if t' is below min(R) even
    tighter), so n+1 calls would share a window. Hence t' > min(R) + span: we go to
    min(R) + span + EPSILON, the largest such bound over the tight runs, and re-check.
    Each step passes at least one recorded time, so the loop ends.

    Gaps within EPSILON/2 of the span count as tight: float sums like 0.01 + 30·0.5
    land a hair either side of the boundary, and a server may round too.
    """
    limit = span + EPSILON / 2
    p = bisect_right(times, t)  # t's index in the new sequence

    def at(j: int) -> float:
        return times[j] if j < p else (t if j == p else times[j - 1])

    need: float | None = None
    for i in range(max(0, p - n), min(p, len(times) - n) + 1):
        if at(i + n) - at(i) <= limit:
            lowest_other = at(i) if i != p else at(i + 1)
            bound = lowest_other + span + EPSILON
            if need is None or bound > need:
                need = bound
    return need
