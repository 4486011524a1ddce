"""Plumbing: query un-flattening, routing (404/405, literal before parameter), CLI option mapping."""

from __future__ import annotations

import pytest

from harness.emulator.errors import ApiError
from harness.emulator.http import parse_query
from harness.emulator.process import EmulatorProcess
from harness.emulator.router import Router


@pytest.mark.parametrize("raw,expected", [
    (b"", {}),
    (b"_actions=false&_links=true&_embedded=true", {}),  # always sent by the client; ignored
    (b"tagFilter[0][key]=k&tagFilter[0][value]=v&tagFilter[1][value]=w", {"tagFilter": [{"key": "k", "value": "v"}, {"value": "w"}]}),
    (b"deviceClass[0]=gateway&deviceClass[1]=peripheral", {"deviceClass": ["gateway", "peripheral"]}),
    (b"deviceClass=gateway", {"deviceClass": "gateway"}),
    (b"query=%7B%22%24and%22%3A%5B%5D%7D&page=2", {"query": '{"$and":[]}', "page": "2"}),
    (b"a[10]=x&a[2]=y", {"a": ["y", "x"]}),  # numeric order, not text order
    (b"a[b]=1&a=2", {"a": "2"}),  # later plain value wins; no crash on mixed shapes
])
def test_parse_query(raw: bytes, expected: dict) -> None:
    assert parse_query(raw) == expected


def test_router_literal_beats_parameter_and_405() -> None:
    r = Router()
    r.add("GET", "/applications/{applicationId}/devices/{deviceId}", "device.get", lambda: "param")
    r.add("POST", "/applications/{applicationId}/devices/command", "devices.sendCommand", lambda: "literal")
    r.add("POST", "/applications/{applicationId}/devices/{deviceId}/state", "device.sendState", lambda: "state")
    route, params = r.match("POST", "/applications/A/devices/command")
    assert route.operation == "devices.sendCommand" and params == {"applicationId": "A"}
    route, params = r.match("GET", "/applications/A/devices/command")  # falls back to the parameter route
    assert route.operation == "device.get" and params["deviceId"] == "command"
    route, params = r.match("POST", "/applications/A/devices/D/state/")
    assert route.operation == "device.sendState" and params == {"applicationId": "A", "deviceId": "D"}
    with pytest.raises(ApiError) as err:
        r.match("DELETE", "/applications/A/devices/D/state")
    assert err.value.status == 405
    with pytest.raises(ApiError) as err:
        r.match("GET", "/applications//devices/D")
    assert err.value.status == 404


def test_process_argv_maps_options_and_keeps_the_password_off_the_command_line() -> None:
    argv = EmulatorProcess(password="pw-xyz-123456", db="/tmp/x.db", job_seconds=0.5, quiet=True, limits=None).argv()
    assert argv[1:3] == ["-m", "harness.emulator"]
    assert ["--db", "/tmp/x.db"] == argv[argv.index("--db"):argv.index("--db") + 2]
    assert "--job-seconds" in argv and "--quiet" in argv and "--limits" not in argv
    assert "pw-xyz-123456" not in argv
