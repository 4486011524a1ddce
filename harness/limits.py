"""The documented Losant REST API throttles and limits, as data.

This is the one module the emulator shares with the rest of the harness: the
emulator enforces these limits and the scheduler plans within them, so both must
read the same table. Where the documents leave a detail open (window model, shared
or separate per-device counters, the key of MQTT publish) the default is the reading
the documents support best (see ``docs/LIMITS.md``) and a ``--limits FILE`` YAML
overrides it::

    window_model: sliding        # sliding | fixed | token_bucket
    device_counter: separate     # separate | shared (one counter for state, command, connection status)
    job_seconds: 2.0             # simulated duration of long-running jobs (exports, archives, ...)
    limits:
      device.sendState: {count: 5, window: 1.0}
      application.mqttPublishMessage: {key: application}
      mqtt.publishIn: {count: 5, window: 1.0}   # the MQTT broker's rows override the same way
    mqtt:                        # the broker's ban and refusal policy (MqttPolicy)
      ban_seconds: 1.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from harness.checking import Checker, InputError, read_yaml

Kind = Literal["rate", "concurrency", "size"]
WindowModel = Literal["sliding", "fixed", "token_bucket"]

#: What a limit is counted per; the emulator derives the key value from the request.
KEY_KINDS = (
    "device",  # the target device of the path (a gateway's peripheral counts as itself)
    "application",
    "topic",  # (application, MQTT topic)
    "virtual_button",  # (flow, button key)
    "owner",  # the application's owner (sandbox user or organization)
    "dashboard",
    "notebook",
    "data_table",
    "instance",
    "request",  # a single request (size caps)
    "device_topic",  # MQTT: (device, topic) of a message, one counter per direction
    "connection",  # MQTT: one broker connection
)
WINDOW_MODELS = ("sliding", "fixed", "token_bucket")
#: How a run treats these limits (a scenario's ``pacing.throttle``): keep within them, go over
#: them on purpose to see the throttle answer, or ignore them. The one list the scenario, the
#: ledger and the judge share.
PacingMode = Literal["respect", "probe", "off"]
PACING_MODES: tuple[PacingMode, ...] = get_args(PacingMode)
DEVICE_COUNTER_MODES = ("separate", "shared")
DEVICE_MESSAGE_OPS = ("device.sendState", "device.sendCommand", "device.setConnectionStatus")
MiB = 1024 * 1024


@dataclass(frozen=True)
class Limit:
    """One row of the documented table.

    ``count`` is calls per ``window`` seconds for a rate limit, simultaneous
    running jobs for a concurrency limit, and bytes for a size cap. A limit naming
    several operations gives them one shared counter.
    """

    name: str
    operations: tuple[str, ...]
    kind: Kind
    count: int
    key: str
    window: float | None = None
    provenance: str = ""
    note: str = ""
    #: "rest" rows are counted per API call; "mqtt" rows (``LimitsTable.mqtt``) by the broker, per message
    transport: str = "rest"

    @property
    def rate_per_second(self) -> float | None:
        if self.kind != "rate" or not self.window:
            return None
        return self.count / self.window


def _rate(name: str, count: int, window: float, key: str, prov: str, note: str = "") -> Limit:
    return Limit(name, (name,), "rate", count, key, window, prov, note)


def _conc(name: str, key: str, prov: str = "[Seed]") -> Limit:
    return Limit(name, (name,), "concurrency", 1, key, None, prov, "one running job at a time")


DOCUMENTED: tuple[Limit, ...] = (
    _rate("device.sendState", 30, 15.0, "device", "[O][Seed]", "per device; a gateway's traffic counts per peripheral"),
    _rate("device.sendCommand", 30, 15.0, "device", "[O][Seed]"),
    _rate("device.setConnectionStatus", 30, 15.0, "device", "[Seed]"),
    _rate("application.mqttPublishMessage", 30, 15.0, "topic", "[Seed]", "key per topic as the broker does [I]"),
    _rate("events.post", 15, 15.0, "application", "[C][N][Seed]", "the one documented 429"),
    _rate("flow.pressVirtualButton", 100, 10.0, "virtual_button", "[O][Seed]"),
    _rate("embeddedDeployments.export", 1, 300.0, "application", "[Seed]"),
    _rate("notebook.requestInputDataExport", 1, 900.0, "notebook", "[Seed]"),
    _conc("device.export", "device"),
    _conc("dataTableRows.export", "data_table"),
    _conc("application.archiveData", "application"),
    _conc("application.backfillArchiveData", "application"),
    _conc("application.export", "application"),
    _conc("application.fullDataTablesArchive", "application"),
    _conc("application.fullEventsArchive", "application"),
    _conc("application.import", "application"),
    # "one concurrent import or clone per owner" [Seed]: one slot shared by both operations
    Limit("application.clone", ("application.clone", "applications.import"), "concurrency", 1, "owner", None, "[Seed]",
          "one running clone or applications import per owner, shared"),
    _conc("dashboard.sendReport", "dashboard"),
    _conc("data.export", "application"),
    _conc("devices.export", "application"),
    _conc("devices.payloadCounts", "application"),
    _conc("events.export", "application"),
    _conc("instance.generateReport", "instance"),
    Limit("data.timeSeriesQuery", ("data.timeSeriesQuery",), "size", 30 * MiB, "request", None, "[Seed]", "answer size"),
    Limit("dataTableRows.get", ("dataTableRows.get", "dataTableRows.query"), "size", 20 * MiB, "request", None, "[Seed]", "answer size"),
    Limit("files.post", ("files.post",), "size", 10 * MiB, "request", None, "[Seed]", "request body size"),
)


def _mqtt(name: str, count: int, key: str, note: str, kind: Kind = "rate") -> Limit:
    return Limit(name, (name,), kind, count, key, 15.0 if kind == "rate" else None, "[M][N]", note, "mqtt")


#: The broker's rows (REFERENCE 9). Kept apart from ``DOCUMENTED`` (``LimitsTable.mqtt``) and marked
#: ``transport="mqtt"``: they count messages and connections, never REST calls.
MQTT_DOCUMENTED: tuple[Limit, ...] = (
    _mqtt("mqtt.publishIn", 30, "device_topic", "messages one device publishes on one topic"),
    _mqtt("mqtt.publishOut", 30, "device_topic", "messages the broker sends one device on one topic"),
    _mqtt("mqtt.connectionMessages", 300, "connection", "messages of one connection, both directions"),
    _mqtt("mqtt.newConnections", 300, "application", "new device connections of one application"),
    _mqtt("mqtt.messageSize", 256 * 1024, "request", "bytes of one message payload", "size"),
)
MQTT_REFUSALS = ("connack", "drop")


@dataclass(frozen=True)
class MqttPolicy:
    """What the documents leave open about the broker's ban and refusals [I] (docs/LIMITS.md).

    A device over a message rate limit is disconnected and banned for ``ban_seconds``;
    each further offence while earlier ones are remembered multiplies the ban by
    ``ban_factor``, up to ``ban_max_seconds``; offences are forgotten ``ban_forget_seconds``
    after the ban they caused ends. A refused connect (bad credentials: ``refuse_credentials``;
    banned or over the new-connection limit: ``refuse_limited``) gets a CONNACK with an
    error code or a dropped socket.
    """

    ban_seconds: float = 30.0
    ban_factor: float = 2.0
    ban_max_seconds: float = 3600.0
    ban_forget_seconds: float = 3600.0
    refuse_credentials: str = "connack"
    refuse_limited: str = "connack"

    def ban_for(self, offences: int) -> float:
        """The ban after the ``offences``-th remembered offence (1 = the first)."""
        return min(self.ban_max_seconds, self.ban_seconds * self.ban_factor ** max(0, offences - 1))


_POLICY_NUMBERS = ("ban_seconds", "ban_factor", "ban_max_seconds", "ban_forget_seconds")
_POLICY_CHOICES = ("refuse_credentials", "refuse_limited")


def _parse_mqtt_policy(c: Checker, data: object) -> MqttPolicy:
    d = c.mapping("", data, _POLICY_NUMBERS + _POLICY_CHOICES, "a mapping of ban and refusal fields")
    default = MqttPolicy()
    numbers = {key: c.number(key, d.get(key), float(getattr(default, key)), lo=1 if key == "ban_factor" else 0,
                             lo_open=key != "ban_factor")  # a factor below 1 would shorten repeat offenders' bans
               for key in _POLICY_NUMBERS}
    return MqttPolicy(ban_seconds=numbers["ban_seconds"], ban_factor=numbers["ban_factor"],
                      ban_max_seconds=numbers["ban_max_seconds"], ban_forget_seconds=numbers["ban_forget_seconds"],
                      refuse_credentials=c.choice("refuse_credentials", d.get("refuse_credentials"), MQTT_REFUSALS,
                                                  default.refuse_credentials),
                      refuse_limited=c.choice("refuse_limited", d.get("refuse_limited"), MQTT_REFUSALS,
                                              default.refuse_limited))


#: A malformed limits file: the one error type of every input file (``problems``: one line each).
LimitsError = InputError


@dataclass(frozen=True)
class LimitsTable:
    """The limits in force, with the model choices the documents leave open."""

    limits: tuple[Limit, ...] = DOCUMENTED
    window_model: WindowModel = "sliding"
    job_seconds: float = 2.0
    mqtt: tuple[Limit, ...] = MQTT_DOCUMENTED
    mqtt_policy: MqttPolicy = field(default_factory=MqttPolicy)
    _by_op: dict[str, tuple[Limit, ...]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        index: dict[str, list[Limit]] = {}
        for limit in self.limits:
            for op in limit.operations:
                index.setdefault(op, []).append(limit)
        object.__setattr__(self, "_by_op", {op: tuple(v) for op, v in index.items()})

    def for_operation(self, operation: str) -> tuple[Limit, ...]:
        """Every limit that counts calls of ``operation`` (empty when none does)."""
        return self._by_op.get(operation, ())

    def by_name(self, name: str) -> Limit:
        """The row named ``name``, or the one row counting an operation of that name (so
        ``applications.import`` finds the clone/import row it shares)."""
        for limit in self.limits:
            if limit.name == name:
                return limit
        rows = [lim for lim in self.limits if name in lim.operations]
        if len(rows) == 1:
            return rows[0]
        raise KeyError(name)

    def mqtt_limit(self, name: str) -> Limit:
        """One of the broker's rows (``mqtt.publishIn``, ...)."""
        for limit in self.mqtt:
            if limit.name == name:
                return limit
        raise KeyError(name)

    def rate_limits(self) -> tuple[Limit, ...]:
        return tuple(lim for lim in self.limits if lim.kind == "rate")

    @property
    def device_counter(self) -> str:
        return "shared" if any(lim.name == "device.messages" for lim in self.limits) else "separate"

    def with_shared_device_counter(self) -> LimitsTable:
        """Merge state, command and connection status into one per-device counter.

        The seed list says the three calls use "the same throttle"; the MQTT pages
        count directions separately. Shared takes the strictest of the three rows.
        """
        parts = [lim for lim in self.limits if lim.operations[0] in DEVICE_MESSAGE_OPS and len(lim.operations) == 1]
        if not parts:
            return self
        strictest = min(parts, key=lambda lim: lim.count / (lim.window or 1.0))
        merged = replace(strictest, name="device.messages", operations=DEVICE_MESSAGE_OPS,
                         note="one counter per device for state, command and connection status")
        rest = tuple(lim for lim in self.limits if lim not in parts)
        return replace(self, limits=(merged,) + rest)


