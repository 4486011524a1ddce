"""The throttle ledger: when may this call go without breaking a documented rate limit?

One ``Ledger`` per process is shared by every user, so an operator's command to a
device and the device's own traffic draw on the same entries (one entry per limit
and key value, e.g. ``("device.sendCommand", <deviceId>)``). Like vegeta's pacer it
answers a question from data: no clock, no sleeping, no I/O (callers pass times in).
Locust runs users as greenlets, which never switch inside these methods, so no lock
is needed.

**What the target must see.** A limit of ``count`` calls per ``window`` seconds is met
for *every* window model the emulator offers (sliding log, fixed aligned windows,
token bucket of ``count`` tokens refilled at ``count/window``) when no closed interval
of length ``window`` holds more than ``count`` of the instants at which the target
*decides* the calls: a fixed window is inside such an interval, and an interval of
length T in [kW, (k+1)W) then holds at most (k+1)·count <= count + T·count/W calls,
which a bucket of ``count`` tokens refilled at count/W admits.

**Respect mode: each call is charged over its whole [send, answer] interval and
admitted at its actual send time** (``admit`` right before the request goes out,
``done`` when its answer, or its error, comes back). The target decides a call at
an instant σ we cannot see, somewhere in [s, e]: s = when we admitted and sent it,
e = when its answer arrived (e = +inf while it is in flight). The admission rule for
an entry allowing C calls per W: a call may go at time t only if

    #{earlier calls i of this entry with e_i >= t - W - EPSILON, in-flight ones included} <= C - 1.

Claim: then no closed interval of length W holds more than C decision instants,
whatever the latencies, pauses and concurrency. Proof: take any window [a, a+W] and
X, the latest-admitted call whose σ lies in it. Every other call j with σ_j in it
was admitted no later than X, and e_j >= σ_j >= a >= σ_X - W >= s_X - W, so j was
counted (in flight, or ended within W of s_X) when X was admitted: at most C - 1
others, plus X. No timing margin is needed (a call waits until W + EPSILON after the
*answer* of the call whose place it takes), so C = the documented count
(``margin`` 0; a margin > 0, for a live tenant shared with other callers, plans
floor(count·(1−margin))). A backlog after a stall of the target or of the generator
is re-spaced on actual time: the late calls are admitted one by one as the rule
allows (callers wait or drop them), never bunched beyond C. The achieved rate is C
per (W + latency): 99.9 % of the documented rate at millisecond latencies. A refused
(429) call is charged too (conservative). One caveat: a call we gave up on (a client
timeout) that the target still decides later is charged only until we gave up; the
client's timeout (30 s) is far longer than any pause this guards against.

**Concurrency limits** ("one running job per key") are paced by the same rule with
W = the job length J and C = the count: job i runs during [σ_i, σ_i + J] with σ_i <= e_i,
so a job still running at a new call's decision σ >= t has e_i >= σ_i > t - J and was
counted when the call was admitted: at most C - 1 others run beside it. J is the
table's ``job_seconds`` (the emulator's), or the longest the scenario says the target's
jobs run (``RunContext`` passes it in).

**MQTT** (``harness.schedule.mqtt``): a CONNECT and a state PUBLISH are admitted and charged
the same way, by the broker's rows of ``LimitsTable.mqtt`` (a CONNECT until its CONNACK, a
PUBLISH until its PUBACK), under the keys the broker counts (application, device and topic,
connection).

**Probe mode** plans the probed limits on *planned* times instead (``reserve``):
evenly spaced at ``factor`` × the documented rate, so the (count+1)-th call lands
inside the window of the first and is the first one over; every other limit is
admitted as in respect mode. **Off** paces nothing.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, replace
from typing import Collection, Mapping, Union

from harness.limits import PACING_MODES, Limit, LimitsTable, PacingMode
from harness.schedule.mqtt import MQTT_OPERATIONS

Mode = PacingMode
MODES = PACING_MODES

#: Times sit this far past a window edge, so "more than ``window`` apart" holds after
#: float rounding even for epoch timestamps (one ulp at 1.7e9 s is 2.4e-7 s).
EPSILON = 1e-4
#: Entries looked at per reservation or admission by the incremental sweep: a pass over
#: n entries takes n/16 calls. A whole sweep at once every 4,096 calls stalled a
#: 100,000-device fleet's generator for ~70 ms every 2.5 s (bench/fleet.py), which
#: showed as lateness.
_SWEEP_STEP = 16


@dataclass(frozen=True)
class Rule:
    """How the ledger paces one limit: at most ``allowed`` calls in any closed ``span``."""

    limit: str
    key: str  # key kind: device, application, topic, ...
    allowed: int
    span: float
    probing: bool = False


def paced_limit(limit: Limit, job_seconds: float) -> Limit | None:
    """The limit as the pacing rule sees it: a rate limit as it is, a concurrency limit as
    ``count`` calls per job length (see the module docstring), a size cap not at all."""
    if limit.kind == "rate" and limit.window:
        return limit
    if limit.kind == "concurrency" and job_seconds > 0:
        return replace(limit, window=job_seconds)
    return None


def plan_rule(limit: Limit, mode: Mode, margin: float, probe: bool, factor: float) -> Rule:
    """The pacing rule for a rate limit.

    respect (and the limits a probe leaves alone): n = floor(count·(1−margin)) calls per
    window; with the default margin 0, n = count and span = window. When the floor would
    be 0 (count 1 with a margin, e.g. one export per 5 min) we keep n = 1 and stretch the
    span instead, span = n·window / (count·(1−margin)), so the long-run rate n/span never
    exceeds count·(1−margin)/window.

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


