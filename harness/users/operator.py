"""People and backends: dashboard readers and operators acting on the fleet.

An operator signs in (as the user, or with the run's application API token) and
performs the scenario's weighted actions with think time between them. Commands it
sends to a device draw on that device's limit in the shared ledger, together with
everything else that targets the device: ``LosantUser.call`` admits each one at its
actual send time, waiting for the ledger when the budget is spent (closed loop: never
dropped). ``ctx.reserve`` only plans the limits a probe exceeds on purpose.

The actions for the other limited endpoints (virtual buttons, MQTT publish, exports,
archives, clones, imports, reports, payload counts, data table rows, file uploads) are
built in ``harness.users.limited``; in probe mode the probed ones run as rounds
(``harness.users.probes``): each limit at one key pushed just past its count, then left
to recover.
"""

from __future__ import annotations

import random
import time
from typing import Any
from urllib.parse import urlencode

import orjson
from locust import task

from harness.fleet import RUN_TAG_KEY
from harness.scenario import make_state_generator
from harness.users import probes
from harness.users.base import LosantUser
from harness.users.limited import Objects, Request, action_request
from harness.users.mqtt_hub import settle_command, stamp_command

QUERY_DEVICES = 10


class OperatorUser(LosantUser):
    abstract = True

    def on_start(self) -> None:
        self.rng = random.Random()
        self.actions = self.ctx.operator_actions()
        self.weights = [a.weight for a in self.actions]
        fleet = self.ctx.fleet
        self.objects = Objects.resolve(self.ctx.scenario.operators.objects, fleet.application_id, fleet.run_tag)
        self.serial = 0
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

    def pick_target(self) -> str:
        """A device for a call limited per device: in a distributed run one this worker owns,
        so that device's limit is kept by one ledger."""
        return self.rng.choice(self.ctx.command_targets() or self.ctx.fleet.devices).id

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
        if self.time_series_probe(spec):
            return
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
        if self.probe_round("device.sendCommand", device, lambda: Request(
                "device.sendCommand", "POST", f"{self.app}/devices/{device}/command", {"device": device},
                {"name": getattr(spec, "name", None) or "ping", "payload": {"at": int(time.time() * 1000)}})):
            return
        planned = self.ctx.reserve("device.sendCommand", device, time.time())
        delay = planned - time.time()
        if delay > 0:
            self._sleep(delay)
        payload: dict[str, Any] = {"at": int(planned * 1000)}
        body = {"name": getattr(spec, "name", None) or "ping", "payload": payload}
        cid = stamp_command(self.ctx, payload, [device], sent=time.time())  # MQTT devices: delivery latency
        status = 0  # a call cut short by the stop reaches no device
        try:
            status = self.op("device.sendCommand", "POST", f"{self.app}/devices/{device}/command", device, body, planned)
        finally:
            settle_command(self.ctx, cid, status)

    def do_send_command_tag(self, spec: Any) -> None:
        body: dict[str, Any] = {"name": getattr(spec, "name", None) or "sync", "payload": {},
                                "deviceTags": self.run_tag_filter(getattr(spec, "tags", None))}
        cid = stamp_command(self.ctx, body["payload"], None, getattr(spec, "tags", None), time.time())
        status = 0
        try:
            status = self.op("devices.sendCommand", "POST", f"{self.app}/devices/command", self.ctx.fleet.application_id,
                             body)
        finally:
            settle_command(self.ctx, cid, status)

    def do_create_event(self, spec: Any) -> None:
        app_id = self.ctx.fleet.application_id
        if self.probe_round("events.post", app_id, lambda: Request(
                "events.post", "POST", f"{self.app}/events", {"application": app_id},
                {"level": getattr(spec, "level", None) or "info", "subject": "losant-load probe event",
                 "message": f"run {self.ctx.fleet.run_tag}"})):
            return
        planned = self.ctx.reserve("events.post", app_id, time.time())
        delay = planned - time.time()
        if delay > 0:
            self._sleep(delay)
        body = {"level": getattr(spec, "level", None) or "info", "subject": "losant-load operator event",
                "message": f"run {self.ctx.fleet.run_tag}"}
        self.op("events.post", "POST", f"{self.app}/events", app_id, body, planned)

    # -- the other limited endpoints ---------------------------------------------------------------
    def send(self, req: Request) -> tuple[int, Any]:
        """One limited call, recorded under its operation and the key its limit counts by."""
        status, body = self.call(req.op, req.method, req.path, self.token, req.key_for(self.ctx.limits), None,
                                 req.body, parse=req.parse, nbytes=req.nbytes)
        if status == 401:
            self.token = self.sign_in()
        return status, body

    def send_sized(self, req: Request) -> tuple[int, int]:
        """(status, answer bytes): the answer re-serialised compactly, as the API sends JSON."""
        status, body = self.send(req)
        return status, len(orjson.dumps(body)) if body is not None else 0

    def probe_round(self, op: str, key: str, make: Any) -> bool:
        """In probe mode, a round of count + 1 calls when ``op``'s probed limit is a rate or
        concurrency limit (True: handled, even when the round was not yet due)."""
        limit = probes.probed_limit(self.ctx, op)
        if limit is None or limit.kind == "size":
            return False
        probes.run_round(self.ctx, limit, key, lambda: probes.count_round(limit, make, self.send, self._sleep), op)
        return True

    def do_limited(self, spec: Any) -> None:
        self.serial += 1
        req = action_request(spec, self.objects, self.ctx.fleet.run_tag, self.pick_target, self.serial, self.state_of)
        if req is None:
            return
        limit = probes.probed_limit(self.ctx, req.op)
        if limit is None:
            self.send(req)
            return
        key = req.key_for(self.ctx.limits)
        if limit.kind == "size" and req.op == "files.post":
            probes.run_round(self.ctx, limit, req.op, lambda: probes.upload_round(limit, self.objects, self.send))
        elif limit.kind == "size":
            # one round for the table: it is filled once, then each driven operation probed
            probes.run_round(self.ctx, limit, self.objects.data_table, lambda: probes.rows_round(
                limit, self.objects, probes.driven_operations(self.ctx, limit), self.send))
        else:
            # every call of the round to the same key (a device action keeps its device)
            probes.run_round(self.ctx, limit, key,
                             lambda: probes.count_round(limit, lambda: req, self.send, self._sleep), req.op)

    def state_of(self, device_id: str) -> dict[str, Any]:
        """A state for the device with its class's attributes (values from their generators)."""
        for cls in self.ctx.scenario.fleet.classes:
            if any(d.id == device_id for d in self.ctx.fleet.by_class(cls.name)):
                return make_state_generator(cls.attributes, self.rng)()
        return {}

    do_send_state = do_set_connection_status = do_mqtt_publish = do_press_virtual_button = do_limited
    do_get_data_table_rows = do_query_data_table_rows = do_upload_file = do_limited
    # the job endpoints (harness.users.limited.JOB_REQUESTS)
    do_export_embedded_deployments = do_export_notebook_data = do_export_device_data = do_limited
    do_export_data_table = do_archive_data = do_backfill_archive_data = do_export_application = do_limited
    do_archive_data_tables = do_archive_events = do_import_application = do_clone_application = do_limited
    do_import_applications = do_send_dashboard_report = do_export_data = do_export_devices = do_limited
    do_count_payloads = do_export_events = do_generate_instance_report = do_limited

    def time_series_probe(self, spec: Any) -> bool:
        """The answer-size probe of data.timeSeriesQuery, when this run probes it."""
        limit = probes.probed_limit(self.ctx, "data.timeSeriesQuery")
        if limit is None or limit.kind != "size":
            return False
        found = self._string_attribute()
        if found is None:
            return True
        device, attribute = found
        app = self.ctx.fleet.application_id
        window = max((lim.window or 0.0 for lim in self.ctx.limits.for_operation("device.sendState")), default=0.0)
        probes.run_round(self.ctx, limit, "tsq", lambda: probes.time_series_round(
            limit, app, device, attribute, time.time(), self.send, self.send_sized, self._sleep, window))
        return True

    def _string_attribute(self) -> tuple[str, str] | None:
        """A device of a class declaring a string attribute (validation makes sure one exists)."""
        for cls in self.ctx.scenario.fleet.classes:
            for attr in cls.attributes:
                if attr.type == "string":
                    devices = self.ctx.fleet.by_class(cls.name)
                    if devices:
                        return devices[0].id, attr.name
        return None

    def _sleep(self, seconds: float) -> None:
        import gevent

        gevent.sleep(seconds)
