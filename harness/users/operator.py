"""People and backends: dashboard readers and operators acting on the fleet.

An operator signs in (as the user, or with the run's application API token) and
performs the scenario's weighted actions with think time between them. Commands it
sends to a device draw on that device's limit in the shared ledger, together with
everything else that targets the device: ``LosantUser.call`` admits each one at its
actual send time, waiting for the ledger when the budget is spent (closed loop: never
dropped). ``ctx.reserve`` only plans the limits a probe exceeds on purpose.
"""

from __future__ import annotations

import random
import time
from typing import Any
from urllib.parse import urlencode

from locust import task

from harness.fleet import RUN_TAG_KEY
from harness.users.base import LosantUser

QUERY_DEVICES = 10


class OperatorUser(LosantUser):
    abstract = True

    def on_start(self) -> None:
        self.rng = random.Random()
        self.actions = self.ctx.operator_actions()
        self.weights = [a.weight for a in self.actions]
        self.token = self.sign_in()

    def sign_in(self) -> str | None:
        fleet = self.ctx.fleet
        if self.ctx.scenario.operators.auth == "token":
            return str(fleet.operator_token) if fleet.operator_token else None
        login = self.ctx.login
        if login.api_token:
            return str(login.api_token)
        status, body = self.call("auth.user", "POST", "/auth/user", None, "user",
                                 body={"email": login.email, "password": str(login.password)})
        return body.get("token") if status == 200 and isinstance(body, dict) else None

    @property
    def app(self) -> str:
        return f"/applications/{self.ctx.fleet.application_id}"

    def pick_device(self) -> str:
        return self.rng.choice(self.ctx.fleet.devices).id

    def pick_devices(self, n: int = QUERY_DEVICES) -> list[str]:
        devices = self.ctx.fleet.devices
        return [d.id for d in self.rng.sample(devices, min(n, len(devices)))]

    def run_tag_filter(self, extra: dict[str, str] | None) -> list[dict[str, str]]:
        tags = [{"key": RUN_TAG_KEY, "value": self.ctx.fleet.run_tag}]
        return tags + [{"key": k, "value": v} for k, v in (extra or {}).items()]

    def op(self, op: str, method: str, path: str, key: str, body: Any = None, planned: float | None = None) -> int:
        status, _ = self.call(op, method, path, self.token, key, planned, body)
        if status == 401:
            self.token = self.sign_in()
        return status

    @task
    def act(self) -> None:
        spec = self.rng.choices(self.actions, self.weights)[0]
        getattr(self, "do_" + spec.action)(spec)

    # Each action: one documented call, named by its operation.
    def do_list_devices(self, spec: Any) -> None:
        params: dict[str, Any] = {"perPage": 100}
        tags = getattr(spec, "tags", None) or {}
        for i, (k, v) in enumerate(tags.items()):
            params[f"tagFilter[{i}][key]"] = k
            params[f"tagFilter[{i}][value]"] = v
        if getattr(spec, "name_filter", None):
            params.update(filterField="name", filter=spec.name_filter)
        self.op("devices.get", "GET", f"{self.app}/devices?{urlencode(params)}", self.ctx.fleet.application_id)

    def do_get_device(self, spec: Any) -> None:
        device = self.pick_device()
        self.op("device.get", "GET", f"{self.app}/devices/{device}", device)

    def do_time_series(self, spec: Any) -> None:
        body = {"end": 0, "duration": int(spec.window * 1000), "resolution": int(spec.resolution * 1000),
                "aggregation": spec.aggregation, "deviceIds": self.pick_devices()}
        self.op("data.timeSeriesQuery", "POST", f"{self.app}/data/time-series-query", self.ctx.fleet.application_id, body)

    def do_last_value(self, spec: Any) -> None:
        body = {"deviceIds": self.pick_devices()}
        self.op("data.lastValueQuery", "POST", f"{self.app}/data/last-value-query", self.ctx.fleet.application_id, body)

    def do_state_history(self, spec: Any) -> None:
        device = self.pick_device()
        limit = getattr(spec, "limit", None) or 10
        self.op("device.getState", "GET", f"{self.app}/devices/{device}/state?limit={limit}", device)

    def do_send_command(self, spec: Any) -> None:
        targets = self.ctx.command_targets()
        if not targets:
            return
        device = self.rng.choice(targets).id
        planned = self.ctx.reserve("device.sendCommand", device, time.time())
        delay = planned - time.time()
        if delay > 0:
            self._sleep(delay)
        body = {"name": getattr(spec, "name", None) or "ping", "payload": {"at": int(planned * 1000)}}
        self.op("device.sendCommand", "POST", f"{self.app}/devices/{device}/command", device, body, planned)

    def do_send_command_tag(self, spec: Any) -> None:
        body = {"name": getattr(spec, "name", None) or "sync", "payload": {},
                "deviceTags": self.run_tag_filter(getattr(spec, "tags", None))}
        self.op("devices.sendCommand", "POST", f"{self.app}/devices/command", self.ctx.fleet.application_id, body)

    def do_create_event(self, spec: Any) -> None:
        app_id = self.ctx.fleet.application_id
        planned = self.ctx.reserve("events.post", app_id, time.time())
        delay = planned - time.time()
        if delay > 0:
            self._sleep(delay)
        body = {"level": getattr(spec, "level", None) or "info", "subject": "losant-load operator event",
                "message": f"run {self.ctx.fleet.run_tag}"}
        self.op("events.post", "POST", f"{self.app}/events", app_id, body, planned)

    def _sleep(self, seconds: float) -> None:
        import gevent

        gevent.sleep(seconds)
