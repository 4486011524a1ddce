"""A command run as a job of an interactive shell: its own process group, its output read as it comes.

Tests wait on what it prints (``wait_for``, ``wait_until``), with a bounded deadline, instead of sleeping.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Callable

from runs import ROOT


class Terminal:
    """``losant-load ...`` as a job of an interactive shell: its own process group, output read as it comes."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self.ended = False  # the output is closed (the process exited)
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_until(self, condition: Callable[[list[str]], bool], timeout: float, what: str = "condition") -> None:
        """Until ``condition(lines printed so far)`` holds; fails at the deadline or when the output ends first."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not condition(self.lines):
                left = deadline - time.monotonic()
                assert left > 0 and not self.ended, f"no {what} within {timeout} s:\n{self.output[-3000:]}"
                self.changed.wait(left)

    def wait_for(self, text: str, timeout: float) -> None:
        """Until a line containing ``text`` was printed."""
        self.wait_until(lambda lines: any(text in line for line in lines), timeout, repr(text))

    def ctrl_c(self) -> None:
        """What a terminal's Ctrl-C does: SIGINT to the whole foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def finish(self, timeout: float) -> int:
        """The exit code, once the process has exited and all its output is read."""
        code = self.proc.wait(timeout)
        deadline = time.monotonic() + 10
        with self.changed:
            while not self.ended and time.monotonic() < deadline:
                self.changed.wait(deadline - time.monotonic())
        return code
