"""The resolved scenario: frozen dataclasses, their derived numbers, and overrides.

Everything here is data that ``parse.py`` has already validated; nothing reads files
or the environment. Field names mirror the YAML keys so that ``docs/SCENARIOS.md``,
the file and the code read the same (``OperatorAction.name`` is the command name of
``send_command: {name: reboot}``; the action itself is ``OperatorAction.action``).
Durations are floats in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Mapping

from harness.errors import ConfigError
from harness.limits import PacingMode
from harness.scenario.criteria import Criteria

TargetKind = Literal["emulator", "live"]
TargetAuth = Literal["user", "token", "key"]
DeviceKind = Literal["standalone", "gateway", "peripheral"]
FleetMode = Literal["users", "multiplexed"]
Transport = Literal["rest", "mqtt"]
#: The broker of a live target when ``target.mqtt_url`` is not given (REFERENCE 9).
LIVE_MQTT_URL = "mqtts://broker.losant.com:8883"
ThrottleMode = PacingMode  # harness.limits.PACING_MODES lists them

#: Environment variables each auth method reads; the only place credentials come from.
CREDENTIAL_ENV: dict[str, tuple[str, ...]] = {
    "user": ("LOSANT_EMAIL", "LOSANT_PASSWORD"),
    "token": ("LOSANT_API_TOKEN",),
    "key": ("LOSANT_ACCESS_KEY", "LOSANT_ACCESS_SECRET"),
}

#: The documented operation each operator action performs (the name samples and the
#: ledger use): the operation names of ``harness/limits.py`` where the call is limited.
ACTION_OPERATIONS: dict[str, str] = {
    "list_devices": "devices.get",
    "get_device": "device.get",
    "time_series": "data.timeSeriesQuery",
    "last_value": "data.lastValueQuery",
    "state_history": "device.getState",
    "send_command": "device.sendCommand",
    "send_command_tag": "devices.sendCommand",
    "create_event": "events.post",
    # every other limited endpoint of REFERENCE.md section 8
    "send_state": "device.sendState",
    "set_connection_status": "device.setConnectionStatus",
    "mqtt_publish": "application.mqttPublishMessage",
    "press_virtual_button": "flow.pressVirtualButton",
    "export_embedded_deployments": "embeddedDeployments.export",
    "export_notebook_data": "notebook.requestInputDataExport",
    "export_device_data": "device.export",
    "export_data_table": "dataTableRows.export",
    "archive_data": "application.archiveData",
    "backfill_archive_data": "application.backfillArchiveData",
    "export_application": "application.export",
    "archive_data_tables": "application.fullDataTablesArchive",
    "archive_events": "application.fullEventsArchive",
    "import_application": "application.import",
    "clone_application": "application.clone",
    "import_applications": "applications.import",
    "send_dashboard_report": "dashboard.sendReport",
    "export_data": "data.export",
    "export_devices": "devices.export",
    "count_payloads": "devices.payloadCounts",
    "export_events": "events.export",
    "generate_instance_report": "instance.generateReport",
    "get_data_table_rows": "dataTableRows.get",
    "query_data_table_rows": "dataTableRows.query",
    "upload_file": "files.post",
}

#: The platform object each action needs named (``operators.objects``): a live tenant must
#: name real ones; the emulator accepts any 24-hex id, so defaults are derived from the run tag.
ACTION_OBJECTS: dict[str, tuple[str, ...]] = {
    "press_virtual_button": ("flow", "button"),
    "export_notebook_data": ("notebook",),
    "export_data_table": ("data_table",),
    "get_data_table_rows": ("data_table",),
    "query_data_table_rows": ("data_table",),
    "send_dashboard_report": ("dashboard", "email"),
    "generate_instance_report": ("instance",),
}
OBJECT_FIELDS = ("flow", "button", "dashboard", "data_table", "notebook", "instance", "owner", "email")

#: Operations the device users perform (state, command polls, connection status, sign-in).
DEVICE_OPERATIONS = ("device.sendState", "device.getCommand", "device.setConnectionStatus", "auth.device")
#: What MQTT devices record (harness.record's docstring: the MQTT samples).
MQTT_SAMPLE_OPERATIONS = ("mqtt.connect", "mqtt.publishState", "mqtt.commandDelivery", "mqtt.stateVisible",
                          "mqtt.disconnect")
#: Every operation a run may record; criteria may name any of them.
HARNESS_OPERATIONS = tuple(sorted(set(ACTION_OPERATIONS.values()) | set(DEVICE_OPERATIONS) | {"auth.user"}
                                  | set(MQTT_SAMPLE_OPERATIONS)))


def format_duration(seconds: float) -> str:
    """The shortest duration string that parses back to ``seconds``.

    >>> format_duration(120), format_duration(0.5), format_duration(3600), format_duration(7.5)
    ('2m', '500ms', '1h', '7.5s')
    """
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    ms = seconds * 1000
    if seconds < 1 and abs(ms - round(ms)) < 1e-9:
        return f"{int(round(ms))}ms"
    return f"{seconds!r}s"


@dataclass(frozen=True)
class Target:
    """Where the load goes. Credentials are never fields: see ``credential_env``.

    ``job_min``/``job_max``: how long the target's jobs (exports, archives, clones, ...)
    run, when the scenario states it (``job_seconds``): respect mode starts no second job
    of a key before ``job_max`` has passed; the judge calls a second job accepted within
    ``job_min`` a missed throttle. None: the emulator's is its limits table's
    ``job_seconds``; a live tenant's is unknown.
    """

    kind: TargetKind = "emulator"
    url: str | None = None
    application_id: str | None = None
    auth: TargetAuth = "user"
    limits: str | None = None  # emulator only; resolved against the scenario file's folder
    job_min: float | None = None
    job_max: float | None = None
    #: The MQTT broker (``mqtt[s]://host:port``): live only (default ``LIVE_MQTT_URL``); the
    #: embedded emulator's broker is the one it starts (``harness.target``).
    mqtt_url: str | None = None

    def job_seconds_dict(self) -> Any:
        """``job_seconds`` as the file states it (a number, or {min, max})."""
        if self.job_min is None or self.job_max is None:
            return None
        if self.job_min == self.job_max:
            return self.job_min
        return {"min": self.job_min, "max": self.job_max}

    def credential_env(self) -> tuple[str, ...]:
        """Environment variables the harness needs for this target (none for the emulator)."""
        return CREDENTIAL_ENV[self.auth] if self.kind == "live" else ()

    def missing_credentials(self, env: Mapping[str, str]) -> list[str]:
        """Names from ``credential_env()`` unset or empty in ``env`` (pass ``os.environ``)."""
        return [name for name in self.credential_env() if not env.get(name)]


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute and its value generator; unused parameters stay None.

    ``random_walk``: start, step, min, max (bounds optional); ``number``: min, max,
    integer; ``boolean``: p_true; ``string``: values.
    """

    name: str
    type: Literal["random_walk", "number", "boolean", "string"]
    min: float | None = None
    max: float | None = None
    start: float | None = None
    step: float | None = None
    integer: bool = False
    p_true: float | None = None
    values: tuple[str, ...] = ()

    @property
    def data_type(self) -> str:
        """The Losant attribute ``dataType`` to declare on the device."""
        return {"boolean": "boolean", "string": "string"}.get(self.type, "number")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for key in ("start", "step", "min", "max", "p_true"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.integer:
            out["integer"] = True
        if self.values:
            out["values"] = list(self.values)
        return out


@dataclass(frozen=True)
class PlannedDevice:
    """A device the scenario asks for, named deterministically, before provisioning.

    ``index`` is the standalone device's or gateway's number in its class;
    ``peripheral`` the peripheral's number under its gateway (None otherwise).
    """

    name: str
    class_name: str
    kind: DeviceKind
    index: int
    gateway: str | None = None
    peripheral: int | None = None


@dataclass(frozen=True)
class DeviceClass:
    """A group of identical devices (for gateways: ``count`` gateways with ``peripherals`` each)."""

    name: str
    count: int
    report_interval: float
    kind: Literal["standalone", "gateway"] = "standalone"
    peripherals: int = 0
    tags: Mapping[str, str] = field(default_factory=dict)
    attributes: tuple[AttributeSpec, ...] = ()
    jitter: float = 0.1
    batch_size: int = 1
    command_poll_interval: float | None = None
    connection_status: bool = False
    #: ``mqtt``: the devices hold one broker connection each, publish states over it and get
    #: commands pushed (``harness.users.mqtt``); ``rest``: they call the REST API.
    transport: Transport = "rest"

    @property
    def total_devices(self) -> int:
        """Devices to provision: standalone devices, or gateways plus their peripherals."""
        return self.count * (1 + self.peripherals) if self.kind == "gateway" else self.count

    @property
    def state_streams(self) -> int:
        """Devices whose state is reported (a gateway reports for itself and each peripheral)."""
        return self.total_devices

    def position(self, index: int, peripheral: int | None = None) -> int:
        """A device's place in ``devices()`` order: the ``first`` to pass to
        ``FleetTimeline.for_devices`` (with ``of=total_devices``) for a user's slice.

        >>> DeviceClass("gw", 3, 10.0, kind="gateway", peripherals=4).position(2, 1)
        12
        """
        per = 1 + self.peripherals if self.kind == "gateway" else 1
        return index * per + (0 if peripheral is None else peripheral + 1)

    def devices(self, run_tag: str) -> list[PlannedDevice]:
        """Every device of the class in a fixed order: a gateway precedes its peripherals.

        >>> DeviceClass("gw", 1, 10.0, kind="gateway", peripherals=2).devices("t")[2].name
        't-gw-00000-p001'
        """
        out: list[PlannedDevice] = []
        for i in range(self.count):
            base = f"{run_tag}-{self.name}-{i:05d}"
            out.append(PlannedDevice(base, self.name, self.kind, i))
            for j in range(self.peripherals if self.kind == "gateway" else 0):
                out.append(PlannedDevice(f"{base}-p{j:03d}", self.name, "peripheral", i, base, j))
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "count": self.count, "kind": self.kind}
        if self.kind == "gateway":
            out["peripherals"] = self.peripherals
        out.update(tags=dict(self.tags), attributes={a.name: a.to_dict() for a in self.attributes},
                   report_interval=format_duration(self.report_interval), jitter=self.jitter,
                   batch_size=self.batch_size,
                   command_poll_interval=(None if self.command_poll_interval is None
                                          else format_duration(self.command_poll_interval)),
                   connection_status=self.connection_status)
        if self.transport != "rest":  # only when set: a REST scenario's resolved form (and identity) is unchanged
            out["transport"] = self.transport
        return out


