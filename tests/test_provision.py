"""Provisioning against the emulator: exactly the fleet described, reused by run tag, removed by teardown."""

from __future__ import annotations

import io
from collections import Counter
from typing import Iterator

import pytest

from harness.emulator.process import EmulatorProcess
from harness.fleet import CLASS_TAG_KEY, RUN_TAG_KEY, Secret, plan_devices
from harness.provision import Api, Login, Progress, provision, release_access, teardown
from harness.scenario import parse_scenario

SCENARIO = {
    "name": "prov",
    "run_tag": "prov-test",
    "fleet": {"classes": [
        {"name": "sensors", "count": 5, "report_interval": "10s", "tags": {"site": "a"},
         "attributes": {"t": {"type": "number", "min": 0, "max": 1}, "ok": {"type": "boolean"}}},
        {"name": "gw", "count": 2, "kind": "gateway", "peripherals": 3, "report_interval": "10s",
         "attributes": {"v": {"type": "string", "values": ["x"]}}},
    ]},
}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(email="prov@example.com", password="prov-password-1") as emu:
        yield emu


def login(emu: EmulatorProcess) -> Login:
    return Login(email=emu.email, password=Secret(emu.password))


def quiet(label: str, total: int) -> Progress:
    return Progress(label, total, stream=io.StringIO())


def list_devices(emu: EmulatorProcess, app_id: str) -> list[dict]:
    api = Api(emu.url)
    api.token = api.call("POST", "/auth/user", "login", json={"email": emu.email, "password": emu.password})["token"]
    try:
        return api.pages(f"/applications/{app_id}/devices", "list", {})
    finally:
        api.close()


def test_provision_creates_exactly_the_fleet_then_reuses_it(emulator: EmulatorProcess, monkeypatch) -> None:
    scenario = parse_scenario(SCENARIO, "prov.yaml")
    specs = plan_devices(scenario)
    fleet = provision(emulator.url, login(emulator), "prov-test", "run-1", specs)
    devices = list_devices(emulator, fleet.application_id)
    assert len(devices) == 5 + 2 + 2 * 3
    kinds = Counter(d["deviceClass"] for d in devices)
    assert kinds == {"standalone": 5, "gateway": 2, "peripheral": 6}
    by_name = {d["name"]: d for d in devices}
    gw = by_name["prov-test-gw-00001"]
    assert by_name["prov-test-gw-00001-p002"]["gatewayId"] == gw["id"]
    sensor = by_name["prov-test-sensors-00003"]
    tags = {(t["key"], t["value"]) for t in sensor["tags"]}
    assert {(RUN_TAG_KEY, "prov-test"), (CLASS_TAG_KEY, "sensors"), ("site", "a")} <= tags
    assert {(a["name"], a["dataType"]) for a in sensor["attributes"]} == {("t", "number"), ("ok", "boolean")}
    assert str(fleet.access_secret) and "***" in repr(fleet.access_secret)

    again = provision(emulator.url, login(emulator), "prov-test", "run-2", specs)
    assert again.application_id == fleet.application_id
    assert [d.id for d in again.devices] == [d.id for d in fleet.devices]
    assert len(list_devices(emulator, fleet.application_id)) == 13, "a second run must not duplicate devices"
    release_access(fleet)
    release_access(again)


def test_provision_resumes_after_an_interruption(emulator: EmulatorProcess) -> None:
    scenario = parse_scenario({**SCENARIO, "run_tag": "resume-test"}, "prov.yaml")
    specs = plan_devices(scenario)
    partial = provision(emulator.url, login(emulator), "resume-test", "r1", specs[:4])  # "interrupted" after 4
    full = provision(emulator.url, login(emulator), "resume-test", "r2", specs)
    assert [d.id for d in full.devices[:4]] == [d.id for d in partial.devices]
    assert len(list_devices(emulator, full.application_id)) == len(specs)


def test_teardown_removes_only_what_carries_the_run_tag(emulator: EmulatorProcess) -> None:
    scenario = parse_scenario({**SCENARIO, "run_tag": "td-test"}, "prov.yaml")
    fleet = provision(emulator.url, login(emulator), "td-test", "r1", plan_devices(scenario))
    other = provision(emulator.url, login(emulator), "keep-test", "r1", plan_devices(parse_scenario(
        {**SCENARIO, "run_tag": "keep-test"}, "prov.yaml")))
    removed = teardown(emulator.url, login(emulator), "td-test")
    assert removed == 13
    assert len(list_devices(emulator, other.application_id)) == 13
    api = Api(emulator.url)
    api.token = api.call("POST", "/auth/user", "login", json={"email": emulator.email, "password": emulator.password})["token"]
    with pytest.raises(Exception):
        api.call("GET", f"/applications/{fleet.application_id}", "read deleted app")
    api.close()


def test_progress_in_a_log_writes_a_line_every_few_seconds_and_at_the_end() -> None:
    """The web UI's Logs tab and CI logs must stay readable: no line per device, no line per tenth."""
    now = [0.0]
    out = io.StringIO()
    bar = Progress("provisioning devices", 1000, stream=out, clock=lambda: now[0])
    for _ in range(999):
        now[0] += 1 / 128  # 128 devices a second (exact in binary): 7.8 s for the whole fleet
        bar.step()
    assert out.getvalue().splitlines() == ["provisioning devices: 640/1000"]  # 5 s in
    now[0] += 1 / 128
    bar.step()
    assert out.getvalue().splitlines()[-1] == "provisioning devices: 1000/1000"
    assert len(out.getvalue().splitlines()) == 2
