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
    limits: tuple[LimitPlan, ...]
    payloads: int
    probe: bool

    @property
    def exceeds(self) -> bool:
        return self.probe or any(p.over for p in self.limits)

    def describe(self) -> str:
        rows = [f"  {p.limit}: planned peak {p.planned_peak_per_s:.3g}/s per key, documented "
                f"{p.documented_per_s:.3g}/s{'  << OVER THE LIMIT' if p.over else ''}" for p in self.limits]
        return "\n".join(["Planned load on the live tenant:", *rows,
                          f"  payloads this run will consume (billed by Losant): about {self.payloads:,}"])


def plan_budget(scenario: Any, limits: LimitsTable) -> Budget:
    """Peak per-key rate for each rate limit the run touches, and the payload estimate.

    Device traffic: one state call per report interval per device (probe: factor x
    the limit); operators: at most one action per minimum think time each, all of them
    possibly aimed at one device (the worst case a per-device limit sees).
    """
    pacing = scenario.pacing
    peaks: dict[str, float] = {}

    def add(op: str, per_s: float) -> None:
        for lim in limits.for_operation(op):
            if lim.kind == "rate" and lim.window:
                rate = per_s
                if pacing.throttle == "probe" and lim.name in pacing.probe_limits:
                    rate = max(rate, lim.count / lim.window * pacing.probe_factor)
                elif pacing.throttle == "respect":
                    rate = min(rate, lim.count / lim.window * (1 - pacing.margin))
                peaks[lim.name] = max(peaks.get(lim.name, 0.0), rate)

    duration = scenario.duration
    payloads = 0
    for cls in scenario.fleet.classes:
        add("device.sendState", 1.0 / cls.report_interval)
        streams = cls.total_devices
        payloads += math.ceil(streams * duration / cls.report_interval) * cls.batch_size
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
    plans = tuple(LimitPlan(name, limits.by_name(name).count / (limits.by_name(name).window or 1.0), peak)
                  for name, peak in sorted(peaks.items()))
    return Budget(plans, payloads, pacing.throttle == "probe")


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
    out = []
    for cls in scenario.fleet.classes:
        for lim in limits.for_operation("device.sendState"):
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