TOP_FIELDS = ("window_model", "device_counter", "job_seconds", "limits", "mqtt")
ROW_FIELDS = ("count", "window", "key")


def _override(c: Checker, lim: Limit, fields: object, path: str) -> Limit:
    """A row with count, window (rate rows) and key (REST rows) overridden as the file says.

    A broker row's key is what the broker counts, so the file may not move it."""
    allowed = tuple(f for f in ROW_FIELDS if (f != "window" or lim.kind == "rate") and (f != "key" or lim.transport == "rest"))
    if not isinstance(fields, dict):
        c.bad(path, fields, f"a mapping with {', '.join(allowed)}")
        return lim
    for fkey in fields:
        if fkey in allowed:
            continue
        if fkey in ROW_FIELDS:
            why = (f"{lim.name} is an MQTT limit, keyed by what the broker counts ({lim.key})" if fkey == "key"
                   else f"{lim.name} is a {lim.kind} limit and has no window")
            c.add(f"{path}.{fkey}", f"is not allowed: {why}; allowed: {', '.join(allowed)}")
        else:
            c.unknown(f"{path}.{fkey}", str(fkey), allowed)
    count = c.number(f"{path}.count", fields.get("count"), lim.count, lo=1, integer=True)
    window = c.number(f"{path}.window", fields.get("window"), lim.window, lo=0, lo_open=True) \
        if "window" in allowed else lim.window
    key = c.choice(f"{path}.key", fields.get("key"), KEY_KINDS, lim.key) if "key" in allowed else lim.key
    return replace(lim, count=count, window=window, key=key)


