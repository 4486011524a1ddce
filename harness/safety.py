"""Live-tenant safety: know what a run will cost a real Losant tenant before it starts.

Against anything but the embedded emulator, the harness refuses ``probe`` mode and
any planned rate above a documented limit unless the user passes the flag that names
the risk, shows the planned peak rate per limit and the payloads the run will
consume (payloads are billed), and asks for confirmation (``--yes`` when headless).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError
from harness.limits import LimitsTable

RISK_FLAG = "--allow-exceeding-live-limits"


@dataclass(frozen=True)
class LimitPlan:
    limit: str
    documented_per_s: float
    planned_peak_per_s: float

    @property
    def over(self) -> bool:
        return self.planned_peak_per_s > self.documented_per_s * (1 + 1e-9)


@dataclass(frozen=True)
class Budget:
    """``work``: (operation, calls at most) for calls that start real work on the tenant
    (exports, archives, clones, imports, reports, payload counts: each accepted call is a
    job); ``upload_bytes``: request bytes of file uploads; ``seeded_bytes``: state bytes a
    time-series size probe writes into one device."""

    limits: tuple[LimitPlan, ...]
    payloads: int
    probe: bool
    work: tuple[tuple[str, int], ...] = ()
    upload_bytes: int = 0
    seeded_bytes: int = 0
    table_bytes: int = 0  # row bytes the data table rows size probe inserts (once per table)
    banned_devices: int = 0  # MQTT devices the probe of mqtt.publishIn gets disconnected and banned
    ban_text: str = ""

    @property
    def exceeds(self) -> bool:
        return self.probe or any(p.over for p in self.limits)

    def describe(self) -> str:
        rows = [f"  {p.limit}: planned peak {p.planned_peak_per_s:.3g}/s per key, documented "
                f"{p.documented_per_s:.3g}/s{'  << OVER THE LIMIT' if p.over else ''}" for p in self.limits]
        work = [f"  {op}: starts up to {n:,} job{'s' if n != 1 else ''}" for op, n in self.work]
        if self.upload_bytes:
            work.append(f"  files.post: uploads about {self.upload_bytes:,} bytes of file bodies")
        if self.seeded_bytes:
            work.append(f"  device.sendState: the time-series size probe stores about {self.seeded_bytes:,} bytes "
                        "of states in one device")
        if self.table_bytes:
            work.append(f"  dataTableRows.post: the data table rows size probe inserts about {self.table_bytes:,} bytes "
                        "of rows into operators.objects.data_table")
        if self.banned_devices:
            work.append(f"  mqtt.publishIn: the probe gets {self.banned_devices:,} MQTT device"
                        f"{'s' if self.banned_devices != 1 else ''} disconnected and banned by the broker, "
                        f"again every round ({self.ban_text})")
        return "\n".join(["Planned load on the live tenant:", *rows, *work,
                          f"  payloads this run will consume (billed by Losant): about {self.payloads:,}"])


def plan_budget(scenario: Any, limits: LimitsTable) -> Budget:
    """Peak per-key rate for each rate limit the run touches, and the payload estimate.

    Device traffic: one state call per report interval per device (probe: factor x
    the limit); operators: at most one action per minimum think time each, all of them
    possibly aimed at one device (the worst case a per-device limit sees).
    """
    from harness.schedule.mqtt import MQTT_OPERATIONS

    pacing = scenario.pacing
    peaks: dict[str, float] = {}

    def add(op: str, per_s: float) -> float:
        """Record the peak per limit; returns the rate the ledger lets ``op`` go at per key."""
        paced = per_s
        rows = limits.for_operation(op) or tuple(lim for lim in limits.mqtt if lim.name in MQTT_OPERATIONS.get(op, ()))
        for lim in rows:
            if lim.kind == "rate" and lim.window:
                # what the ledger lets through (schedule.ledger.plan_rule): a probed limit at factor x
                # its rate, every other one (respect, and what a probe leaves alone) within it
                rate = per_s
                if pacing.throttle == "probe" and lim.name in pacing.probe_limits:
                    rate = min(rate, lim.count / lim.window * pacing.probe_factor)
                elif pacing.throttle != "off":
                    rate = min(rate, lim.count / lim.window * (1 - pacing.margin))
                peaks[lim.name] = max(peaks.get(lim.name, 0.0), rate)
                paced = min(paced, rate)
        return paced

    duration = scenario.duration
    payloads = 0
    banned = 0
    probe_in = limits.mqtt_limit("mqtt.publishIn")
    mqtt_probe = pacing.throttle == "probe" and probe_in.name in pacing.probe_limits
    for cls in scenario.fleet.classes:
        if getattr(cls, "transport", "rest") == "mqtt" and mqtt_probe:
            # harness.users.mqtt: rounds of count + 1 back to back, at most one per window + 1 s
            window = float(probe_in.window or 15.0)
            peaks[probe_in.name] = max(peaks.get(probe_in.name, 0.0), (probe_in.count + 1) / window)
            add("mqtt.connect", float(cls.count))
            rounds = math.ceil(duration / (window + 1.0))
            payloads += cls.count * (rounds * (probe_in.count + 1) + 4 * rounds)  # messages, connects, losses, refusals
            banned += cls.count
            continue
        if getattr(cls, "transport", "rest") == "mqtt":  # states are MQTT messages; connecting and disconnecting are payloads
            per_device = add("mqtt.publishState", 1.0 / cls.report_interval)
            add("mqtt.connect", float(cls.count))  # every device connects at once, as the ledger lets them
            payloads += 2 * cls.count
        else:
            per_device = add("device.sendState", 1.0 / cls.report_interval)  # respect drops what the limit refuses
        streams = cls.total_devices
        payloads += math.ceil(streams * duration * per_device - 1e-9) * cls.batch_size
        if cls.connection_status:
            add("device.setConnectionStatus", 2.0 / max(duration, 1.0))
            payloads += 2 * cls.count
    ops = scenario.operators
    if ops.count and ops.actions:
        total_w = sum(a.weight for a in ops.actions)
        actions_per_s = ops.count / max(ops.think_min, 0.1)
        for a in ops.actions:
            share = actions_per_s * a.weight / total_w
            add(a.operation, share)
            if a.action == "send_command":
                payloads += math.ceil(share * duration)
            elif a.action == "send_command_tag":
                payloads += math.ceil(share * duration) * scenario.total_devices
    work, uploads, seeded, extra = _limited_work(scenario, limits)
    def row(name: str) -> Any:
        return limits.mqtt_limit(name) if name.startswith("mqtt.") else limits.by_name(name)

    plans = tuple(LimitPlan(name, row(name).count / (row(name).window or 1.0), peak) for name, peak in sorted(peaks.items()))
    policy = limits.mqtt_policy
    ban_text = (f"{policy.ban_seconds:g} s for a first offence, x{policy.ban_factor:g} for each further one, "
                f"up to {policy.ban_max_seconds:g} s")
    return Budget(plans, payloads + extra, pacing.throttle == "probe", work, uploads, seeded, _table_fill(scenario, limits),
                  banned, ban_text)


#: Operations whose accepted call starts a job on the tenant (the plan lists them).
WORK_OPERATIONS = ("embeddedDeployments.export", "notebook.requestInputDataExport")
#: Per-seeded-state bytes of the time-series size probe (harness.users.probes.SEED_STRING).
_SEED_STATE_BYTES = 60_000
#: Operator actions whose calls are billed payloads (REFERENCE.md 8: button presses, MQTT messages).
_PAYLOAD_ACTIONS = ("press_virtual_button", "mqtt_publish", "set_connection_status", "send_state")


def _table_fill(scenario: Any, limits: LimitsTable) -> int:
    """Row bytes the data table rows size probe inserts (harness.users.probes.rows_round: rows of a
    cap/500-character value, enough for a page past the cap)."""
    pacing = scenario.pacing
    actions = {a.operation for a in scenario.operators.actions} if scenario.operators.count else set()
    for lim in limits.for_operation("dataTableRows.get"):
        if (lim.kind == "size" and pacing.throttle == "probe" and actions & set(lim.operations)
                and (lim.name in pacing.probe_limits or actions & set(pacing.probe_limits))):
            string = max(16, min(_SEED_STATE_BYTES, lim.count // 500))
            return (lim.count // string + 6) * string
    return 0


def _limited_work(scenario: Any, limits: LimitsTable) -> tuple[tuple[tuple[str, int], ...], int, int, int]:
    """Calls of the limited operator actions: (jobs per operation, upload bytes, seeded state
    bytes, payloads). Respect mode: at most the limit's pace (concurrency: count per longest
    job); probe mode: the rounds of harness.users.probes (count + 1 calls per window or job
    length plus a second; one under/over pair per size cap)."""
    ops, pacing, duration = scenario.operators, scenario.pacing, scenario.duration
    if not (ops.count and ops.actions):
        return (), 0, 0, 0
    target = scenario.target
    job_max = target.job_max if target.job_max is not None else (
        limits.job_seconds if target.kind == "emulator" else 3600.0)
    total_w = sum(a.weight for a in ops.actions)
    actions_per_s = ops.count / max(ops.think_min, 0.05)
    work: dict[str, int] = {}
    uploads = seeded = payloads = 0
    for a in ops.actions:
        op = a.operation
        lims = limits.for_operation(op)
        probed = [lim for lim in lims if pacing.throttle == "probe"
                  and (lim.name in pacing.probe_limits or op in pacing.probe_limits)]
        calls = actions_per_s * a.weight / total_w * duration
        for lim in probed or lims:
            if lim.kind == "size":
                continue
            span = (lim.window or 0.0) if lim.kind == "rate" else job_max
            if probed:  # one round of count + 1 calls per span and a second, from the start
                calls = math.ceil(duration / (span + 1.0)) * (lim.count + 1)
            elif pacing.throttle != "off" and span > 0:
                calls = min(calls, (math.floor(duration / span) + 1) * lim.count)
        n = math.ceil(calls - 1e-9)
        if op in WORK_OPERATIONS or any(lim.kind == "concurrency" for lim in lims):
            work[op] = work.get(op, 0) + n
        if a.action in _PAYLOAD_ACTIONS:
            payloads += n
        if a.action == "upload_file":
            caps = [lim.count for lim in lims if lim.kind == "size"]
            uploads += 2 * caps[0] if probed and caps else n * (a.size or 1024)
        if a.action == "time_series" and probed:
            cap = next((lim.count for lim in probed if lim.kind == "size"), 0)
            states = cap // _SEED_STATE_BYTES + 10
            seeded += states * _SEED_STATE_BYTES
            payloads += states
    return tuple(sorted(work.items())), uploads, seeded, payloads


def check_live_run(budget: Budget, allow_risk: bool, assume_yes: bool, interactive: bool,
                   ask: Any = input) -> None:
    """Refuse or confirm a live run; raises ConfigError with what to do next."""
    if budget.exceeds and not allow_risk:
        why = "probe mode drives limits past their documented count" if budget.probe else \
            "the planned rate exceeds a documented limit"
        raise ConfigError(f"refusing to run against a live tenant: {why}.\n{budget.describe()}\n"
                          f"Pass {RISK_FLAG} if you accept throttling (and possible disconnects) on that tenant.")
    if assume_yes:
        return
    if not interactive:
        raise ConfigError(f"{budget.describe()}\nA headless run against a live tenant needs --yes to confirm.")
    answer = ask(f"{budget.describe()}\nProceed against the live tenant? [y/N] ")
    if str(answer).strip().lower() not in ("y", "yes"):
        raise ConfigError("live run not confirmed; nothing was sent")


def pacing_warnings(scenario: Any, limits: LimitsTable) -> list[str]:
    """Classes whose report interval asks for more than ``respect`` mode will send.

    Not an error (a scenario may ask for the most a device may send), but the person
    should know the excess is dropped and counted rather than sent.
    """
    if scenario.pacing.throttle != "respect":
        return []
    out = mqtt_plan(scenario, limits)
    for cls in scenario.fleet.classes:
        rows = [limits.mqtt_limit("mqtt.publishIn")] if getattr(cls, "transport", "rest") == "mqtt" \
            else limits.for_operation("device.sendState")
        for lim in rows:
            if lim.kind != "rate" or not lim.window:
                continue
            allowed = lim.count / lim.window * (1 - scenario.pacing.margin)
            asked = 1.0 / cls.report_interval
            if asked > allowed:
                out.append(f"fleet.classes[{cls.name}].report_interval asks for {asked:.3g} states/s per device; "
                           f"respect mode sends at most {allowed:.3g}/s ({lim.name}: {lim.count} per {lim.window:g} s"
                           + (f" less the {scenario.pacing.margin:.1%} margin" if scenario.pacing.margin else "")
                           + ") and counts the rest as dropped")
    return out


def mqtt_plan(scenario: Any, limits: LimitsTable) -> list[str]:
    """How long the MQTT devices take to be connected, when respect mode keeps the broker's
    new-connection limit (the first ``count`` at once, each further ``count`` a window later)."""
    from harness.schedule import full_connection_seconds

    devices = sum(c.count for c in scenario.fleet.classes if getattr(c, "transport", "rest") == "mqtt")
    if not devices:
        return []
    lim = limits.mqtt_limit("mqtt.newConnections")
    window = float(lim.window or 0.0)
    allowed = max(1, int(lim.count * (1 - scenario.pacing.margin)))
    seconds = full_connection_seconds(devices, allowed, window)
    text = (f"{devices} MQTT connections within mqtt.newConnections ({lim.count} per {window:g} s per application): "
            f"the fleet is fully connected after about {seconds:g} s")
    if seconds >= scenario.duration:
        text += f", not within the run's {scenario.duration:g} s (states of devices not yet connected are skipped)"
    return [text]
