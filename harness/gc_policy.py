"""The garbage collector off the per-request path while a run lasts.

Measured in bench/generator.py, the collector's bookkeeping cost ~15% of the generator's CPU
per request at the default thresholds (bare Locust allocates less per request). So at test
start everything set up so far (modules, scenario, fleet, schemas) is frozen out of the
collector's reach and automatic collection is off; a greenlet collects every ``every``
seconds instead, so cycles are still freed and memory stays bounded; on the small heap left
after freezing that takes a few ms.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import gevent

GC_EVERY = 10.0  # seconds between the run's garbage collections (automatic collection is off)
GC_FULL_EVERY = 6  # every 6th is a full collection, followed by a freeze


class GcPolicy:
    """One per Locust process: the collector greenlet of the run under way, if any."""

    def __init__(self, every: float = GC_EVERY, full_every: int = GC_FULL_EVERY,
                 sleep: Callable[[float], Any] = gevent.sleep,
                 spawn: Callable[[Callable[[], None]], Any] = gevent.spawn) -> None:
        self.every, self.full_every = every, full_every
        self._sleep, self._spawn = sleep, spawn
        self.collector: Any = None  # the collecting greenlet (gevent is untyped)

    def freeze(self) -> None:
        """Freeze the heap set up so far, turn automatic collection off, start collecting on a timer."""
        gc.collect()
        gc.freeze()
        gc.disable()
        if self.collector is None:
            self.collector = self._spawn(self.collect_forever)

    def collect_forever(self) -> None:
        # young generations often (short-lived cycles); a full collection once a minute, then
        # freeze what survived, so the next full one walks only what is new (with a 100,000-device
        # fleet a full walk of every reporter took ~0.5 s, which showed as lateness)
        n = 0
        while True:
            self._sleep(self.every)
            n += 1
            if n % self.full_every:
                gc.collect(1)
            else:
                gc.collect()
                gc.freeze()

    @staticmethod
    def freeze_new() -> None:
        """A user's long-lived setup (reporters, tokens, timeline) joins the frozen heap without a
        walk (``gc.freeze`` moves what is tracked, in constant time). With a 100,000-device fleet
        the first young collection after the users set up walked it for ~350 ms, and the first
        full one ~490 ms (bench/fleet.py); garbage made during setup stays until the run ends."""
        gc.freeze()

    @staticmethod
    def spawning_complete() -> None:
        """Every user has claimed its devices: freeze those long-lived objects (while the run's policy is on)."""
        if not gc.isenabled():
            gc.freeze()

    def thaw(self) -> None:
        """The run is over: stop collecting on a timer, make what was frozen collectable again (the web
        UI may start another run), automatic collection back on."""
        if self.collector is not None:
            self.collector.kill(block=False)
            self.collector = None
        gc.unfreeze()
        gc.enable()