@dataclass(frozen=True)
class FleetSpec:
    mode: FleetMode = "users"
    connections: int = 64
    classes: tuple[DeviceClass, ...] = ()

    @property
    def total_devices(self) -> int:
        return sum(c.total_devices for c in self.classes)

    @property
    def reporters(self) -> int:
        """Devices that authenticate themselves: standalone devices and gateways.

        In ``users`` mode this is the number of device Locust users.
        """
        return sum(c.count for c in self.classes)

    def by_name(self, name: str) -> DeviceClass:
        for c in self.classes:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode}
        if self.mode == "multiplexed":
            out["connections"] = self.connections
        out["classes"] = [c.to_dict() for c in self.classes]
        return out


@dataclass(frozen=True)
class OperatorAction:
    """One weighted operator action; options not used by ``action`` stay None/empty.

    ``name`` is the command name (``send_command``, ``send_command_tag``);
    ``tags`` selects devices (``list_devices``, ``send_command_tag``, ``time_series``,
    ``last_value``); window/resolution are seconds.
    """

    action: str
    weight: float
    tags: Mapping[str, str] = field(default_factory=dict)
    name_filter: str | None = None
    window: float | None = None
    resolution: float | None = None
    aggregation: str | None = None
    limit: int | None = None
    name: str | None = None
    level: str | None = None
    topic: str | None = None  # mqtt_publish
    size: int | None = None  # upload_file: request body bytes

    @property
    def operation(self) -> str:
        """The documented operation (``device.sendCommand``) this action calls."""
        return ACTION_OPERATIONS[self.action]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"weight": self.weight}
        if self.tags:
            out["tags"] = dict(self.tags)
        for key in ("name_filter", "aggregation", "limit", "name", "level", "topic", "size"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        for key in ("window", "resolution"):
            if getattr(self, key) is not None:
                out[key] = format_duration(getattr(self, key))
        return out


@dataclass(frozen=True)
class PlatformObjects:
    """Ids of the objects the limited endpoints act on (``operators.objects``).

    ``button`` is a virtual button's ``key`` in ``flow``; ``owner`` labels the per-owner
    slot of clone and applications import in the samples (the harness cannot read it
    through the API it drives); ``email`` is where exports and reports are sent (none:
    the bodies name no address).
    """

    flow: str | None = None
    button: str | None = None
    dashboard: str | None = None
    data_table: str | None = None
    notebook: str | None = None
    instance: str | None = None
    owner: str | None = None
    email: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in OBJECT_FIELDS if getattr(self, k) is not None}


