"""Ctrl-C as a person expects it.

A terminal sends SIGINT to its foreground process group: the harness only, as the embedded
emulator runs in a session of its own. First Ctrl-C: the load stops, accepted states are read
back, what was gathered is judged (marked incomplete) and the report written; then the run's
credentials are deleted and the emulator stopped (quitting); exit 2. Second: the same without
the disconnect announcements and the read-back (integrity "not checked"). Third: stop the
emulator and quit at once, without a report. (Left to Python, the KeyboardInterrupt lands in
whichever greenlet happens to run.)

A plain ``signal.signal`` handler, not gevent's: gevent runs its handlers from the event loop,
which a CPU-bound analysis holds for tens of seconds, while Python runs this one between two
bytecodes. So it only sets flags, spawns, or exits; it never blocks.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import gevent

from harness.session import run_of
from harness.target import Target

INTERRUPTED = "interrupted before the planned end (SIGINT or SIGTERM)"


def _say(text: str) -> None:  # os.write: the handler may interrupt a print to the same stream
    os.write(sys.stderr.fileno(), (text + "\n").encode())


class Interrupts:
    """The SIGINT handler of one Locust process; ``count`` is how many Ctrl-C it has had."""

    def __init__(self, environment: Any, target: Callable[[], Target | None],
                 say: Callable[[str], None] = _say, spawn: Callable[[Callable[[], None]], Any] = gevent.spawn,
                 exit: Callable[[int], Any] = os._exit) -> None:
        self.environment, self.target = environment, target
        self.say, self.spawn, self.exit = say, spawn, exit
        self.count = 0

    def install(self) -> None:
        signal.signal(signal.SIGINT, self)

    def __call__(self, signum: int = signal.SIGINT, frame: FrameType | None = None) -> None:
        self.count += 1
        environment = self.environment
        run = run_of(environment)
        runner = environment.runner
        if self.count == 1:
            self.say("\nlosant-load: interrupted: stopping the load, reading back and judging what was gathered "
                     "(Ctrl-C again to skip the read-back)")
            if run is not None and runner is not None and runner.state in ("spawning", "running"):
                run.incomplete = INTERRUPTED

            def stop() -> None:
                if runner is not None:
                    runner.quit()
                if environment.web_ui is not None:  # the web UI's greenlet is Locust's main one then
                    environment.web_ui.stop()

            self.spawn(stop)
        elif self.count == 2:
            self.say("losant-load: interrupted again: skipping the read-back; the report is still written and the "
                     "emulator stopped (Ctrl-C once more to quit at once, without a report)")
            if run is not None:
                run.hurried = True
        else:
            self.say("losant-load: quitting at once, without a report")
            target = self.target()
            if target is not None and target.emulator is not None and target.emulator.proc:
                target.emulator.proc.terminate()  # in a session of its own: nobody else stops it
            self.exit(2)