def parse_limits(data: object, source: str = "<limits>") -> LimitsTable:
    """Build the table from an override mapping; one ``LimitsError`` lists every problem with file and field."""
    if data is None:
        return LimitsTable()
    c = Checker(source)
    if not isinstance(data, dict):
        c.add("", f"the top level must be a mapping with {', '.join(TOP_FIELDS)}; got {type(data).__name__}")
        c.check()
    top = c.mapping("", data, TOP_FIELDS)
    default = LimitsTable()
    model = c.choice("window_model", top.get("window_model"), WINDOW_MODELS, default.window_model)
    job_seconds = c.number("job_seconds", top.get("job_seconds"), default.job_seconds, lo=0, lo_open=True)
    counter = c.choice("device_counter", top.get("device_counter"), DEVICE_COUNTER_MODES, "separate")
    limits, mqtt_rows = list(default.limits), list(default.mqtt)
    names, mqtt_names = [lim.name for lim in limits], [lim.name for lim in mqtt_rows]
    overrides = c.mapping("limits", top.get("limits"), None, "a mapping of limit name to {count, window, key}")
    for name, fields in overrides.items():
        path = f"limits.{name}"
        if name in mqtt_names:
            i = mqtt_names.index(name)
            mqtt_rows[i] = _override(c, mqtt_rows[i], fields, path)
            continue
        try:
            i = names.index(default.by_name(str(name)).name)  # a shared row answers to each operation's name too
        except KeyError:
            c.unknown(path, str(name), names + mqtt_names, "limit")
            continue
        limits[i] = _override(c, limits[i], fields, path)
    policy = _parse_mqtt_policy(c.under("mqtt"), top["mqtt"]) if top.get("mqtt") is not None else MqttPolicy()
    c.check()
    table = LimitsTable(tuple(limits), window_model=model, job_seconds=job_seconds, mqtt=tuple(mqtt_rows),
                        mqtt_policy=policy)
    return table.with_shared_device_counter() if counter == "shared" else table