@dataclass(frozen=True)
class OperatorsSpec:
    count: int = 0
    auth: Literal["user", "token"] = "user"
    think_min: float = 1.0
    think_max: float = 3.0
    actions: tuple[OperatorAction, ...] = ()
    objects: PlatformObjects = field(default_factory=PlatformObjects)

    def to_dict(self) -> dict[str, Any]:
        out = {"count": self.count, "auth": self.auth,
               "think_time": {"min": format_duration(self.think_min), "max": format_duration(self.think_max)},
               "actions": {a.action: a.to_dict() for a in self.actions}}
        objects = self.objects.to_dict()
        if objects:
            out["objects"] = objects
        return out


@dataclass(frozen=True)
class PacingSpec:
    """How the client treats documented rate limits (see ``harness.schedule.Ledger``)."""

    throttle: ThrottleMode = "respect"
    margin: float = 0.0
    probe_limits: tuple[str, ...] = ()
    probe_factor: float = 1.5

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"throttle": self.throttle, "margin": self.margin}
        if self.throttle == "probe":
            out["probe"] = {"limits": list(self.probe_limits), "factor": self.probe_factor}
        return out


@dataclass(frozen=True)
class IntegritySpec:
    """Which devices' accepted states are read back after the run (``harness.readback``).

    ``sample``: ``"auto"`` (all where reads are free: the embedded emulator or a target
    on loopback; a sample of 100 devices on a live tenant), ``"all"``, ``"none"`` (no
    read-back), or a number of devices read at random.
    """

    sample: str | int = "auto"

    def to_dict(self) -> dict[str, Any]:
        return {"sample": self.sample}


