"""Scenario loader: every malformed case refused with a precise message, shipped files valid."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import ConfigError
from harness.scenario import (
    AttributeSpec, DeviceClass, Scenario, ScenarioError, format_duration, load_scenario, make_generator,
    make_state_generator, parse_duration, parse_scenario,
)
from harness.scenario.generators import device_rng
from harness.scenario.parse import ACTION_OPTIONS

ACTIONS = ", ".join(ACTION_OPTIONS)

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
SRC = "scenarios/x.yaml"


def base() -> dict[str, Any]:
    """The smallest valid scenario; each case below breaks one thing in a copy."""
    return {
        "name": "x",
        "fleet": {"classes": [
            {"name": "sensors", "count": 2, "report_interval": "10s",
             "attributes": {"t": {"type": "number", "min": 0, "max": 1}}},
            {"name": "gw", "count": 1, "kind": "gateway", "peripherals": 2, "report_interval": 5},
        ]},
    }


def problems_of(data: Any) -> list[str]:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data, SRC)
    return err.value.problems


def mutate(path: str, value: Any) -> dict[str, Any]:
    """A copy of base() with the dotted ``path`` set (``[i]`` indexes lists; value DELETE removes)."""
    data = copy.deepcopy(base())
    node: Any = data
    parts = path.replace("[", ".").replace("]", "").split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    last = parts[-1]
    if value is DELETE:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return data


DELETE = object()

# (field path to set, value, the exact problem line)
CASES = [
    # durations
    ("fleet.classes[1].report_interval", "10q",
     "scenarios/x.yaml: fleet.classes[1].report_interval: '10q' is not allowed; expected a duration like 10s, 500ms, 2m"),
    ("fleet.classes[0].report_interval", 0,
     "scenarios/x.yaml: fleet.classes[0].report_interval: 0 is not allowed; expected a duration like 10s, 500ms, 2m greater than 0"),
    ("duration", "-5s",
     "scenarios/x.yaml: duration: '-5s' is not allowed; expected a duration like 10s, 500ms, 2m"),
    ("fleet.classes[0].report_interval", DELETE,
     "scenarios/x.yaml: fleet.classes[0].report_interval: is required; expected a duration like 10s, 500ms, 2m"),
    # names
    ("name", "Smoke Test",
     "scenarios/x.yaml: name: 'Smoke Test' is not allowed; expected lower-case letters, digits, _ and - (1-64)"),
    ("name", DELETE, "scenarios/x.yaml: name: is required; expected lower-case letters, digits, _ and -"),
    ("fleet.classes[1].name", "sensors",
     "scenarios/x.yaml: fleet.classes[1].name: 'sensors' is not allowed; expected a name not used by another class"),
    # target
    ("target", {"kind": "live"},
     "scenarios/x.yaml: target.url: is required; expected an http(s) URL like https://api.losant.com"),
    ("target", {"kind": "live", "url": "ftp://x"},
     "scenarios/x.yaml: target.url: 'ftp://x' is not allowed; expected an http(s) URL like https://api.losant.com"),
    ("target", {"kind": "emulator", "url": "https://api.losant.com"},
     "scenarios/x.yaml: target.url: is only allowed with kind: live (the harness starts the emulator itself)"),
    ("target", {"kind": "live", "url": "https://api.losant.com", "application_id": "xyz"},
     "scenarios/x.yaml: target.application_id: 'xyz' is not allowed; expected 24 lower-case hex digits "
     "(or leave it out: the harness creates/reuses an application by run tag)"),
    ("target", {"kind": "live", "url": "https://api.losant.com", "auth": "oauth"},
     "scenarios/x.yaml: target.auth: 'oauth' is not allowed; expected one of user | token | key"),
    ("target", {"kind": "live", "url": "https://api.losant.com", "limits": "l.yaml"},
     "scenarios/x.yaml: target.limits: is only allowed with kind: emulator (a live tenant enforces its own limits)"),
    ("target.kind", "staging", "scenarios/x.yaml: target.kind: 'staging' is not allowed; expected one of emulator | live"),
    # fleet
    ("fleet.mode", "pooled", "scenarios/x.yaml: fleet.mode: 'pooled' is not allowed; expected one of users | multiplexed"),
    ("fleet.connections", 8, "scenarios/x.yaml: fleet.connections: is only allowed with mode: multiplexed"),
    ("fleet.classes", [], "scenarios/x.yaml: fleet.classes: [] is not allowed; expected a list of at least one device class"),
    ("fleet.classes[0].count", 0, "scenarios/x.yaml: fleet.classes[0].count: 0 is not allowed; expected a whole number >= 1"),
    ("fleet.classes[0].count", 2.5, "scenarios/x.yaml: fleet.classes[0].count: 2.5 is not allowed; expected a whole number >= 1"),
    ("fleet.classes[0].count", True, "scenarios/x.yaml: fleet.classes[0].count: True is not allowed; expected a whole number >= 1"),
    ("fleet.classes[1].peripherals", DELETE,
     "scenarios/x.yaml: fleet.classes[1].peripherals: None is not allowed; expected a whole number >= 1 (peripherals per gateway)"),
    ("fleet.classes[0].peripherals", 3, "scenarios/x.yaml: fleet.classes[0].peripherals: is only allowed with kind: gateway"),
    ("fleet.classes[0].kind", "floating",
     "scenarios/x.yaml: fleet.classes[0].kind: 'floating' is not allowed; expected one of standalone | gateway"),
    ("fleet.classes[0].jitter", 0.7, "scenarios/x.yaml: fleet.classes[0].jitter: 0.7 is not allowed; expected a number from 0 to 0.5"),
    ("fleet.classes[0].batch_size", 0, "scenarios/x.yaml: fleet.classes[0].batch_size: 0 is not allowed; expected a whole number >= 1"),
    ("fleet.classes[0].connection_status", "yes please",
     "scenarios/x.yaml: fleet.classes[0].connection_status: 'yes please' is not allowed; expected true or false"),
    ("fleet.classes[0].tags", {"on": True},
     "scenarios/x.yaml: fleet.classes[0].tags.on: True is not allowed; expected a non-empty string (quote yes/no/true/false)"),
    # attributes
    ("fleet.classes[0].attributes", {"bad name": {"type": "number", "min": 0, "max": 1}},
     "scenarios/x.yaml: fleet.classes[0].attributes.bad name: 'bad name' is not allowed; expected an attribute name of letters, digits, _ and - (1-255)"),
    ("fleet.classes[0].attributes.t", {"type": "gaussian"},
     "scenarios/x.yaml: fleet.classes[0].attributes.t.type: 'gaussian' is not allowed; expected one of random_walk | number | boolean | string"),
    ("fleet.classes[0].attributes.t", {"type": "nubmer", "min": 0, "max": 1},
     "scenarios/x.yaml: fleet.classes[0].attributes.t.type: 'nubmer' is not allowed (did you mean 'number'?); expected one of random_walk | number | boolean | string"),
    ("fleet.classes[0].attributes.t", {"type": "number", "min": 5, "max": 1},
     "scenarios/x.yaml: fleet.classes[0].attributes.t.max: 1.0 is not allowed; expected a number >= min (5)"),
    ("fleet.classes[0].attributes.t", {"type": "number", "min": 0},
     "scenarios/x.yaml: fleet.classes[0].attributes.t.max: is required; expected a number"),
    ("fleet.classes[0].attributes.t", {"type": "random_walk", "start": 0},
     "scenarios/x.yaml: fleet.classes[0].attributes.t.step: is required; expected a number > 0"),
    ("fleet.classes[0].attributes.t", {"type": "random_walk", "step": 1, "start": 99, "min": 0, "max": 10},
     "scenarios/x.yaml: fleet.classes[0].attributes.t.start: 99.0 is not allowed; expected a number between min and max"),
    ("fleet.classes[0].attributes.t", {"type": "boolean", "p_true": 2},
     "scenarios/x.yaml: fleet.classes[0].attributes.t.p_true: 2 is not allowed; expected a number from 0 to 1"),
    ("fleet.classes[0].attributes.t", {"type": "string", "values": ["on", False]},
     "scenarios/x.yaml: fleet.classes[0].attributes.t.values: ['on', False] is not allowed; expected a non-empty list of strings (quote yes, no, on, off, true, false)"),
    ("fleet.classes[0].attributes.t", {"type": "number", "min": 0, "max": 1, "integer": True, "step": 1},
     "scenarios/x.yaml: fleet.classes[0].attributes.t.step: unknown field; allowed: type, min, max, integer"),
    # operators
    ("operators", {"count": 2},
     "scenarios/x.yaml: operators.actions: is required when count > 0; expected a mapping of action to weight, from "
     + ACTIONS),
    ("operators", {"count": 1, "actions": {"get_device": 0}},
     "scenarios/x.yaml: operators.actions.get_device: 0 is not allowed; expected a number > 0"),
    ("operators", {"count": 1, "actions": {"reboot_all": 1}},
     "scenarios/x.yaml: operators.actions.reboot_all: unknown field; allowed: " + ACTIONS),
    ("operators", {"count": 1, "actions": {"time_series": {"weight": 1, "aggregation": "AVG"}}},
     "scenarios/x.yaml: operators.actions.time_series.aggregation: 'AVG' is not allowed; expected one of "
     "FIRST | LAST | COUNT | MAX | MIN | MEDIAN | MEAN | SUM | STD_DEV | NONE"),
    ("operators", {"count": 1, "actions": {"time_series": {"weight": 1, "window": "5m", "resolution": "1h"}}},
     "scenarios/x.yaml: operators.actions.time_series.resolution: '1h' is not allowed; expected a duration no longer than window"),
    ("operators", {"count": 1, "actions": {"create_event": {"level": "fatal"}}},
     "scenarios/x.yaml: operators.actions.create_event.level: 'fatal' is not allowed; expected one of info | warning | error | critical"),
    ("operators", {"count": 1, "actions": {"get_device": 1}, "think_time": {"min": "3s", "max": "1s"}},
     "scenarios/x.yaml: operators.think_time.max: '1s' is not allowed; expected a duration >= min (3s)"),
    ("operators", {"count": 1, "auth": "key", "actions": {"get_device": 1}},
     "scenarios/x.yaml: operators.auth: 'key' is not allowed; expected one of user | token"),
    # pacing
    ("pacing", {"throttle": "ignore"}, "scenarios/x.yaml: pacing.throttle: 'ignore' is not allowed; expected one of respect | probe | off"),
    ("pacing", {"margin": 0.6}, "scenarios/x.yaml: pacing.margin: 0.6 is not allowed; expected a number from 0 to 0.5"),
    ("pacing", {"throttle": "probe"},
     "scenarios/x.yaml: pacing.probe: is required with throttle: probe; expected {limits: [device.sendState], factor: 1.5}"),
    ("pacing", {"throttle": "respect", "probe": {"limits": ["events.post"]}},
     "scenarios/x.yaml: pacing.probe: is only allowed with throttle: probe"),
    ("pacing", {"throttle": "probe", "probe": {"limits": ["device.sendState"], "factor": 1.0}},
     "scenarios/x.yaml: pacing.probe.factor: 1.0 is not allowed; expected a number > 1"),
    ("pacing", {"throttle": "probe", "probe": {"limits": []}},
     "scenarios/x.yaml: pacing.probe.limits: [] is not allowed; expected a non-empty list of limit names, like [device.sendState]"),
    # top level
    ("ramp_up", 0, "scenarios/x.yaml: ramp_up: 0 is not allowed; expected a number > 0"),
    ("run_tag", "Run 1", "scenarios/x.yaml: run_tag: 'Run 1' is not allowed; expected lower-case letters, digits, _ and - (1-64)"),
]


@pytest.mark.parametrize("path,value,expected", CASES, ids=[f"{c[0]}={c[1]!r}"[:60] for c in CASES])
def test_malformed_field_is_refused_with_precise_message(path: str, value: Any, expected: str) -> None:
    assert problems_of(mutate(path, value)) == [expected]


def test_base_is_valid() -> None:
    s = parse_scenario(base(), SRC)
    assert s.run_tag == "x" and s.duration == 60.0 and s.ramp_up == 50.0
    assert s.pacing.throttle == "respect" and s.pacing.margin == 0.0
    assert s.fleet.classes[0].jitter == 0.1 and s.fleet.classes[0].command_poll_interval is None


def test_probe_limit_names_come_from_the_limits_table() -> None:
    data = mutate("pacing", {"throttle": "probe", "probe": {"limits": ["device.sendStat", "device.sendState"]}})
    [line] = problems_of(data)
    assert line.startswith("scenarios/x.yaml: pacing.probe.limits[0]: 'device.sendStat' is not a limit "
                           "(did you mean 'device.sendState'?); expected one of ")
    assert "flow.pressVirtualButton" in line and "device.export" in line and "files.post" in line  # every kind


def test_unknown_keys_get_did_you_mean() -> None:
    data = base()
    data["durration"] = "5m"
    data["fleet"]["classes"][0]["reprot_interval"] = "1s"
    data["pacing"] = {"throtle": "off"}
    assert problems_of(data) == [
        "scenarios/x.yaml: durration: unknown field (did you mean 'duration'?); allowed: name, description, target, "
        "duration, ramp_up, run_tag, seed, fleet, operators, pacing, integrity, events, criteria",
        "scenarios/x.yaml: fleet.classes[0].reprot_interval: unknown field (did you mean 'report_interval'?); "
        "allowed: name, count, kind, peripherals, tags, attributes, report_interval, jitter, batch_size, "
        "command_poll_interval, connection_status, transport",
        "scenarios/x.yaml: pacing.throtle: unknown field (did you mean 'throttle'?); allowed: throttle, margin, probe",
    ]


def test_every_problem_is_reported_not_just_the_first() -> None:
    data = base()
    data["duration"] = "forever"
    data["fleet"]["classes"][0]["count"] = -1
    data["fleet"]["classes"][1]["jitter"] = 2
    with pytest.raises(ConfigError) as err:
        parse_scenario(data, SRC)
    lines = str(err.value).splitlines()
    assert len(lines) == 3 and all(line.startswith("scenarios/x.yaml: ") for line in lines)
    assert [line.split(":")[1].strip() for line in lines] == \
        ["duration", "fleet.classes[0].count", "fleet.classes[1].jitter"]


@pytest.mark.parametrize("where,field,env", [
    ("target", "password", "LOSANT_PASSWORD"),
    ("target", "token", "LOSANT_API_TOKEN"),
    ("target", "secret", "LOSANT_ACCESS_SECRET"),
    ("target", "email", "LOSANT_EMAIL"),
    ("operators", "token", "LOSANT_API_TOKEN"),
    ("", "api_token", "LOSANT_API_TOKEN"),
])
def test_secrets_in_the_file_are_refused(where: str, field: str, env: str) -> None:
    data = base()
    data["target"] = {"kind": "live", "url": "https://api.losant.com"}
    node = data.setdefault(where, {}) if where else data
    node[field] = "hunter2-is-not-a-good-one"
    [line] = problems_of(data)
    path = f"{where}.{field}" if where else field
    assert line.startswith(f"scenarios/x.yaml: {path}: credentials are never read from scenario files; "
                           f"remove it and set {env} in the environment")
    assert "hunter2" not in line  # never echo the secret


def test_live_target_names_its_credential_variables() -> None:
    s = parse_scenario(mutate("target", {"kind": "live", "url": "https://api.losant.com/", "auth": "key"}), SRC)
    assert s.target.url == "https://api.losant.com"
    assert s.target.credential_env() == ("LOSANT_ACCESS_KEY", "LOSANT_ACCESS_SECRET")
    assert s.target.missing_credentials({"LOSANT_ACCESS_KEY": "k"}) == ["LOSANT_ACCESS_SECRET"]
    assert parse_scenario(base(), SRC).target.credential_env() == ()


def test_emulator_limits_path_is_relative_to_the_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "limits").mkdir()
    (tmp_path / "limits" / "fast.yaml").write_text("limits: {device.sendState: {count: 5, window: 1.0}}\n")
    data = mutate("target", {"kind": "emulator", "limits": "limits/fast.yaml"})
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    s = load_scenario(tmp_path / "s.yaml")
    assert Path(s.target.limits or "") == (tmp_path / "limits" / "fast.yaml").resolve()
    data["target"]["limits"] = "nope.yaml"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"target.limits: 'nope.yaml': no such file"):
        load_scenario(tmp_path / "s.yaml")


def test_file_level_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing.yaml: cannot read scenario file"):
        load_scenario(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML"):
        load_scenario(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match=r"x.yaml: the top level must be a mapping"):
        parse_scenario(["a"], SRC)


@pytest.mark.parametrize("text,seconds", [
    (1, 1.0), (2.5, 2.5), ("500ms", 0.5), ("10s", 10.0), ("2m", 120.0), ("1h", 3600.0), ("1.5s", 1.5), (" 3 s", 3.0),
])
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10q", "", "1m30s", "ten seconds", True, None, "s"])
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ConfigError, match="expected a duration like 10s, 500ms, 2m"):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [0.5, 0.001, 1.0, 7.5, 60.0, 90.0, 120.0, 3600.0, 5400.0])
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_every_shipped_scenario_validates_and_round_trips(path: Path) -> None:
    s = load_scenario(path)
    assert s.name == path.stem and s.criteria is not None and s.description
    again = parse_scenario(yaml.safe_load(yaml.safe_dump(s.to_dict(), sort_keys=False)), "resolved.yaml")
    assert again == s


def test_the_shipped_set_is_complete() -> None:
    assert {p.stem for p in SCENARIOS} >= {"smoke", "fleet", "gateways", "dashboards", "throttle-probe"}
    smoke = load_scenario(ROOT / "scenarios" / "smoke.yaml")
    assert smoke.duration == 60 and smoke.operators.count == 3 and smoke.pacing.throttle == "respect"
    assert 200 <= smoke.total_devices <= 260 and any(c.kind == "gateway" for c in smoke.fleet.classes)
    probe = load_scenario(ROOT / "scenarios" / "throttle-probe.yaml")
    assert set(probe.pacing.probe_limits) == {"device.sendState", "events.post"} and probe.pacing.probe_factor == 1.5


def test_criteria_problems_join_the_list() -> None:
    data = base()
    data["duration"] = "soon"
    data["criteria"] = {"max_eror_rate": 0.1, "latency": {"device.sendStat": {"p99": 5}}}
    lines = problems_of(data)
    assert lines[0].startswith("scenarios/x.yaml: duration:")
    assert any(line.startswith("scenarios/x.yaml: criteria") and "max_error_rate" in line for line in lines)
    assert any("device.sendState" in line for line in lines)  # did-you-mean on the operation name


def test_devices_and_counts() -> None:
    s = parse_scenario(mutate("run_tag", "run7"), SRC)
    assert s.total_devices == 2 + 1 + 2 and s.fleet.reporters == 3
    names = [d.name for d in s.planned_devices()]
    assert names == ["run7-sensors-00000", "run7-sensors-00001", "run7-gw-00000", "run7-gw-00000-p000",
                     "run7-gw-00000-p001"]
    p = s.planned_devices()[-1]
    assert (p.kind, p.gateway, p.index, p.peripheral) == ("peripheral", "run7-gw-00000", 0, 1)


def test_overrides() -> None:
    s = parse_scenario(base(), SRC)
    o = s.with_overrides(duration=30, users=30, target_url="http://127.0.0.1:8080/")
    assert o.duration == 30 and o.fleet.reporters == 30
    assert [c.count for c in o.fleet.classes] == [20, 10]  # proportions 2:1 kept
    assert o.target.kind == "live" and o.target.url == "http://127.0.0.1:8080"
    assert s.with_overrides() == s and s.with_overrides(throttle="off").pacing.throttle == "off"
    with pytest.raises(ConfigError) as err:
        s.with_overrides(duration="soon", users=1, target_url="localhost")
    assert len(err.value.problems) == 3  # type: ignore[attr-defined]


def test_operator_actions_fill_defaults_and_name_their_operation() -> None:
    data = mutate("operators", {"count": 2, "actions": {
        "send_command": {"weight": 2, "name": "reboot"}, "time_series": 1, "state_history": {"limit": 5}}})
    ops = parse_scenario(data, SRC).operators
    by = {a.action: a for a in ops.actions}
    assert by["send_command"].name == "reboot" and by["send_command"].operation == "device.sendCommand"
    assert (by["time_series"].window, by["time_series"].resolution, by["time_series"].aggregation) == (3600, 300, "MEAN")
    assert by["state_history"].limit == 5 and by["state_history"].weight == 1.0
    assert (ops.think_min, ops.think_max) == (1.0, 3.0)


def test_random_walk_keeps_state_per_device_and_stays_in_bounds() -> None:
    spec = AttributeSpec("t", "random_walk", min=0.0, max=10.0, start=5.0, step=2.0)
    a, b = make_generator(spec, random.Random(1)), make_generator(spec, random.Random(1))
    seq_a = [a() for _ in range(500)]
    assert all(0.0 <= v <= 10.0 for v in seq_a)
    assert all(abs(x - y) <= 2.0 for x, y in zip([5.0] + seq_a, seq_a))  # one step at a time
    assert [b() for _ in range(500)] == seq_a  # same seed, same walk; the state is the closure's


def test_generators_honour_their_parameters() -> None:
    rng = random.Random(3)
    ints = make_generator(AttributeSpec("n", "number", min=1.5, max=4.5, integer=True), rng)
    assert {ints() for _ in range(300)} == {2, 3, 4}
    floats = make_generator(AttributeSpec("n", "number", min=-1.0, max=1.0), rng)
    assert all(-1.0 <= floats() <= 1.0 for _ in range(300))
    flag = make_generator(AttributeSpec("b", "boolean", p_true=0.1), rng)
    share = sum(flag() for _ in range(5000)) / 5000
    assert 0.07 < share < 0.13
    word = make_generator(AttributeSpec("s", "string", values=("ok", "warn")), rng)
    assert {word() for _ in range(100)} == {"ok", "warn"}


def test_state_generator_and_device_rng_are_deterministic() -> None:
    cls = parse_scenario(base(), SRC).fleet.classes[0]
    assert isinstance(cls, DeviceClass)
    one = make_state_generator(cls.attributes, device_rng(7, "x-sensors-00000"))
    two = make_state_generator(cls.attributes, device_rng(7, "x-sensors-00000"))
    assert [one() for _ in range(3)] == [two() for _ in range(3)]
    assert set(one()) == {"t"}
    assert cls.attributes[0].data_type == "number"


def test_scenario_is_frozen() -> None:
    s = parse_scenario(base(), SRC)
    with pytest.raises(AttributeError):
        s.duration = 5  # type: ignore[misc]
    assert isinstance(s, Scenario)


def test_position_matches_device_order() -> None:
    cls = parse_scenario(base(), SRC).fleet.classes[1]
    for pos, d in enumerate(cls.devices("r")):
        assert cls.position(d.index, d.peripheral) == pos


# -- the limited endpoints' actions and fields ---------------------------------------------------
HEX = "0123456789abcdef01234567"


def live_with(actions: dict[str, Any], objects: dict[str, Any] | None = None, **operators: Any) -> dict[str, Any]:
    data = base()
    data["target"] = {"kind": "live", "url": "https://api.example.com", "auth": "user"}
    data["operators"] = {"count": 1, "actions": actions, **operators}
    if objects is not None:
        data["operators"]["objects"] = objects
    return data


def test_live_actions_need_the_objects_they_act_on() -> None:
    data = live_with({"press_virtual_button": 1, "send_dashboard_report": 1, "export_application": 1})
    assert problems_of(data) == [
        "scenarios/x.yaml: operators.objects.flow: is required on a live target by operators.actions.press_virtual_button; "
        "expected the 24-hex id of a workflow with a virtual button",
        "scenarios/x.yaml: operators.objects.button: is required on a live target by operators.actions.press_virtual_button; "
        "expected the virtual button's key in that flow (like <flowId>-<nodeId>)",
        "scenarios/x.yaml: operators.objects.dashboard: is required on a live target by operators.actions.send_dashboard_report; "
        "expected a dashboard's 24-hex id",
        "scenarios/x.yaml: operators.objects.email: is required on a live target by operators.actions.send_dashboard_report; "
        "expected an email address exports and reports are sent to",
    ]
    ok = parse_scenario(live_with({"press_virtual_button": 1}, {"flow": HEX, "button": f"{HEX}-abc"}), SRC)
    assert ok.operators.objects.flow == HEX and ok.operators.actions[0].operation == "flow.pressVirtualButton"


def test_emulator_actions_need_no_objects_and_objects_are_checked() -> None:
    data = mutate("operators", {"count": 1, "actions": {"press_virtual_button": 1, "query_data_table_rows": 1}})
    assert parse_scenario(data, SRC).operators.objects.flow is None
    data["operators"]["objects"] = {"dashboard": "DASH", "email": "nobody", "widget": HEX}
    assert problems_of(data) == [
        "scenarios/x.yaml: operators.objects.widget: unknown field; allowed: flow, button, dashboard, data_table, "
        "notebook, instance, owner, email",
        "scenarios/x.yaml: operators.objects.dashboard: 'DASH' is not allowed; expected a dashboard's 24 lower-case hex digit id",
        "scenarios/x.yaml: operators.objects.email: 'nobody' is not allowed; expected an email address exports and reports "
        "are sent to",
    ]


def test_user_token_only_endpoints_refuse_application_tokens() -> None:
    data = mutate("operators", {"count": 1, "auth": "token", "actions": {"generate_instance_report": 1}})
    assert problems_of(data) == [
        "scenarios/x.yaml: operators.actions.generate_instance_report: needs a user token (its scopes exclude "
        "application tokens); expected operators.auth: user"]


def test_job_seconds_as_a_number_or_bounds_round_trip() -> None:
    exact = parse_scenario(mutate("target", {"kind": "emulator", "job_seconds": "3s"}), SRC)
    assert (exact.target.job_min, exact.target.job_max) == (3.0, 3.0)
    data = live_with({"get_device": 1}, job_seconds={"min": "1s", "max": "10m"})
    data["target"]["job_seconds"] = data["operators"].pop("job_seconds")
    bounded = parse_scenario(data, SRC)
    assert (bounded.target.job_min, bounded.target.job_max) == (1.0, 600.0)
    assert parse_scenario(bounded.to_dict(), SRC) == bounded
    assert problems_of(mutate("target", {"job_seconds": {"min": "5s", "max": "1s"}})) == [
        "scenarios/x.yaml: target.job_seconds.max: '1s' is not allowed; expected a duration >= min (5s)"]
    assert problems_of(mutate("target", {"job_seconds": {"max": "1s"}}))[0].startswith(
        "scenarios/x.yaml: target.job_seconds: {'max': '1s'} is not allowed; expected a duration like 2s")


def test_new_action_options_are_validated_and_round_trip() -> None:
    data = mutate("operators", {"count": 1, "objects": {"owner": "org-1"}, "actions": {
        "mqtt_publish": {"weight": 2, "topic": "plant/1"}, "upload_file": {"weight": 1, "size": 4096},
        "get_data_table_rows": {"weight": 1, "limit": 10}}})
    s = parse_scenario(data, SRC)
    assert parse_scenario(s.to_dict(), SRC) == s
    assert {a.action: (a.topic, a.size, a.limit) for a in s.operators.actions} == {
        "mqtt_publish": ("plant/1", None, None), "upload_file": (None, 4096, None), "get_data_table_rows": (None, None, 10)}
    bad = mutate("operators", {"count": 1, "actions": {"mqtt_publish": {"topic": "t" * 231},
                                                       "upload_file": {"size": 20 * 1024 * 1024},
                                                       "query_data_table_rows": {"limit": 20000}}})
    assert problems_of(bad) == [
        "scenarios/x.yaml: operators.actions.mqtt_publish.topic: '" + "t" * 231 + "' is not allowed; expected an MQTT "
        "topic of 1-230 characters",
        "scenarios/x.yaml: operators.actions.query_data_table_rows.limit: 20000 is not allowed; expected a whole number "
        "of rows from 1 to 10000",
        "scenarios/x.yaml: operators.actions.upload_file.size: 20971520 is not allowed; expected at most the files.post "
        "cap of 10485760 bytes with throttle: respect (only a probe sends a body over it)",
    ]


def test_probed_limits_must_be_driven_by_the_scenario() -> None:
    data = mutate("pacing", {"throttle": "probe", "probe": {"limits": ["device.export", "data.timeSeriesQuery"]}})
    data["operators"] = {"count": 1, "actions": {"time_series": 1}}
    assert problems_of(data) == [
        "scenarios/x.yaml: pacing.probe.limits[0]: 'device.export': nothing in this scenario calls it; expected "
        "operators.actions to include export_device_data (with operators.count >= 1)",
        "scenarios/x.yaml: pacing.probe.limits[1]: 'data.timeSeriesQuery': the time-series size probe fills a device "
        "with long string states; expected a fleet class declaring a string attribute (like blob: {type: string, values: [x]})",
    ]


def test_probe_scenarios_name_every_row_of_their_group() -> None:
    from harness.limits import LimitsTable

    table = LimitsTable()
    for kind, name in (("rate", "probe-rate"), ("concurrency", "probe-concurrency"), ("size", "probe-size")):
        s = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        probed = set(s.pacing.probe_limits)
        rows = {lim.name for lim in table.limits if lim.kind == kind}
        assert {lim.name for lim in table.limits if lim.kind == kind
                and (lim.name in probed or set(lim.operations) & probed)} == rows, (name, rows - probed)
        driven = {a.operation for a in s.operators.actions} | {"device.sendState"}
        assert all(set(table.by_name(r).operations) <= driven for r in rows if r != "device.sendState"), name
        assert s.duration <= 120
