"""Enforce every rate, concurrency and size row of the ``LimitsTable``.

Counting is per (limit, key value): the key kind of the limit (device, application,
topic, virtual_button, owner, dashboard, notebook, data_table, instance) picks which
part of the request the call is counted against. The call after the ``count``-th in
a window is the first refused; a refused call consumes nothing, because every limit
of an operation is checked before any is charged.

Window models (the documents name none, docs/LIMITS.md):
- ``sliding``: a log of accepted times per key; a call at ``t`` sees those in ``(t - window, t]``.
- ``fixed``: windows aligned to multiples of ``window`` since the epoch of the clock.
- ``token_bucket``: capacity ``count``, refilled at ``count / window`` per second.
Concurrency limits hold a slot for ``job_seconds`` of the (injectable) clock.
Idle keys are swept once the table grows, so memory follows the active key set.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Callable, Mapping

from harness.limits import Limit, LimitsTable

from .errors import throttled

Clock = Callable[[], float]


class _Sliding:
    __slots__ = ("times",)

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def admits(self, limit: Limit, now: float) -> bool:
        times = self.times
        edge = now - (limit.window or 0.0)
        while times and times[0] <= edge:
            times.popleft()
        return len(times) < limit.count

    def charge(self, limit: Limit, now: float) -> None:
        self.times.append(now)

    def idle(self, limit: Limit, now: float) -> bool:
        return not self.times or self.times[-1] <= now - (limit.window or 0.0)


class _Fixed:
    __slots__ = ("index", "used")

    def __init__(self) -> None:
        self.index = -1
        self.used = 0

    def admits(self, limit: Limit, now: float) -> bool:
        index = math.floor(now / (limit.window or 1.0))
        if index != self.index:
            self.index, self.used = index, 0
        return self.used < limit.count

    def charge(self, limit: Limit, now: float) -> None:
        self.used += 1

    def idle(self, limit: Limit, now: float) -> bool:
        return math.floor(now / (limit.window or 1.0)) != self.index


class _Bucket:
    __slots__ = ("tokens", "at")

    def __init__(self) -> None:
        self.tokens = -1.0
        self.at = 0.0

    def admits(self, limit: Limit, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.at = float(limit.count), now
        rate = limit.count / (limit.window or 1.0)
        self.tokens = min(float(limit.count), self.tokens + (now - self.at) * rate)
        self.at = now
        return self.tokens >= 1.0 - 1e-9

    def charge(self, limit: Limit, now: float) -> None:
        self.tokens -= 1.0

    def idle(self, limit: Limit, now: float) -> bool:
        rate = limit.count / (limit.window or 1.0)
        return self.tokens + (now - self.at) * rate >= limit.count


class _Jobs:
    __slots__ = ("ends", "seconds")

    def __init__(self, seconds: float) -> None:
        self.ends: list[float] = []
        self.seconds = seconds

    def admits(self, limit: Limit, now: float) -> bool:
        self.ends = [end for end in self.ends if end > now]
        return len(self.ends) < limit.count

    def charge(self, limit: Limit, now: float) -> None:
        self.ends.append(now + self.seconds)

    def idle(self, limit: Limit, now: float) -> bool:
        return all(end <= now for end in self.ends)


_MODELS = {"sliding": _Sliding, "fixed": _Fixed, "token_bucket": _Bucket}


class Throttle:
    """Admit or refuse (429) one call of an operation against all of its limits."""

    def __init__(self, table: LimitsTable, clock: Clock, job_seconds: float | None = None) -> None:
        self.table = table
        self.clock = clock
        self.job_seconds = table.job_seconds if job_seconds is None else job_seconds
        self._model = _MODELS[table.window_model]
        self._state: dict[tuple[str, str], object] = {}
        self._sweep_at = 4096
        self._counted: dict[str, tuple[Limit, ...]] = {}

    def _limits(self, operation: str) -> tuple[Limit, ...]:
        limits = self._counted.get(operation)
        if limits is None:
            limits = tuple(lim for lim in self.table.for_operation(operation) if lim.kind != "size")
            self._counted[operation] = limits
        return limits

    def check(self, operation: str, keys: Mapping[str, str]) -> None:
        """Charge one call of ``operation``; raise the 429 ApiError if any limit is full.

        ``keys`` maps key kinds to the values of this request, e.g. ``{"device": D,
        "application": A}``. A limit whose key kind is missing from ``keys`` is skipped.
        """
        limits = self._limits(operation)
        if not limits:
            return
        now = self.clock()
        if len(limits) == 1:  # the common case (send state): no bookkeeping list
            limit = limits[0]
            value = keys.get(limit.key)
            if value is not None:
                state = self._state.get((limit.name, value))
                if state is None:
                    state = _Jobs(self.job_seconds) if limit.kind == "concurrency" else self._model()
                    self._state[(limit.name, value)] = state
                if not state.admits(limit, now):  # type: ignore[attr-defined]
                    raise throttled()
                state.charge(limit, now)  # type: ignore[attr-defined]
                if len(self._state) > self._sweep_at:
                    self.sweep()
            return
        picked = []
        for limit in limits:
            value = keys.get(limit.key)
            if value is None:
                continue
            skey = (limit.name, value)
            state = self._state.get(skey)
            if state is None:
                state = _Jobs(self.job_seconds) if limit.kind == "concurrency" else self._model()
                self._state[skey] = state
            if not state.admits(limit, now):  # type: ignore[attr-defined]
                raise throttled()
            picked.append((limit, state))
        for limit, state in picked:
            state.charge(limit, now)  # type: ignore[attr-defined]
        if len(self._state) > self._sweep_at:
            self.sweep()

    def check_device(self, operation: str, device_id: str, application_id: str) -> None:
        """``check(operation, {"device": device_id, "application": application_id})`` without the dict.

        The send-state fast path: one counted limit keyed by device or application, the
        sliding model, is handled inline; anything else goes through ``check``.
        """
        limits = self._counted.get(operation)
        if limits is None or len(limits) != 1 or self._model is not _Sliding or limits[0].kind == "concurrency":
            self.check(operation, {"device": device_id, "application": application_id})
            return
        limit = limits[0]
        kind = limit.key
        if kind == "device":
            skey = (limit.name, device_id)
        elif kind == "application":
            skey = (limit.name, application_id)
        else:
            return  # a key kind this call does not have: skipped, as check() does
        now = self.clock()
        state = self._state.get(skey)
        if state is None:
            state = self._state[skey] = _Sliding()
        times = state.times  # type: ignore[attr-defined]
        edge = now - (limit.window or 0.0)
        while times and times[0] <= edge:
            times.popleft()
        if len(times) >= limit.count:
            raise throttled()
        times.append(now)
        if len(self._state) > self._sweep_at:
            self.sweep()

    def size_cap(self, operation: str) -> int | None:
        """The byte cap of a size row for ``operation`` (answer or body), if any."""
        caps = [lim.count for lim in self.table.for_operation(operation) if lim.kind == "size"]
        return min(caps) if caps else None

    def sweep(self) -> int:
        """Forget keys with nothing left to remember; returns how many were dropped."""
        now = self.clock()
        by_name = {lim.name: lim for lim in self.table.limits}
        dead = [k for k, s in self._state.items() if s.idle(by_name[k[0]], now)]  # type: ignore[attr-defined]
        for k in dead:
            del self._state[k]
        self._sweep_at = max(4096, 2 * len(self._state))
        return len(dead)

    def __len__(self) -> int:
        return len(self._state)