#: One-off harness actions a scenario may time (``events``): what each does, in words.
EVENT_ACTIONS: dict[str, str] = {
    "drop_mqtt": "close every MQTT connection of the run's application at once (the emulator's "
                 "DELETE /_emulator/mqtt): a reconnect storm",
}


@dataclass(frozen=True)
class ScenarioEvent:
    """A harness action at a moment of the run (``at`` seconds after its start; ``harness.users.events``)."""

    at: float
    action: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": format_duration(self.at), "action": self.action}


@dataclass(frozen=True)
class Scenario:
    """A validated scenario file. Build with ``load_scenario``/``parse_scenario``."""

    name: str
    fleet: FleetSpec
    description: str = ""
    target: Target = field(default_factory=Target)
    duration: float = 60.0
    ramp_up: float = 50.0
    run_tag: str = ""
    seed: int = 0
    operators: OperatorsSpec = field(default_factory=OperatorsSpec)
    pacing: PacingSpec = field(default_factory=PacingSpec)
    integrity: IntegritySpec = field(default_factory=IntegritySpec)
    events: tuple[ScenarioEvent, ...] = ()
    criteria: Criteria | None = None  # None when the file has none
    criteria_data: Mapping[str, Any] | None = field(default=None, compare=False)
    source: str = field(default="<scenario>", compare=False)

    @property
    def total_devices(self) -> int:
        """Standalone devices + gateways + peripherals."""
        return self.fleet.total_devices

    def planned_devices(self) -> list[PlannedDevice]:
        """Every device to provision, class by class, with its deterministic name."""
        return [d for c in self.fleet.classes for d in c.devices(self.run_tag)]

    def to_dict(self) -> dict[str, Any]:
        """The resolved scenario with every default filled in; parses back to an equal one."""
        target: dict[str, Any] = {"kind": self.target.kind}
        if self.target.kind == "live":
            target.update(url=self.target.url, auth=self.target.auth)
            if self.target.application_id:
                target["application_id"] = self.target.application_id
            if self.target.mqtt_url:
                target["mqtt_url"] = self.target.mqtt_url
        elif self.target.limits:
            target["limits"] = self.target.limits
        if self.target.job_seconds_dict() is not None:
            target["job_seconds"] = self.target.job_seconds_dict()
        out: dict[str, Any] = {
            "name": self.name, "description": self.description, "target": target,
            "duration": format_duration(self.duration), "ramp_up": self.ramp_up, "run_tag": self.run_tag,
            "seed": self.seed, "fleet": self.fleet.to_dict(), "operators": self.operators.to_dict(),
            "pacing": self.pacing.to_dict(), "integrity": self.integrity.to_dict(),
        }
        if self.events:
            out["events"] = [e.to_dict() for e in self.events]
        if self.criteria_data is not None:
            out["criteria"] = _plain(self.criteria_data)
        return out

    def with_overrides(self, *, duration: float | None = None, users: int | None = None,
                       target_url: str | None = None, throttle: ThrottleMode | None = None) -> Scenario:
        """The scenario with CLI overrides applied (validated like the file's values).

        ``users`` rescales the fleet so that ``fleet.reporters`` (standalone devices
        plus gateways, i.e. device users in ``users`` mode) equals it, keeping the
        classes' proportions; operators are unchanged. ``target_url`` points the run
        at a live target (or an emulator started elsewhere) at that URL.
        """
        from harness.scenario.parse import check_overrides  # parse imports this module

        check_overrides(self, duration=duration, users=users, target_url=target_url, throttle=throttle)
        out = self
        if duration is not None:
            out = replace(out, duration=float(duration))
        if users is not None:
            counts = _apportion(users, [c.count for c in out.fleet.classes])
            classes = tuple(replace(c, count=n) for c, n in zip(out.fleet.classes, counts))
            out = replace(out, fleet=replace(out.fleet, classes=classes))
        if target_url is not None:
            out = replace(out, target=replace(out.target, kind="live", url=target_url.rstrip("/"), limits=None))
        if throttle is not None:
            out = replace(out, pacing=replace(out.pacing, throttle=throttle))
        return out