class _Planned:
    """Reserved (planned) send times, sorted, of one probed limit at one key value."""

    __slots__ = ("times", "blocked_until")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.blocked_until = -math.inf


class _Admitted:
    """One limit at one key value in respect mode: calls in flight, and when each ended
    call stops counting (its answer time + span + EPSILON; sorted, only future ones kept)."""

    __slots__ = ("releases", "in_flight", "blocked_until", "hold", "allowed")

    def __init__(self, rule: Rule) -> None:
        self.releases: list[float] = []
        self.in_flight = 0
        self.blocked_until = -math.inf
        self.hold = rule.span + EPSILON if rule.span > 0 else 0.0
        self.allowed = rule.allowed

    def wait(self, now: float) -> float:
        """The earliest time >= ``now`` a call may go (``now`` itself: it may go now).

        A call counts at t while t < its release, and an in-flight call until at least
        now + hold. With k in flight and the m future releases r sorted, a call may go
        at t once at most allowed-1-k releases are later than t: t = r[m - allowed + k].
        With k >= allowed the answer is a lower bound (now + hold): ask again then.
        """
        rel = self.releases
        if rel and rel[0] <= now:
            del rel[:bisect_right(rel, now)]
        t = self.blocked_until if self.blocked_until > now else now
        k = self.in_flight
        n = len(rel) + k - self.allowed
        if n < 0:
            return t
        if k >= self.allowed:
            free = now + self.hold
        else:
            free = rel[n]
        return free if free > t else t


#: What ``admit`` returns when the call may go: the entries it was charged to (hand it
#: back to ``done``). Empty for a call no limit paces.
Ticket = tuple[_Admitted, ...]
NO_TICKET: Ticket = ()
Entry = Union[_Planned, _Admitted]


