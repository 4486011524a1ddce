"""Open-loop timelines: when each device *should* send, whatever the server does.

Report k of a device is due at ``start + phase + k·interval + jitter_k``, computed
from k alone (k6's constant-arrival-rate, not a chain of sleeps), so slow answers
make sends late (measured as lateness, and corrected in the latencies) but never
move the plan. Jitter is a pure function of (seed, k): every Locust worker computes
the same plan, and ``at(k)`` is random access.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Literal, NamedTuple, Sequence

if TYPE_CHECKING:
    from harness.scenario.model import DeviceClass

Action = Literal["state", "poll_commands"]
_MASK = (1 << 64) - 1


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts, equal in every process (``hash()`` is salted).

    >>> stable_seed("smoke", "sensors") == stable_seed("smoke", "sensors")
    True
    """
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a fast, well-spread 64-bit hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def unit(seed: int, k: int) -> float:
    """A uniform number in [0, 1) that depends only on (seed, k)."""
    return (_mix64(_mix64(seed & _MASK) ^ (k & _MASK)) >> 11) / float(1 << 53)


_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0


@functools.lru_cache(maxsize=64)
def _golden_ranks(n: int) -> tuple[int, ...]:
    """rank[i] = position of frac(i/φ) among frac(0/φ) .. frac((n−1)/φ), a permutation of 0..n−1."""
    order = sorted(range(n), key=lambda i: (i * _INV_PHI) % 1.0)
    rank = [0] * n
    for r, i in enumerate(order):
        rank[i] = r
    return tuple(rank)


def phase_of(i: int, n: int, interval: float, seed: int) -> float:
    """Phase offset in [0, interval) of device i of n (see ``spread_phases``)."""
    # Slots j·interval/n are evenly spaced. Device i takes the slot of rank(frac(i/φ)),
    # rotated by the seed: the golden-ratio sequence is the most even one for every
    # prefix (three-distance theorem: the first k points leave gaps of at most three
    # sizes, the smallest about 0.38/k), so any run of consecutive devices (the
    # first users spawned during ramp-up, one user's slice of a class) is itself
    # spread over the interval, not just the whole fleet.
    return ((_golden_ranks(n)[i] + seed) % n) * interval / n


def spread_phases(n: int, interval: float, seed: int) -> list[float]:
    """Phase offsets in [0, interval) for n devices so the fleet does not report in lock-step.

    The offsets are the evenly spaced slots ``j·interval/n`` (any two devices at least
    ``interval/n`` apart, every slice of the interval holding its share), dealt out in
    golden-ratio order from a seed-chosen start (``phase_of``). Ranks are computed once
    per n (one sort, cached).

    >>> sorted(spread_phases(4, 10.0, seed=7))
    [0.0, 2.5, 5.0, 7.5]
    """
    return [phase_of(i, n, interval, seed) for i in range(max(0, n))]


@dataclass(frozen=True)
class DeviceTimeline:
    """Planned send times of one device's recurring action.

    ``jitter`` is a fraction of the interval (0..0.5): report k moves later by
    ``u_k·jitter·interval`` with u_k uniform in [0, 1). One-sided jitter keeps
    t_0 >= start + phase and consecutive reports at least (1 − jitter)·interval
    apart, since t_{k+1} − t_k = interval + (u_{k+1} − u_k)·jitter·interval
    > interval − jitter·interval; over n reports the mean rate stays 1/interval.

    >>> tl = DeviceTimeline(start=100.0, interval=10.0, phase=2.5)
    >>> tl.at(0), tl.at(3)
    (102.5, 132.5)
    """

    start: float
    interval: float
    phase: float = 0.0
    jitter: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.interval > 0:
            raise ValueError(f"interval {self.interval!r}: expected > 0")
        if not 0.0 <= self.jitter <= 0.5:
            raise ValueError(f"jitter {self.jitter!r}: expected 0..0.5")

    def at(self, k: int) -> float:
        """Planned time of occurrence k (k >= 0)."""
        base = float(self.start + self.phase + k * self.interval)
        return base + unit(self.seed, k) * self.jitter * self.interval if self.jitter else base

    def index_at(self, t: float) -> int:
        """The first k whose planned time is >= t (to skip what can no longer be sent)."""
        # at(k) lies in [base_k, base_k + jitter·interval), so k is at most one above
        # floor((t − start − phase)/interval) and at least two below it.
        k = max(0, math.floor((t - self.start - self.phase) / self.interval) - 1)
        while self.at(k) < t:
            k += 1
        return k

    def times(self, until: float, first: int = 0) -> Iterator[float]:
        """Planned times from occurrence ``first`` while before ``until``."""
        k = first
        while (t := self.at(k)) < until:
            yield t
            k += 1


class Due(NamedTuple):
    planned: float
    device_index: int
    action: Action


