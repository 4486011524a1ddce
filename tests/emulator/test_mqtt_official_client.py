"""The official ``losant-mqtt`` Python client (paho-mqtt < 2, so in a venv of its own) against the broker.

The venv is made once per machine under the temporary folder and reused; the test is
skipped, saying so, only when the package index cannot be reached.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import pytest
from mqtt_support import World, wait_until

CLIENT = "losant-mqtt==1.2.1"
SCRIPT = Path(__file__).with_name("official_mqtt_device.py")
UNREACHABLE = ("No matching distribution", "Could not find a version", "connection", "Network is unreachable",
               "Temporary failure in name resolution")


def _venv() -> Path:
    """A venv holding the official client, built atomically (renamed into place) and reused."""
    home = Path(tempfile.gettempdir()) / f"losant-load-{CLIENT.replace('==', '-')}-py{sys.version_info[0]}{sys.version_info[1]}"
    python = home / "bin" / "python"
    if python.exists():
        return python
    build = Path(tempfile.mkdtemp(prefix="losant-mqtt-venv-"))
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(build)], check=True, capture_output=True, timeout=120)
    pip = subprocess.run([str(build / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", CLIENT],
                         capture_output=True, text=True, timeout=300)
    if pip.returncode != 0:
        shutil.rmtree(build, ignore_errors=True)
        output = (pip.stdout + pip.stderr).strip()
        if any(word.lower() in output.lower() for word in UNREACHABLE):
            pytest.skip(f"cannot install {CLIENT} from the package index (pip: {output.splitlines()[-1][:200]})")
        raise AssertionError(f"pip install {CLIENT} failed: {output[-1000:]}")
    try:
        os.rename(build, home)
    except OSError:  # another run made it meanwhile
        shutil.rmtree(build, ignore_errors=True)
    return python


# the first run on a machine builds the venv (about a minute through the package index)
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def official_python() -> Path:
    return _venv()


@pytest.fixture
def world() -> Iterator[World]:
    w = World(devices=1, fake_clock=False)  # the official client stamps states with the real now
    yield w
    w.close()


def _start(python: Path, world: World, secret: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.Popen([str(python), str(SCRIPT), world.server.mqtt_host, str(world.server.mqtt_port),
                             world.devices[0], world.key["key"], secret, "run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _event(stream: IO[str]) -> dict[str, Any]:
    line = stream.readline()  # the script ends itself within 20 s; every line is one event
    assert line, "the official client's script ended without an event"
    return dict(json.loads(line))


def test_official_client_connects_sends_state_and_receives_a_command(official_python: Path, world: World) -> None:
    proc = _start(official_python, world, world.key["secret"])
    try:
        assert proc.stdout is not None
        assert _event(proc.stdout) == {"event": "connected"}
        assert _event(proc.stdout) == {"event": "state-sent"}
        dev = world.devices[0]
        states = wait_until(lambda: world.rest.states(world.app, dev), "the official client's state in REST")
        assert states[0]["data"] == {"temp": 42, "msg": "official"}
        world.rest.call("POST", f"/applications/{world.app}/devices/{dev}/command",
                        {"name": "reboot", "payload": {"in": 5}, "time": "2026-11-01T10:00:00.250Z"})
        assert _event(proc.stdout) == {"event": "command", "name": "reboot", "payload": {"in": 5},
                                       "time": "2026-11-01T10:00:00.250000+00:00"}
        info = world.rest.call("GET", f"/applications/{world.app}/devices/{dev}")["connectionInfo"]
        assert info["connected"] == 1
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def test_official_client_is_refused_with_a_wrong_secret(official_python: Path, world: World) -> None:
    proc = _start(official_python, world, "not-the-secret")
    out, err = proc.communicate(timeout=60)
    events = [json.loads(line) for line in out.splitlines()]
    assert events == [{"event": "refused", "error": "Invalid Losant credentials - error code 5"}], err