def _apportion(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights``, each part >= 1 (largest remainder).

    >>> _apportion(10, [200, 5, 1])
    [8, 1, 1]
    """
    n = len(weights)
    if total <= n:
        return [1] * n
    # Give every class 1, then split the rest by quota; leftover goes to the largest remainders.
    rest = total - n
    s = sum(weights)
    quotas = [rest * w / s for w in weights]
    parts = [1 + math.floor(q) for q in quotas]
    order = sorted(range(n), key=lambda i: (quotas[i] - math.floor(quotas[i]), weights[i]), reverse=True)
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


#: Devices one multiplexed fleet user drives.
DEVICES_PER_FLEET_USER = 2000
#: MQTT devices one user drives (a greenlet and a socket each: harness.users.mqtt).
DEVICES_PER_MQTT_USER = 2000


def mqtt_groups_per_user(cls: DeviceClass) -> int:
    """Whole devices (gateways with their peripherals) one MQTT user drives: a gateway publishes for
    its peripherals over its own connection, so a chunk never splits it from them (two users would
    open two connections for it, and the broker would close one)."""
    return max(1, DEVICES_PER_MQTT_USER // (1 + cls.peripherals if cls.kind == "gateway" else 1))


def check_distributable(scenario: Scenario) -> None:
    """Refuse, before anything is provisioned, a scenario a distributed run cannot drive as written."""
    transports = sorted({c.transport for c in scenario.fleet.classes})
    if len(transports) > 1:
        names = ", ".join(f"{c.name}: {c.transport}" for c in scenario.fleet.classes)
        raise ConfigError(f"{scenario.source}: fleet.classes mixes REST and MQTT devices ({names}); a distributed run "
                          "drives one transport (one user per worker): run it in one process, or split the scenario")
    if scenario.events:
        raise ConfigError(f"{scenario.source}: events: a distributed run does not time the scenario's events "
                          "(they need one process); run it in one process")


def user_counts(scenario: Scenario, workers: int = 0) -> dict[str, int]:
    """How many Locust users of each kind the scenario needs (fixed counts).

    Distributed (``workers`` > 0): one fleet user per worker drives that worker's share of the REST
    devices, or one MQTT user per worker its share of the MQTT devices (a scenario with both is
    refused, ``check_distributable``).
    """
    counts = {"standalone": 0, "gateway": 0, "multiplexed": 0, "mqtt": 0, "operator": scenario.operators.count}
    if workers:
        mqtt = any(c.transport == "mqtt" for c in scenario.fleet.classes)
        counts["mqtt" if mqtt else "multiplexed"] = workers
        return counts
    if scenario.events:  # one user times the scenario's events (harness.users.events)
        counts["events"] = 1
    for cls in scenario.fleet.classes:
        if cls.transport == "mqtt":  # whatever the fleet mode: chunks of connections (a greenlet each)
            counts["mqtt"] += math.ceil(cls.count / mqtt_groups_per_user(cls))
        elif scenario.fleet.mode == "multiplexed":
            counts["multiplexed"] += math.ceil(cls.total_devices / DEVICES_PER_FLEET_USER)
        else:
            counts[cls.kind] += cls.count
    return counts