class FleetTimeline:
    """Many devices' timelines merged into one due-queue (the multiplexed mode).

    ``streams`` are (device_index, action, timeline); a heap keyed by each stream's
    next planned time gives ``next_time()`` in O(1) and ``pop_due`` in O(log n) per
    send. Ties break by device index, then action, so the order is reproducible.

    >>> fl = FleetTimeline([(0, "state", DeviceTimeline(0, 10, 1)), (1, "state", DeviceTimeline(0, 10, 6))])
    >>> fl.next_time(), fl.pop_due(7.0)
    (1.0, [Due(planned=1.0, device_index=0, action='state'), Due(planned=6.0, device_index=1, action='state')])
    """

    def __init__(self, streams: Iterable[tuple[int, Action, DeviceTimeline]], until: float = math.inf):
        self.until = until
        self._timelines: list[DeviceTimeline] = []
        self._heap: list[tuple[float, int, int, int, int]] = []  # (planned, device, action#, k, stream)
        self._actions: list[Action] = []
        for device_index, action, timeline in streams:
            s = len(self._timelines)
            self._timelines.append(timeline)
            self._actions.append(action)
            t = timeline.at(0)
            if t < until:
                self._heap.append((t, device_index, _ACTION_ORDER[action], 0, s))
        heapq.heapify(self._heap)

    @classmethod
    def for_devices(cls, n: int, interval: float, jitter: float, poll_interval: float | None = None, *,
                    start: float, seed: int = 0, first: int = 0, of: int | None = None,
                    polls: Sequence[bool] | None = None, until: float = math.inf) -> FleetTimeline:
        """The timeline of one user's n devices (device_index 0..n-1 in the result).

        They are devices ``first .. first+n-1`` of a class of ``of`` (default n) devices, so
        users that each drive a slice of a class still spread over the interval together
        (pass the same ``seed`` to all of them, e.g. ``stable_seed(run_tag, class_name)``).
        ``polls[i]`` says whether device i polls commands (default: all do, when
        ``poll_interval`` is set). ``start`` is when the user starts (its clock, e.g. time.time()).
        """
        return cls(device_streams(n, interval, jitter, poll_interval, start=start, seed=seed, first=first,
                                  of=of, polls=polls), until)

    def __len__(self) -> int:
        """Streams with sends still ahead."""
        return len(self._heap)

    def next_time(self) -> float | None:
        """Planned time of the next send, or None when every stream is past ``until``."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float, limit: int | None = None) -> list[Due]:
        """Every send planned at or before ``now`` (at most ``limit``), in planned order;
        each stream's following send takes its place in the queue."""
        out: list[Due] = []
        heap = self._heap
        while heap and heap[0][0] <= now and (limit is None or len(out) < limit):
            planned, device, order, k, s = heap[0]
            out.append(Due(planned, device, self._actions[s]))
            nxt = self._timelines[s].at(k + 1)
            if nxt < self.until:
                heapq.heapreplace(heap, (nxt, device, order, k + 1, s))
            else:
                heapq.heappop(heap)
        return out

    def skip_to(self, now: float) -> int:
        """Drop every send planned before ``now`` (a stalled caller catching up); returns
        how many were dropped, to be counted, not silently lost."""
        dropped = 0
        keep = []
        for planned, device, order, k, s in self._heap:
            if planned < now:
                k2 = self._timelines[s].index_at(now)
                dropped += k2 - k
                planned, k = self._timelines[s].at(k2), k2
            if planned < self.until:
                keep.append((planned, device, order, k, s))
        heapq.heapify(keep)
        self._heap = keep
        return dropped


_ACTION_ORDER: dict[str, int] = {"state": 0, "poll_commands": 1}


def device_streams(n: int, interval: float, jitter: float, poll_interval: float | None = None, *,
                   start: float, seed: int = 0, first: int = 0, of: int | None = None,
                   polls: Sequence[bool] | None = None, offset: int = 0) -> list[tuple[int, Action, DeviceTimeline]]:
    """The streams of ``FleetTimeline.for_devices``, with device indexes starting at ``offset``,
    so the slices of several classes (a Locust worker's share of the fleet) merge into one timeline."""
    total = n if of is None else of
    streams: list[tuple[int, Action, DeviceTimeline]] = []
    for i in range(n):
        g = first + i
        streams.append((offset + i, "state", DeviceTimeline(start, interval, phase_of(g, total, interval, seed),
                                                            jitter, stable_seed(seed, "state", g))))
        if poll_interval is not None and (polls is None or polls[i]):
            phase = phase_of(g, total, poll_interval, seed ^ 0x5A5A)
            streams.append((offset + i, "poll_commands", DeviceTimeline(start, poll_interval, phase, jitter,
                                                                        stable_seed(seed, "poll", g))))
    return streams


def class_timelines(device_class: DeviceClass, start: float, seed: int,
                    action: Action = "state") -> list[DeviceTimeline]:
    """One timeline per device of the class.

    ``state``: every device in ``device_class.devices()`` order (a gateway reports for
    itself and for each peripheral).
    ``poll_commands``: one per device that connects itself (standalone device or gateway
    number ``PlannedDevice.index``), at
    ``command_poll_interval``; empty when the class never polls. Phases are spread
    over the interval across the whole class; the seed is per (seed, class, action).
    """
    if action == "state":
        n, interval = device_class.total_devices, device_class.report_interval
    else:
        if device_class.command_poll_interval is None:
            return []
        n, interval = device_class.count, device_class.command_poll_interval
    class_seed = stable_seed(seed, device_class.name, action)
    phases = spread_phases(n, interval, class_seed)
    return [DeviceTimeline(start, interval, phases[i], device_class.jitter, stable_seed(class_seed, i))
            for i in range(n)]


def fleet_streams(state: Sequence[DeviceTimeline], polls: Sequence[DeviceTimeline | None] = ()
                  ) -> list[tuple[int, Action, DeviceTimeline]]:
    """Streams for ``FleetTimeline`` from per-device state timelines (index = position)
    and optional per-device poll timelines (None for devices that do not poll)."""
    streams: list[tuple[int, Action, DeviceTimeline]] = [(i, "state", tl) for i, tl in enumerate(state)]
    streams += [(i, "poll_commands", tl) for i, tl in enumerate(polls) if tl is not None]
    return streams
