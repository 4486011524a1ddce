"""Scenario YAML → validated ``Scenario``, reporting every problem at once.

Each check appends a line ``<file>: <field path>: <what is wrong>; expected <what is
allowed>`` and parsing carries on with the default, so one run of the loader shows
the author the whole list (k6's ``Validate()``), not one error per attempt.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from harness.checking import did_you_mean, read_yaml
from harness.limits import PACING_MODES, LimitsTable
from harness.errors import ConfigError
from harness.scenario.criteria import parse_criteria
from harness.scenario.checks import (
    ATTRIBUTES_MAX, DURATION_HINT, ScenarioError, join_path, parse_duration,
)
from harness.scenario.checks import ScenarioChecker as Checker
from harness.scenario.model import (
    ACTION_OBJECTS, ACTION_OPERATIONS, HARNESS_OPERATIONS, OBJECT_FIELDS, AttributeSpec, DeviceClass, FleetSpec,
    EVENT_ACTIONS, IntegritySpec, OperatorAction, OperatorsSpec, PacingSpec, PlatformObjects, Scenario,
    ScenarioEvent, Target,
)

__all__ = ["ScenarioError", "check_overrides", "load_scenario", "parse_duration", "parse_scenario"]

NAME_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
CLASS_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ATTRIBUTE_RE = re.compile(r"^[0-9a-zA-Z_-]{1,255}$")
APP_ID_RE = re.compile(r"^[0-9a-f]{24}$")
URL_RE = re.compile(r"^https?://[^\s/]+(/\S*)?$")
MQTT_URL_RE = re.compile(r"^mqtts?://[^\s/:@]+(:[0-9]{1,5})?$")
MQTT_URL_HINT = "an MQTT broker URL like mqtts://broker.losant.com:8883 (mqtt:// or mqtts://, host, optional port)"
TRANSPORTS = ("rest", "mqtt")

TOP = ("name", "description", "target", "duration", "ramp_up", "run_tag", "seed", "fleet", "operators",
       "pacing", "integrity", "events", "criteria")
TARGET = ("kind", "url", "application_id", "auth", "limits", "job_seconds", "mqtt_url")
FLEET = ("mode", "connections", "classes")
CLASS = ("name", "count", "kind", "peripherals", "tags", "attributes", "report_interval", "jitter",
         "batch_size", "command_poll_interval", "connection_status", "transport")
GENERATOR_KEYS = {
    "random_walk": ("type", "start", "step", "min", "max"),
    "number": ("type", "min", "max", "integer"),
    "boolean": ("type", "p_true"),
    "string": ("type", "values"),
}
OPERATORS = ("count", "auth", "think_time", "actions", "objects")
AGGREGATIONS = ("FIRST", "LAST", "COUNT", "MAX", "MIN", "MEDIAN", "MEAN", "SUM", "STD_DEV", "NONE")
EVENT_LEVELS = ("info", "warning", "error", "critical")
#: Options of each operator action (besides ``weight``), with their defaults.
ACTION_OPTIONS: dict[str, dict[str, Any]] = {
    "list_devices": {"tags": {}, "name_filter": None},
    "get_device": {},
    "time_series": {"window": 3600.0, "resolution": 300.0, "aggregation": "MEAN", "tags": {}},
    "last_value": {"tags": {}},
    "state_history": {"limit": 10},
    "send_command": {"name": "ping"},
    "send_command_tag": {"name": "sync", "tags": {}},
    "create_event": {"level": "info"},
    "send_state": {},
    "set_connection_status": {},
    "mqtt_publish": {"topic": "losant-load"},
    "press_virtual_button": {},
    "export_embedded_deployments": {},
    "export_notebook_data": {},
    "export_device_data": {},
    "export_data_table": {},
    "archive_data": {},
    "backfill_archive_data": {},
    "export_application": {},
    "archive_data_tables": {},
    "archive_events": {},
    "import_application": {},
    "clone_application": {},
    "import_applications": {},
    "send_dashboard_report": {},
    "export_data": {},
    "export_devices": {},
    "count_payloads": {},
    "export_events": {},
    "generate_instance_report": {},
    "get_data_table_rows": {"limit": 100},
    "query_data_table_rows": {"limit": 100},
    "upload_file": {"size": 1024},
}
assert set(ACTION_OPTIONS) == set(ACTION_OPERATIONS)
HEX24_RE = re.compile(r"^[0-9a-f]{24}$")
MQTT_TOPIC_RE = re.compile(r"^.{1,230}$", re.S)
#: Actions whose probe needs more than the action itself (checked with pacing.probe.limits).
DEVICE_DRIVEN = ("device.sendState",)
#: The smallest upload_file body: the filePost JSON itself, before padding.
UPLOAD_MIN = 64
PACING = ("throttle", "margin", "probe")
PROBE = ("limits", "factor")
#: The broker's rows a probe can push: a device's own state publishes past the per-topic count.
MQTT_PROBES = ("mqtt.publishIn",)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; ``ConfigError`` lists every problem."""
    return parse_scenario(read_yaml(path, "scenario file"), str(Path(path)))


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Validate a mapping (as from YAML) into a ``Scenario``; relative paths resolve against ``source``."""
    c = Checker(source)
    if not isinstance(data, dict):
        c.add("", f"the top level must be a mapping with name, fleet, ...; got {type(data).__name__}")
        raise ScenarioError(c.problems)
    top = c.mapping("", data, TOP)
    # Fields are checked in the order the reference lists them, so the problems read top-down.
    name_hint = "lower-case letters, digits, _ and - (1-64)"
    name = c.string("name", top.get("name"), "", NAME_RE, name_hint) \
        if c.required("", top, "name", "lower-case letters, digits, _ and -") else ""
    description = c.string("description", top.get("description"), "")
    target = _target(c, top.get("target"), source)
    duration = c.duration("duration", top.get("duration"), 60.0)
    ramp_up = c.number("ramp_up", top.get("ramp_up"), 50.0, lo=0, lo_open=True)
    run_tag = c.string("run_tag", top.get("run_tag"), name, NAME_RE, name_hint)
    seed = c.number("seed", top.get("seed"), 0, lo=0, integer=True)
    fleet = _fleet(c, top.get("fleet"))
    operators = _operators(c, top.get("operators"), target)
    pacing = _pacing(c, top.get("pacing"), target, operators, fleet)
    integrity = _integrity(c, top.get("integrity"))
    events = _events(c, top.get("events"), target, fleet, duration)
    scenario = Scenario(name=name, description=description, target=target, duration=duration, ramp_up=ramp_up,
                        run_tag=run_tag, seed=seed, fleet=fleet, operators=operators, pacing=pacing,
                        integrity=integrity, events=events, source=source)
    if top.get("criteria") is not None:
        scenario = _with_criteria(c, scenario, top["criteria"])
    c.check()
    return scenario


def _with_criteria(c: Checker, scenario: Scenario, data: Any) -> Scenario:
    if not isinstance(data, dict):
        c.bad("criteria", data, "a mapping")
        return scenario
    known = set(HARNESS_OPERATIONS) | {op for lim in LimitsTable().limits for op in lim.operations}
    before = len(c.problems)
    criteria = parse_criteria(data, known_ops=known, checker=c.under("criteria"))
    if len(c.problems) > before:
        return scenario
    return replace(scenario, criteria=criteria, criteria_data=data)


def _target(c: Checker, value: Any, source: str) -> Target:
    d = c.mapping("target", value, TARGET)
    kind = c.choice("target.kind", d.get("kind"), ("emulator", "live"), "emulator")
    if kind == "emulator":
        for key in ("url", "application_id", "auth", "mqtt_url"):
            if d.get(key) is not None:
                c.add(f"target.{key}", "is only allowed with kind: live (the harness starts the emulator itself)")
        limits = c.string("target.limits", d.get("limits"), None, expected="a path to a limits YAML file")
        if limits is not None:
            resolved = (Path(source).parent / limits) if source != "<scenario>" else Path(limits)
            if not resolved.is_file():
                c.add("target.limits", f"{limits!r}: no such file {str(resolved)!r}; expected a limits YAML "
                                       "file, relative to the scenario file")
            limits = str(resolved.resolve())
        job_min, job_max = _job_seconds(c, d.get("job_seconds"))
        return Target(kind="emulator", limits=limits, job_min=job_min, job_max=job_max)
    if d.get("limits") is not None:
        c.add("target.limits", "is only allowed with kind: emulator (a live tenant enforces its own limits)")
    url = c.string("target.url", d.get("url"), None, URL_RE, "an http(s) URL like https://api.losant.com") \
        if c.required("target", d, "url", "an http(s) URL like https://api.losant.com") else None
    app = c.string("target.application_id", d.get("application_id"), None, APP_ID_RE,
                   "24 lower-case hex digits (or leave it out: the harness creates/reuses an application by run tag)")
    auth = c.choice("target.auth", d.get("auth"), ("user", "token", "key"), "user")
    job_min, job_max = _job_seconds(c, d.get("job_seconds"))
    mqtt_url = c.string("target.mqtt_url", d.get("mqtt_url"), None, MQTT_URL_RE, MQTT_URL_HINT)
    if mqtt_url and not 0 < int(mqtt_url.rsplit(":", 1)[-1] if mqtt_url.count(":") == 2 else 1) < 65536:
        c.bad("target.mqtt_url", mqtt_url, MQTT_URL_HINT + " (port 1-65535)")
    return Target(kind="live", url=url.rstrip("/") if url else url, application_id=app, auth=auth,
                  job_min=job_min, job_max=job_max, mqtt_url=mqtt_url)


def _job_seconds(c: Checker, value: Any) -> tuple[float | None, float | None]:
    """``job_seconds: 2`` (every job runs that long) or ``{min: 1, max: 600}`` (bounds)."""
    if value is None:
        return None, None
    expected = "a duration like 2s, or {min: 1s, max: 10m} (how long the target's export/archive jobs run)"
    if isinstance(value, dict):
        d = c.mapping("target.job_seconds", value, ("min", "max"))
        if "min" not in d or "max" not in d:
            c.bad("target.job_seconds", value, expected)
            return None, None
        lo = c.duration("target.job_seconds.min", d.get("min"), None)
        hi = c.duration("target.job_seconds.max", d.get("max"), None)
        if lo is not None and hi is not None and hi < lo:
            c.bad("target.job_seconds.max", d.get("max"), f"a duration >= min ({lo:g}s)")
            return None, None
        return lo, hi
    seconds = c.duration("target.job_seconds", value, None)
    return seconds, seconds


def _fleet(c: Checker, value: Any) -> FleetSpec:
    if value is None:
        c.add("fleet", "is required; expected a mapping with classes: [...]")
        return FleetSpec()
    d = c.mapping("fleet", value, FLEET)
    mode = c.choice("fleet.mode", d.get("mode"), ("users", "multiplexed"), "users")
    if mode == "users" and d.get("connections") is not None:
        c.add("fleet.connections", "is only allowed with mode: multiplexed")
    connections = c.number("fleet.connections", d.get("connections"), 64, lo=1, integer=True)
    raw = d.get("classes")
    if not isinstance(raw, list) or not raw:
        c.bad("fleet.classes", raw, "a list of at least one device class")
        raw = []
    classes: list[DeviceClass] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        cls = _device_class(c, f"fleet.classes[{i}]", item)
        if cls.name and cls.name in seen:
            c.bad(f"fleet.classes[{i}].name", cls.name, "a name not used by another class")
        seen.add(cls.name)
        classes.append(cls)
    return FleetSpec(mode=mode, connections=connections, classes=tuple(classes))


def _device_class(c: Checker, path: str, value: Any) -> DeviceClass:
    d = c.mapping(path, value, CLASS)
    expected_name = "letters, digits, _ and - (1-64)"
    name = c.string(f"{path}.name", d.get("name"), "", CLASS_RE, expected_name) \
        if c.required(path, d, "name", expected_name) else ""
    count = c.number(f"{path}.count", d.get("count"), 1, lo=1, integer=True) \
        if c.required(path, d, "count", "a whole number >= 1") else 1
    kind = c.choice(f"{path}.kind", d.get("kind"), ("standalone", "gateway"), "standalone")
    peripherals = c.number(f"{path}.peripherals", d.get("peripherals"), 0, lo=0, integer=True)
    if kind == "gateway" and peripherals < 1 and d.get("peripherals") in (None, 0):
        c.bad(f"{path}.peripherals", d.get("peripherals"), "a whole number >= 1 (peripherals per gateway)")
    if kind == "standalone" and peripherals:
        c.add(f"{path}.peripherals", "is only allowed with kind: gateway")
    interval = c.duration(f"{path}.report_interval", d.get("report_interval"), 10.0) \
        if c.required(path, d, "report_interval", DURATION_HINT) else 10.0
    poll = d.get("command_poll_interval")
    transport = c.choice(f"{path}.transport", d.get("transport"), TRANSPORTS, "rest")
    if transport == "mqtt":  # commands are pushed, the connection is the status, a state is one message
        for key, why in (("command_poll_interval", "commands are pushed on losant/<id>/command"),
                         ("connection_status", "the broker connection sets it")):
            if d.get(key) not in (None, False):
                c.add(f"{path}.{key}", f"is only allowed with transport: rest ({why})")
        if d.get("batch_size") not in (None, 1):
            c.bad(f"{path}.batch_size", d.get("batch_size"), "1 with transport: mqtt (one state per message)")
    return DeviceClass(
        name=name, count=count, kind=kind, peripherals=peripherals if kind == "gateway" else 0,
        tags=c.tags(f"{path}.tags", d.get("tags")),
        attributes=_attributes(c, f"{path}.attributes", d.get("attributes")),
        report_interval=interval,
        jitter=c.number(f"{path}.jitter", d.get("jitter"), 0.1, lo=0, hi=0.5),
        batch_size=c.number(f"{path}.batch_size", d.get("batch_size"), 1, lo=1, integer=True),
        command_poll_interval=c.duration(f"{path}.command_poll_interval", poll, None),
        connection_status=c.boolean(f"{path}.connection_status", d.get("connection_status"), False),
        transport=transport,
    )


def _attributes(c: Checker, path: str, value: Any) -> tuple[AttributeSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        c.bad(path, value, "a mapping of attribute name to generator, like {temperature: {type: number, ...}}")
        return ()
    if len(value) > ATTRIBUTES_MAX:
        c.add(path, f"{len(value)} attributes is too many; expected at most {ATTRIBUTES_MAX}")
    out = []
    for name, spec in value.items():
        where = join_path(path, name)
        if not isinstance(name, str) or not ATTRIBUTE_RE.match(name):
            c.bad(where, name, "an attribute name of letters, digits, _ and - (1-255)")
            continue
        out.append(_generator(c, where, str(name), spec))
    return tuple(out)


def _generator(c: Checker, path: str, name: str, value: Any) -> AttributeSpec:
    kinds = tuple(GENERATOR_KEYS)
    if not isinstance(value, dict) or "type" not in value:
        c.bad(path, value, "a mapping with type: " + " | ".join(kinds))
        return AttributeSpec(name, "number", 0.0, 1.0)
    kind = value["type"]
    if kind not in GENERATOR_KEYS:
        c.bad(f"{path}.type", kind, "one of " + " | ".join(kinds), did_you_mean(kind, kinds))
        return AttributeSpec(name, "number", 0.0, 1.0)
    d = c.mapping(path, value, GENERATOR_KEYS[kind])
    lo = c.number(f"{path}.min", d.get("min"), None)
    hi = c.number(f"{path}.max", d.get("max"), None)
    if lo is not None and hi is not None and lo > hi:
        c.bad(f"{path}.max", hi, f"a number >= min ({lo:g})")
    if kind == "number":
        for key in ("min", "max"):
            c.required(path, d, key, "a number")
        return AttributeSpec(name, "number", lo if lo is not None else 0.0, hi if hi is not None else 1.0,
                             integer=c.boolean(f"{path}.integer", d.get("integer"), False))
    if kind == "random_walk":
        step = c.number(f"{path}.step", d.get("step"), 1.0, lo=0, lo_open=True) \
            if c.required(path, d, "step", "a number > 0") else 1.0
        mid = (lo + hi) / 2 if lo is not None and hi is not None else (lo if lo is not None else (hi or 0.0))
        start = c.number(f"{path}.start", d.get("start"), mid)
        if (lo is not None and start < lo) or (hi is not None and start > hi):
            c.bad(f"{path}.start", start, "a number between min and max")
        return AttributeSpec(name, "random_walk", lo, hi, start=start, step=step)
    if kind == "boolean":
        return AttributeSpec(name, "boolean", p_true=c.number(f"{path}.p_true", d.get("p_true"), 0.5, lo=0, hi=1))
    values = d.get("values")
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        c.bad(f"{path}.values", values, "a non-empty list of strings (quote yes, no, on, off, true, false)")
        values = [""]
    return AttributeSpec(name, "string", values=tuple(values))


def _operators(c: Checker, value: Any, target: Target) -> OperatorsSpec:
    d = c.mapping("operators", value, OPERATORS)
    count = c.number("operators.count", d.get("count"), 0, lo=0, integer=True)
    auth = c.choice("operators.auth", d.get("auth"), ("user", "token"), "user")
    think = d.get("think_time")
    if isinstance(think, dict):
        t = c.mapping("operators.think_time", think, ("min", "max"))
        t_min = c.duration("operators.think_time.min", t.get("min"), 1.0, positive=False)
        t_max = c.duration("operators.think_time.max", t.get("max"), max(t_min, 3.0), positive=False)
        if t_max < t_min:
            c.bad("operators.think_time.max", t.get("max"), f"a duration >= min ({t_min:g}s)")
    else:
        t_min = t_max = c.duration("operators.think_time", think, 1.0, positive=False)
        if think is None:
            t_max = 3.0
    raw = d.get("actions")
    actions: list[OperatorAction] = []
    if raw is not None and not isinstance(raw, dict):
        c.bad("operators.actions", raw, "a mapping of action name to weight or {weight: ..., options}")
        raw = {}
    named = 0
    for name, spec in (raw or {}).items():
        named += 1
        where = f"operators.actions.{name}"
        if name not in ACTION_OPTIONS:
            c.unknown(where, str(name), tuple(ACTION_OPTIONS))
            continue
        actions.append(_action(c, where, name, spec))
    if count > 0 and raw is not None and named == 0:
        c.add("operators.actions", "needs at least one action when count > 0; expected one of " +
              ", ".join(ACTION_OPTIONS))
    elif count > 0 and raw is None:
        c.add("operators.actions", "is required when count > 0; expected a mapping of action to weight, "
                                   "from " + ", ".join(ACTION_OPTIONS))
    objects = _objects(c, d.get("objects"))
    if target.kind == "live":
        for a in actions:
            for name in ACTION_OBJECTS.get(a.action, ()):
                if getattr(objects, name) is None:
                    c.add(f"operators.objects.{name}", f"is required on a live target by operators.actions.{a.action}; "
                                                       f"expected {_OBJECT_HINTS[name]}")
    if auth == "token":
        for a in actions:
            if a.action in USER_TOKEN_ACTIONS:
                c.add(f"operators.actions.{a.action}", "needs a user token (its scopes exclude application tokens); "
                                                      "expected operators.auth: user")
    return OperatorsSpec(count=count, auth=auth, think_min=t_min, think_max=t_max, actions=tuple(actions),
                         objects=objects)


_OBJECT_HINTS = {
    "flow": "the 24-hex id of a workflow with a virtual button",
    "button": "the virtual button's key in that flow (like <flowId>-<nodeId>)",
    "dashboard": "a dashboard's 24-hex id", "data_table": "a data table's 24-hex id",
    "notebook": "a notebook's 24-hex id", "instance": "an instance's 24-hex id",
    "owner": "any label of the application's owner (organization or user id)",
    "email": "an email address exports and reports are sent to",
}
#: Endpoints outside ``/applications/{id}`` whose scopes admit only user tokens.
USER_TOKEN_ACTIONS = ("send_dashboard_report", "generate_instance_report", "import_applications")


def _objects(c: Checker, value: Any) -> PlatformObjects:
    d = c.mapping("operators.objects", value, OBJECT_FIELDS)
    fields: dict[str, Any] = {}
    for name in OBJECT_FIELDS:
        raw = d.get(name)
        if raw is None:
            continue
        where = f"operators.objects.{name}"
        if name in ("button", "owner"):
            fields[name] = c.string(where, raw, None, re.compile(r"^\S.{0,254}$"), _OBJECT_HINTS[name])
        elif name == "email":
            fields[name] = c.string(where, raw, None, re.compile(r"^[^@\s]+@[^@\s]+$"), _OBJECT_HINTS[name])
        else:
            fields[name] = c.string(where, raw, None, HEX24_RE, _OBJECT_HINTS[name].replace("24-hex", "24 lower-case hex digit"))
    return PlatformObjects(**fields)


def _action(c: Checker, path: str, name: str, spec: Any) -> OperatorAction:
    options = ACTION_OPTIONS[name]
    if not isinstance(spec, dict):
        weight = c.number(path, spec, 1.0, lo=0, lo_open=True)
        spec = {}
    else:
        d = c.mapping(path, spec, ("weight",) + tuple(options))
        weight = c.number(f"{path}.weight", d.get("weight"), 1.0, lo=0, lo_open=True)
    fields: dict[str, Any] = {}
    checks: dict[str, Callable[[str, Any, Any], Any]] = {
        "tags": lambda p, v, dflt: c.tags(p, v),
        "name_filter": lambda p, v, dflt: c.string(p, v, dflt, expected="a name pattern like sens*"),
        "window": lambda p, v, dflt: c.duration(p, v, dflt),
        "resolution": lambda p, v, dflt: c.duration(p, v, dflt),
        "aggregation": lambda p, v, dflt: c.choice(p, v, AGGREGATIONS, dflt),
        "limit": lambda p, v, dflt: c.number(p, v, dflt, lo=1, integer=True),
        "name": lambda p, v, dflt: c.string(p, v, dflt, re.compile(r"^.{1,255}$"), "a command name of 1-255 characters"),
        "level": lambda p, v, dflt: c.choice(p, v, EVENT_LEVELS, dflt),
        "topic": lambda p, v, dflt: c.string(p, v, dflt, MQTT_TOPIC_RE, "an MQTT topic of 1-230 characters"),
        "size": lambda p, v, dflt: c.number(p, v, dflt, lo=UPLOAD_MIN, integer=True),
    }
    for key, default in options.items():
        fields[key] = checks[key](f"{path}.{key}", spec.get(key), default)
    if name in ("get_data_table_rows", "query_data_table_rows") and fields["limit"] > 10000:
        c.bad(f"{path}.limit", spec.get("limit"), "a whole number of rows from 1 to 10000")
    if name == "time_series" and fields["resolution"] > fields["window"]:
        c.bad(f"{path}.resolution", spec.get("resolution"), "a duration no longer than window")
    return OperatorAction(action=name, weight=weight, **fields)


def _pacing(c: Checker, value: Any, target: Target, operators: OperatorsSpec, fleet: FleetSpec) -> PacingSpec:
    d = c.mapping("pacing", value, PACING)
    throttle = c.choice("pacing.throttle", d.get("throttle"), PACING_MODES, "respect")
    margin = c.number("pacing.margin", d.get("margin"), 0.0, lo=0, hi=0.5)
    table = _limits_table(c, target)
    if throttle != "probe":
        if d.get("probe") is not None:
            c.add("pacing.probe", "is only allowed with throttle: probe")
        _check_sizes(c, operators, table, throttle)
        return PacingSpec(throttle=throttle, margin=margin)
    if d.get("probe") is None:
        c.add("pacing.probe", "is required with throttle: probe; expected {limits: [device.sendState], factor: 1.5}")
        return PacingSpec(throttle=throttle, margin=margin)
    p = c.mapping("pacing.probe", d.get("probe"), PROBE)
    factor = c.number("pacing.probe.factor", p.get("factor"), 1.5, lo=1, lo_open=True)
    known: dict[str, Any] = {}
    if table is not None:
        for lim in table.limits:
            known[lim.name] = lim
            for op in lim.operations:
                known.setdefault(op, lim)
    mqtt_fleet = any(getattr(cls, "transport", "rest") == "mqtt" for cls in fleet.classes)
    if table is not None:  # the broker's rows a probe can push (harness.users.mqtt: the devices' own publishes)
        for lim in table.mqtt:
            if lim.name in MQTT_PROBES:
                known[lim.name] = lim
    raw = p.get("limits")
    if not isinstance(raw, list) or not raw:
        c.bad("pacing.probe.limits", raw, "a non-empty list of limit names, like [device.sendState]")
        raw = []
    names: list[str] = []
    driven = _driven_operations(operators, fleet)
    for i, item in enumerate(raw):
        where = f"pacing.probe.limits[{i}]"
        if known and item not in known:
            c.add(where, f"{item!r} is not a limit{did_you_mean(item, sorted(known))}; expected one of "
                  + ", ".join(sorted(known)))
            continue
        names.append(str(item))
        lim = known.get(item)
        if lim is not None and lim.transport == "mqtt":
            if not mqtt_fleet:
                c.add(where, f"{item!r}: MQTT devices push it; expected a fleet class with transport: mqtt")
            continue
        if lim is not None and not set(lim.operations) & driven:
            actions = [a for a, op in ACTION_OPERATIONS.items() if op in lim.operations]
            c.add(where, f"{item!r}: nothing in this scenario calls it; expected operators.actions to include "
                         + (" or ".join(actions) if actions else "an action calling it") + " (with operators.count >= 1)")
        if lim is not None and "data.timeSeriesQuery" in lim.operations and not any(
                a.type == "string" for cls in fleet.classes for a in cls.attributes):
            c.add(where, f"{item!r}: the time-series size probe fills a device with long string states; "
                         "expected a fleet class declaring a string attribute (like blob: {type: string, values: [x]})")
    return PacingSpec(throttle=throttle, margin=margin, probe_limits=tuple(names), probe_factor=factor)


def _driven_operations(operators: OperatorsSpec, fleet: FleetSpec) -> set[str]:
    out = set(DEVICE_DRIVEN) if fleet.classes else set()
    if operators.count > 0:
        out |= {a.operation for a in operators.actions}
    return out


def _check_sizes(c: Checker, operators: OperatorsSpec, table: Any, throttle: str) -> None:
    """Outside probe mode an upload stays within the cap in force (over it only a probe goes)."""
    if table is None:
        return
    caps = [lim.count for lim in table.for_operation("files.post") if lim.kind == "size"]
    for a in operators.actions:
        if a.action == "upload_file" and caps and a.size is not None and a.size > min(caps):
            c.bad("operators.actions.upload_file.size", a.size,
                  f"at most the files.post cap of {min(caps)} bytes with throttle: {throttle} "
                  "(only a probe sends a body over it)")


def _integrity(c: Checker, value: Any) -> IntegritySpec:
    d = c.mapping("integrity", value, ("sample",))
    raw = d.get("sample")
    expected = "auto, all, none, or a whole number of devices >= 1 (read back at random)"
    if raw is None:
        return IntegritySpec()
    if isinstance(raw, str) and raw in ("auto", "all", "none"):
        return IntegritySpec(sample=raw)
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1:
        return IntegritySpec(sample=raw)
    c.bad("integrity.sample", raw, expected)
    return IntegritySpec()


def _events(c: Checker, value: Any, target: Target, fleet: FleetSpec, duration: float) -> tuple[ScenarioEvent, ...]:
    """``events: [{at: 40s, action: drop_mqtt}, ...]``: harness actions at given times of the run."""
    if value is None:
        return ()
    if not isinstance(value, list):
        c.bad("events", value, "a list of {at, action} mappings")
        return ()
    out = []
    for i, item in enumerate(value):
        path = f"events[{i}]"
        d = c.mapping(path, item, ("at", "action"))
        if not d:
            continue
        ok = c.required(path, d, "at", DURATION_HINT) & c.required(path, d, "action", ", ".join(EVENT_ACTIONS))
        if not ok:
            continue
        at = c.duration(f"{path}.at", d["at"], None, positive=False)
        action = c.choice(f"{path}.action", d["action"], tuple(EVENT_ACTIONS), None)
        if at is None or action is None:
            continue
        if at >= duration:
            c.bad(f"{path}.at", d["at"], f"a time before the run's end ({duration:g} s)")
            continue
        if action == "drop_mqtt":
            if target.kind != "emulator":
                c.bad(f"{path}.action", action, "an action the target allows: drop_mqtt needs the embedded "
                      "emulator (target.kind: emulator), whose admin endpoint closes the connections")
                continue
            if not any(cls.transport == "mqtt" for cls in fleet.classes):
                c.bad(f"{path}.action", action, "drop_mqtt with MQTT devices (a class with transport: mqtt)")
                continue
        out.append(ScenarioEvent(float(at), str(action)))
    return tuple(sorted(out, key=lambda e: e.at))


def _limits_table(c: Checker, target: Target) -> Any:
    """The limits table the run will use (None when its file is broken: the problem is listed)."""
    from harness.limits import LimitsTable, load_limits

    try:
        return load_limits(target.limits) if target.limits and Path(target.limits).is_file() else LimitsTable()
    except ConfigError as exc:  # the limits file's own problems, each under the field naming the file
        for line in getattr(exc, "problems", None) or str(exc).splitlines():
            c.add("target.limits", line)
        return None


def check_overrides(scenario: Scenario, *, duration: Any, users: Any, target_url: Any, throttle: Any) -> None:
    """Validate ``Scenario.with_overrides`` arguments the way the file's fields are."""
    c = Checker(f"{scenario.source} (override)")
    if duration is not None:
        c.duration("duration", duration, None)
    if users is not None:
        n = len(scenario.fleet.classes)
        c.number("users", users, None, lo=n, integer=True)
    if target_url is not None:
        c.string("target.url", target_url, None, URL_RE, "an http(s) URL like https://api.losant.com")
    if throttle is not None:
        c.choice("pacing.throttle", throttle, ("respect", "off"), None)
    c.check()
