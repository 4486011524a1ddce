"""Run the emulator for tests and the harness: as a subprocess, or in a thread of this process.

``EmulatorProcess`` is what the harness uses (a real separate server, killable with
``kill -9`` for durability tests); ``start_in_thread`` is a fast in-process server
for tests that need a real socket (the official client is requests-based).

The subprocess runs in a session of its own (as ``setsid`` makes): a terminal's Ctrl-C
goes to the foreground process group only, so it reaches the harness, which still
needs the server to read states back and delete its credentials, and stops it last.
On Linux the kernel also sends it SIGTERM when the harness dies, however it dies
(``PR_SET_PDEATHSIG``), so no emulator outlives the run that started it.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

from .config import DEFAULT_EMAIL, DEFAULT_PASSWORD, EmulatorConfig

_URL = re.compile(r"listening on (http://\S+) ")
_MQTT_URL = re.compile(r"MQTT broker on (mqtt://\S+)")
_ROOT = str(Path(__file__).resolve().parents[2])
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with(parent: int) -> Any:
    """A ``preexec_fn`` asking the kernel for SIGTERM when ``parent`` exits (Linux; elsewhere None).

    The kernel watches the thread that forked, so only a fork from the main OS thread
    is armed (a test starting a server from a short-lived thread keeps it). Between fork
    and the prctl the parent may already have died: then the child's parent is no longer
    ``parent`` and it ends at once.
    """
    if not sys.platform.startswith("linux") or threading.get_native_id() != parent:
        return None
    import ctypes  # noqa: PLC0415 - Linux only

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(0)

    return arm


class EmulatorProcess:
    """``with EmulatorProcess(db="x.db") as emu: emu.url``; options map to CLI flags (``job_seconds`` -> ``--job-seconds``)."""

    def __init__(self, email: str | None = None, password: str | None = None, start_timeout: float = 30.0,
                 stderr: Any = None, **options: Any) -> None:
        self.email = email or DEFAULT_EMAIL
        self.password = password or DEFAULT_PASSWORD
        self.options = options
        self.start_timeout = start_timeout
        self.stderr = stderr
        self.url = ""
        self.mqtt_url = ""  # "" with no_mqtt=True; else mqtt://HOST:PORT (a free port unless mqtt_port is given)
        self.proc: subprocess.Popen[str] | None = None

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "harness.emulator", "--port", str(self.options.get("port", 0)),
                "--email", self.email]
        if "mqtt_port" not in self.options and not self.options.get("no_mqtt"):
            argv += ["--mqtt-port", "0"]  # never the default 1883: runs side by side must not collide
        for name, value in self.options.items():
            if name == "port":
                continue
            flag = "--" + name.replace("_", "-")
            if value is True:
                argv.append(flag)
            elif value not in (None, False):
                argv += [flag, str(value)]
        return argv

    def start(self) -> EmulatorProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = _ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["LOSANT_EMULATOR_PASSWORD"] = self.password  # not on the command line, where ps would show it
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env,
                                     cwd=_ROOT, stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with(os.getpid()))
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        line = ""
        try:
            while time.monotonic() < deadline:
                line = self.proc.stdout.readline()
                if not line:
                    break
                match = _URL.search(line)
                if match:
                    self.url = match.group(1)
                    mqtt = _MQTT_URL.search(line)
                    self.mqtt_url = mqtt.group(1) if mqtt else ""
                    return self
        except BaseException:  # Ctrl-C while it starts: it is in its own session, nobody else stops it
            self.stop()
            raise
        code = self.proc.poll()
        self.stop()
        raise HarnessError(f"emulator did not start (exit code {code}); last output: {line.strip()[:200]!r}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def kill(self) -> None:
        """SIGKILL, as a crash would: for durability tests."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class ThreadHandle:
    """A uvicorn server running the emulator in a daemon thread."""

    def __init__(self, server: Any, thread: threading.Thread, url: str, app: Any) -> None:
        self.server, self.thread, self.url, self.app = server, thread, url, app
        self.front: Any = None

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_in_thread(config: EmulatorConfig | None = None, clock: Any = None, **options: Any) -> ThreadHandle:
    """Serve an in-process emulator on 127.0.0.1, a free port; options are EmulatorConfig fields."""
    import uvicorn  # noqa: PLC0415

    from .app import create_app  # noqa: PLC0415
    from .cli import bind, uvicorn_config  # noqa: PLC0415

    config = config or EmulatorConfig(**options)
    app = create_app(config, clock) if clock is not None else create_app(config)
    sock = bind("127.0.0.1", 0)
    from .faults_admin import front  # noqa: PLC0415

    served = front(app)
    server = uvicorn.Server(uvicorn_config(served, quiet=True, config=config))  # the CLI's connection guards

    def run() -> None:
        asyncio.run(server.serve(sockets=[sock]))

    thread = threading.Thread(target=run, name="emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.01)
    if not server.started:
        raise HarnessError("in-thread emulator did not start")
    handle = ThreadHandle(server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}", app)
    handle.front = served  # the FaultInjector: tests set plans on it directly
    return handle
