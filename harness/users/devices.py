"""Users that report state: a device, a gateway with its peripherals, or a whole multiplexed fleet.

All three are one loop over a set of reporters driven by an open-loop timeline: a
send's planned time never moves because an earlier response was slow, so lateness
(sent - planned) and the corrected latency can be measured. The ledger may move a
planned time later, only to keep a documented limit; that is part of the plan.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import gevent
from gevent.pool import Pool
from locust import task

from harness.fleet import Device
from harness.users.base import LosantUser


@dataclass
class Reporter:
    """One device whose state a loop sends, and whose token it uses."""

    device: Device
    auth_id: str  # the device that authenticates: itself, or its gateway
    state: Callable[[], dict[str, Any]]  # the next state's data
    batch_size: int
    polls: bool  # polls its commands (peripherals do not connect themselves)
    token: str | None = None
    sent_states: int = field(default=0)


class ReportingUser(LosantUser):
    """Drives ``self.reporters`` on the class's timeline; subclasses choose which devices."""

    abstract = True
    pool_size = 1

    def on_start(self) -> None:
        self.reporters, self.class_cfg = self.ctx.claim(self.claim_kind)
        self.tokens: dict[str, str | None] = {}
        if self.class_cfg.connection_status:
            for r in self.reporters:
                if r.polls:
                    self.set_connection(r, "connected")

    def on_stop(self) -> None:
        if getattr(self, "class_cfg", None) is None:
            return
        try:
            if self.class_cfg.connection_status:
                for r in self.reporters:
                    if r.polls:
                        self.set_connection(r, "disconnected")
        finally:
            self.ctx.release(self.reporters)

    claim_kind = "standalone"

    def token_for(self, r: Reporter, refresh: bool = False) -> str | None:
        if refresh or r.auth_id not in self.tokens:
            self.tokens[r.auth_id] = self.authenticate_device(r.auth_id)
        return self.tokens[r.auth_id]

    def app_path(self, device_id: str, suffix: str) -> str:
        return f"/applications/{self.ctx.fleet.application_id}/devices/{device_id}/{suffix}"

    def wait_until(self, when: float) -> None:
        delay = when - time.time()
        if delay > 0:
            gevent.sleep(delay)

    def _send(self, r: Reporter, op: str, method: str, suffix: str, planned: float, body: Any = None) -> int:
        token = self.token_for(r)
        status, _ = self.call(op, method, self.app_path(r.device.id, suffix), token, r.device.id, planned, body)
        if status == 401:
            self.token_for(r, refresh=True)
        return status

    def send_state(self, r: Reporter, planned: float) -> None:
        base_ms = int(planned * 1000)
        times = [base_ms - (r.batch_size - 1 - i) for i in range(r.batch_size)]
        states = [{"time": t, "data": r.state()} for t in times]
        body = states[0] if r.batch_size == 1 else states
        status = self._send(r, "device.sendState", "POST", "state", planned, body)
        if status == 200:
            self.ctx.accepted_states(r.device.id, times)

    def poll_commands(self, r: Reporter, planned: float) -> None:
        self._send(r, "device.getCommand", "GET", "command?limit=10", planned)

    def set_connection(self, r: Reporter, status: str) -> None:
        planned = self.ctx.reserve("device.setConnectionStatus", r.device.id, time.time())
        self.wait_until(planned)
        self._send(r, "device.setConnectionStatus", "POST", "setConnectionStatus", planned, {"status": status})

    def act(self, r: Reporter, action: str, planned: float) -> None:
        op = "device.sendState" if action == "state" else "device.getCommand"
        slot = self.ctx.try_reserve(op, r.device.id, planned, planned + self.slack)
        if slot is None:
            return
        planned = slot
        self.wait_until(planned)
        if action == "state":
            self.send_state(r, planned)
        else:
            self.poll_commands(r, planned)

    @task
    def drive(self) -> None:
        timeline = self.ctx.timeline_for(self.reporters, self.class_cfg)
        self.slack = self.ctx.state_interval(self.class_cfg.report_interval)
        pool = Pool(self.pool_size)
        while True:
            nxt = timeline.next_time()
            if nxt is None:
                return
            self.wait_until(nxt)
            for planned, index, action in timeline.pop_due(time.time()):
                if self.pool_size == 1:
                    self.act(self.reporters[index], action, planned)
                else:
                    pool.spawn(self.act, self.reporters[index], action, planned)


class DeviceUser(ReportingUser):
    """One standalone device: authenticates as itself, reports, polls commands."""

    abstract = True
    claim_kind = "standalone"


class GatewayUser(ReportingUser):
    """A gateway: authenticates once and sends state for itself and its peripherals."""

    abstract = True
    claim_kind = "gateway"


class FleetUser(ReportingUser):
    """Many devices multiplexed over one shared connection pool (fleet mode)."""

    abstract = True
    claim_kind = "multiplexed"

    def on_start(self) -> None:
        self.pool_size = max(1, int(self.ctx.scenario.fleet.connections))
        super().on_start()