class Ledger:
    """Paces calls within the documented limits for every user of a process.

    >>> ledger = Ledger(LimitsTable(), "respect")
    >>> keys = {"device": "d1"}
    >>> tickets = [ledger.admit("device.sendState", keys, 0.0) for _ in range(30)]
    >>> ledger.admit("device.sendState", keys, 0.0)     # 30 in flight: ask again a window later
    15.0001
    >>> for ticket in tickets: ledger.done(ticket, 0.002)
    >>> ledger.admit("device.sendState", keys, 1.0)     # a window after the first answer
    15.0021
    >>> isinstance(ledger.admit("device.sendState", keys, 15.0021), tuple)
    True
    """

    def __init__(self, table: LimitsTable, mode: Mode = "respect", margin: float = 0.0,
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
        self._planned_rules: dict[str, tuple[Rule, ...]] = {}
        self._admitted_rules: dict[str, tuple[Rule, ...]] = {}
        self._entries: dict[tuple[str, str], Entry] = {}
        self._high_water = -math.inf
        self._sweep_keys: list[tuple[str, str]] = []
        self._sweep_pos = 0
        self._sweep_spans: dict[str, float] = {}
        self._unlimited_429: set[str] = set()

    # -- rules ---------------------------------------------------------------------------------
    def rules(self, operation: str) -> tuple[Rule, ...]:
        """The pacing rules for ``operation`` (rate and concurrency limits; size caps are
        not a matter of timing). None in ``off`` mode."""
        cached = self._rules.get(operation)
        if cached is None:
            limits = self.table.for_operation(operation) or tuple(
                lim for lim in self.table.mqtt if lim.name in MQTT_OPERATIONS.get(operation, ()))
            paced = [(lim, paced_limit(lim, self.table.job_seconds)) for lim in limits]
            cached = () if self.mode == "off" else tuple(
                plan_rule(as_rate, self.mode, self.margin, self._probed(lim), self.probe_factor)
                for lim, as_rate in paced if as_rate is not None
            )
            self._rules[operation] = cached
            self._planned_rules[operation] = tuple(r for r in cached if r.probing)
            self._admitted_rules[operation] = tuple(r for r in cached if not r.probing)
        return cached

    def _probed(self, limit: Limit) -> bool:
        """A limit is probed when the scenario names it or one of its operations."""
        return self.mode == "probe" and (limit.name in self.probe_limits
                                         or any(op in self.probe_limits for op in limit.operations))

    def _value(self, operation: str, rule: Rule, keys: Mapping[str, str]) -> str:
        try:
            return keys[rule.key]
        except KeyError:
            raise KeyError(f"{operation} is limited per {rule.key} ({rule.limit}); "
                           f"pass keys={{{rule.key!r}: ...}}, got {sorted(keys)}") from None

    def _planned_for(self, operation: str, keys: Mapping[str, str]) -> list[tuple[Rule, _Planned]]:
        if operation not in self._rules:
            self.rules(operation)
        out: list[tuple[Rule, _Planned]] = []
        for rule in self._planned_rules[operation]:
            key = (rule.limit, self._value(operation, rule, keys))
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Planned()
            out.append((rule, entry))  # type: ignore[arg-type]
        return out

    def _admitted_for(self, operation: str, keys: Mapping[str, str],
                      throttled: bool = False) -> list[tuple[Rule, _Admitted]]:
        if operation not in self._rules:
            self.rules(operation)
        out: list[tuple[Rule, _Admitted]] = []
        entries = self._entries
        for rule in self._admitted_rules[operation]:
            key = (rule.limit, self._value(operation, rule, keys))
            entry = entries.get(key)
            if entry is None:
                entry = entries[key] = _Admitted(rule)
            out.append((rule, entry))  # type: ignore[arg-type]
        if throttled and not self._rules[operation]:
            # No documented limit, yet the server answered 429: keep its back-off here,
            # per operation and keys. Entries exist only after such a 429.
            self._unlimited_429.add(operation)
            rule = Rule(operation, "", 1 << 30, 0.0)
            key = _op_key(operation, keys)
            entry = entries.get(key)
            if entry is None:
                entry = entries[key] = _Admitted(rule)
            out.append((rule, entry))  # type: ignore[arg-type]
        return out

    # -- respect: admission at the actual send time ----------------------------------------------
    def admit(self, operation: str, keys: Mapping[str, str], now: float) -> Ticket | float:
        """May a call of ``operation`` at ``keys`` go now?

        Yes: a ``Ticket`` (the call is recorded as in flight; pass the ticket to ``done``
        when its answer or error arrives). No: the earliest time it might (ask again
        then; when only calls in flight stand in the way, a lower bound). Call it in the
        same greenlet step as the send itself, with ``now`` = the current time.
        """
        rules = self._admitted_rules.get(operation)
        if rules is None:
            self.rules(operation)
            rules = self._admitted_rules[operation]
        if not rules:
            if operation in self._unlimited_429:  # an undocumented limit answered 429: its back-off
                entry = self._entries.get(_op_key(operation, keys))
                if entry is not None and entry.blocked_until > now:
                    return entry.blocked_until
            return NO_TICKET
        self._tick(now)
        pairs = self._admitted_for(operation, keys)
        if len(pairs) == 1:  # the common case: one limit
            entry = pairs[0][1]
            t = entry.wait(now)
            if t > now:
                return t
            entry.in_flight += 1
            return (entry,)
        t = now
        for _, entry in pairs:
            w = entry.wait(now)
            if w > t:
                t = w
        if t > now:
            return t
        for _, entry in pairs:
            entry.in_flight += 1
        return tuple(entry for _, entry in pairs)

    def done(self, ticket: Ticket, ended_at: float) -> None:
        """The call admitted with ``ticket`` ended (answer, error or give-up) at ``ended_at``:
        it keeps counting until ``ended_at`` + span + EPSILON."""
        for entry in ticket:
            entry.in_flight -= 1
            release = ended_at + entry.hold
            rel = entry.releases
            if not rel or release >= rel[-1]:
                rel.append(release)
            else:
                insort(rel, release)

    def in_flight(self, operation: str, keys: Mapping[str, str]) -> int:
        """Calls of this operation's (most loaded) entry still waiting for an answer."""
        return max((e.in_flight for _, e in self._admitted_for(operation, keys)), default=0)

    # -- probe: planned times ---------------------------------------------------------------------
    def earliest(self, operation: str, keys: Mapping[str, str], desired: float) -> float:
        """The time ``reserve`` would return, without recording it."""
        if self.mode != "probe":
            return desired
        return self._solve(self._planned_for(operation, keys), desired)

    def reserve(self, operation: str, keys: Mapping[str, str], desired: float) -> float:
        """Plan a call on the probed limits: the earliest time >= ``desired`` within every
        probed limit of the operation at its key (``keys`` maps key kind → value); the time
        is recorded. Limits not probed (every limit outside probe mode) are kept by
        ``admit`` at the actual send time instead: for them this returns ``desired``."""
        if self.mode != "probe":
            return desired
        self._tick(desired)
        pairs = self._planned_for(operation, keys)
        t = self._solve(pairs, desired)
        for rule, entry in pairs:
            if rule.span > 0:
                insort(entry.times, t)
        return t

    def try_reserve(self, operation: str, keys: Mapping[str, str], desired: float,
                    latest: float) -> float | None:
        """``reserve`` unless the planned time would be after ``latest``; then None and
        nothing is recorded (the caller counts a dropped send instead of queueing it)."""
        if self.mode != "probe":
            return desired
        if self.earliest(operation, keys, desired) > latest:
            return None
        return self.reserve(operation, keys, desired)

    def _solve(self, pairs: list[tuple[Rule, _Planned]], desired: float) -> float:
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
        """A call answered at ``at`` got a 429: hold its entries; returns the back-off end.

        With Retry-After, nothing goes before ``at + retry_after``. Without it we wait
        until the oldest call counted in the window has left it (one slot frees up), or
        a whole span when our ledger saw none (the budget went to callers we cannot
        see). Probed limits are over on purpose and only honour an explicit Retry-After.
        In ``off`` mode nothing changes.
        """
        if self.mode == "off":
            return at
        end = at
        pairs: list[tuple[Rule, Entry]] = [*self._planned_for(operation, keys),
                                           *self._admitted_for(operation, keys, throttled=True)]
        for rule, entry in pairs:
            if retry_after is not None:
                until = at + max(0.0, retry_after)
            elif rule.probing:
                continue
            elif isinstance(entry, _Planned):
                times = entry.times
                i = bisect_right(times, at - rule.span)
                inside = times[i:bisect_right(times, at)]
                until = (inside[0] + rule.span + EPSILON) if inside else at + max(rule.span, 1.0)
            else:
                rel = entry.releases
                later = rel[bisect_right(rel, at):]
                until = later[0] if later else at + max(rule.span, 1.0)
            entry.blocked_until = max(entry.blocked_until, until)
            end = max(end, until)
        return end

    # -- memory --------------------------------------------------------------------------------
    def _tick(self, now: float) -> None:
        if now > self._high_water:
            self._high_water = now
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
        """Forget what can no longer matter: planned times older than two spans before the
        latest time seen (one span of slack for callers that run a little late), releases
        already past, entries with nothing left and nothing in flight."""
        spans = self._spans()
        for key in list(self._entries):
            self._prune_entry(key, self._entries[key], spans)

    def _spans(self) -> dict[str, float]:
        return {r.limit: r.span for rules in self._rules.values() for r in rules}

    def _prune_entry(self, key: tuple[str, str], entry: Entry, spans: dict[str, float]) -> None:
        hw = self._high_water
        if isinstance(entry, _Admitted):
            rel = entry.releases
            if rel and rel[0] <= hw:
                del rel[:bisect_right(rel, hw)]
            if not rel and not entry.in_flight and entry.blocked_until < hw:
                del self._entries[key]
            return
        _drop_before(entry, hw - 2 * spans.get(key[0], 0.0))
        if not entry.times and entry.blocked_until < hw:
            del self._entries[key]

    def __len__(self) -> int:
        """Recorded times (planned, pending releases, in flight) across all entries."""
        return sum(len(e.times) if isinstance(e, _Planned) else len(e.releases) + e.in_flight
                   for e in self._entries.values())


def _op_key(operation: str, keys: Mapping[str, str]) -> tuple[str, str]:
    return "op:" + operation, "|".join(f"{k}={v}" for k, v in sorted(keys.items()))


def _drop_before(entry: _Planned, cutoff: float) -> None:
    i = bisect_left(entry.times, cutoff)
    if i:
        del entry.times[:i]


def _earliest_in(entry: _Planned, rule: Rule, t: float, high_water: float) -> float:
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