def load_limits(path: str | Path | None) -> LimitsTable:
    """The documented table, or the table with a YAML file's overrides applied."""
    if path is None:
        return LimitsTable()
    return parse_limits(read_yaml(path, "limits file"), str(Path(path)))


def table_to_dict(table: LimitsTable) -> dict[str, Any]:
    """The whole table as plain data, saved in each run folder so ``analyze`` judges with the limits in force."""
    def row(lim: Limit) -> dict[str, Any]:
        return {"name": lim.name, "operations": list(lim.operations), "kind": lim.kind, "count": lim.count,
                "key": lim.key, "window": lim.window, "provenance": lim.provenance, "note": lim.note,
                "transport": lim.transport}

    return {
        "window_model": table.window_model,
        "job_seconds": table.job_seconds,
        "limits": [row(lim) for lim in table.limits],
        "mqtt": [row(lim) for lim in table.mqtt],
        "mqtt_policy": asdict(table.mqtt_policy),
    }


def table_from_dict(data: dict[str, Any]) -> LimitsTable:
    """The inverse of ``table_to_dict``."""
    def rows(items: list[dict[str, Any]]) -> tuple[Limit, ...]:
        return tuple(Limit(d["name"], tuple(d["operations"]), d["kind"], int(d["count"]), d["key"], d.get("window"),
                           d.get("provenance", ""), d.get("note", ""), d.get("transport", "rest")) for d in items)

    mqtt = rows(data["mqtt"]) if "mqtt" in data else MQTT_DOCUMENTED  # run folders written before the broker
    return LimitsTable(rows(data["limits"]), window_model=data.get("window_model", "sliding"),
                       job_seconds=float(data.get("job_seconds", 2.0)), mqtt=mqtt,
                       mqtt_policy=MqttPolicy(**data.get("mqtt_policy", {})))
