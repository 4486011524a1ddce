"""The operator actions for every limited endpoint of REFERENCE.md section 8.

Each action is one documented call (public path, a body the official schema accepts),
recorded by ``LosantUser.call`` under the operation name of ``harness/limits.py`` and
the value of the limit's key (button ``<flowId>:<key>``, topic ``<applicationId>:<topic>``,
application, device, notebook, dashboard, data table, instance or owner), so the judge
finds every call of a limit and groups it as the target does. In respect mode the ledger
keeps each call within its rate or concurrency limit (``LosantUser.call`` admits it); in
probe mode ``harness.users.probes`` drives the probed limits instead.

Objects the platform has and the harness does not make (a flow with a virtual button,
a dashboard, a data table, a notebook, an instance) come from ``operators.objects``; the
emulator accepts any 24-hex id, so without them the ids are derived from the run tag.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Callable

from harness.scenario import OperatorAction

#: The request each job action makes: (method, path under /applications/{id} or absolute).
JOB_REQUESTS: dict[str, tuple[str, str]] = {
    "export_embedded_deployments": ("POST", "/embedded/deployments/export"),
    "export_notebook_data": ("POST", "/notebooks/{notebook}/requestInputDataExport"),
    "export_device_data": ("POST", "/devices/{device}/export"),
    "export_data_table": ("POST", "/data-tables/{data_table}/rows/export"),
    "archive_data": ("GET", "/archiveData?date={yesterday}"),
    "backfill_archive_data": ("GET", "/backfillArchiveData"),
    "export_application": ("POST", "/export"),
    "archive_data_tables": ("GET", "/fullDataTablesArchive"),
    "archive_events": ("GET", "/fullEventsArchive"),
    "import_application": ("POST", "/import"),
    "clone_application": ("POST", "/clone"),
    "import_applications": ("POST", "!/applications/import"),
    "send_dashboard_report": ("POST", "!/dashboards/{dashboard}"),
    "export_data": ("POST", "/data/export"),
    "export_devices": ("POST", "/devices/export"),
    "count_payloads": ("POST", "/devices/payloadCounts"),
    "export_events": ("POST", "/events/export"),
    "generate_instance_report": ("POST", "!/instances/{instance}/generateReport"),
}
#: Where dashboard reports go against the emulator (a live target must name ``objects.email``).
REPORT_EMAIL = "reports@losant-load.invalid"
#: Job endpoints that take no body (GET).
_NO_BODY = ("archive_data", "backfill_archive_data", "archive_data_tables", "archive_events")


def derived_id(run_tag: str, kind: str) -> str:
    """A stable 24-hex id for an object the emulator accepts by id (not a real object)."""
    return hashlib.sha256(f"losant-load:{run_tag}:{kind}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Objects:
    """The object ids this run's limited actions use (stated, or derived for the emulator)."""

    application: str
    flow: str
    button: str
    dashboard: str
    data_table: str
    notebook: str
    instance: str
    owner: str
    email: str | None

    @classmethod
    def resolve(cls, stated: Any, application: str, run_tag: str) -> Objects:
        flow = stated.flow or derived_id(run_tag, "flow")
        return cls(application=application, flow=flow, button=stated.button or f"{flow}-losant-load",
                   dashboard=stated.dashboard or derived_id(run_tag, "dashboard"),
                   data_table=stated.data_table or derived_id(run_tag, "data_table"),
                   notebook=stated.notebook or derived_id(run_tag, "notebook"),
                   instance=stated.instance or derived_id(run_tag, "instance"),
                   owner=stated.owner or f"owner-of-{application}", email=stated.email)


@dataclass(frozen=True)
class Request:
    """One call ready to send: what ``LosantUser.call`` needs.

    ``kinds`` holds the call's value of every key kind a limit of ``op`` may be counted by;
    ``key_for`` picks the one the limits table in force names (a ``--limits`` file may
    re-key MQTT publish per application). ``label`` is a size probe's request label.
    """

    op: str
    method: str
    path: str
    kinds: dict[str, str]
    body: Any = None
    nbytes: int | None = None  # files.post: the request body size goes in the sample
    parse: bool = True
    label: str | None = None

    def key_for(self, table: Any) -> str:
        if self.label is not None:
            return self.label
        for lim in table.for_operation(self.op):
            if lim.key in self.kinds:
                return self.kinds[lim.key]
        return self.kinds.get("application", "")


def job_request(spec: OperatorAction, objects: Objects, device: str, now: float) -> Request:
    """The call of a job action (exports, archives, clone, imports, reports, payload counts)."""
    method, template = JOB_REQUESTS[spec.action]
    yesterday = int(now // 86400 - 1) * 86400 * 1000
    path = template.format(notebook=objects.notebook, device=device, data_table=objects.data_table,
                           dashboard=objects.dashboard, instance=objects.instance, yesterday=yesterday)
    path = path[1:] if path.startswith("!") else f"/applications/{objects.application}{path}"
    body: dict[str, Any] | None = None if spec.action in _NO_BODY else {}
    if spec.action == "send_dashboard_report":  # dashboardSendReport needs toEmail or callbackUrl
        body = {"toEmail": [objects.email or REPORT_EMAIL]}
    elif body is not None and objects.email:
        body["email"] = objects.email
    if spec.action == "export_data":  # devicesDataExport: the last hour of this run's devices
        body = {**(body or {}), "start": int((now - 3600) * 1000), "end": int(now * 1000)}
    kinds = {"application": objects.application, "owner": objects.owner}
    if spec.action == "export_device_data":
        kinds["device"] = device
    for kind in ("data_table", "notebook", "dashboard", "instance"):
        if "{" + kind + "}" in template:
            kinds[kind] = getattr(objects, kind)
    return Request(spec.operation, method, path, kinds, body)


def button_press(objects: Objects, run_tag: str) -> Request:
    body = {"key": objects.button, "payload": {"source": "losant-load", "run": run_tag}}
    return Request("flow.pressVirtualButton", "POST", f"/applications/{objects.application}/flows/{objects.flow}/virtualButton",
                   {"application": objects.application, "virtual_button": f"{objects.flow}:{objects.button}"}, body)


def mqtt_publish(objects: Objects, topic: str, now: float) -> Request:
    body = {"topic": topic, "message": f'{{"source": "losant-load", "at": {int(now * 1000)}}}'}
    return Request("application.mqttPublishMessage", "POST", f"/applications/{objects.application}/mqttPublishMessage",
                   {"application": objects.application, "topic": f"{objects.application}:{topic}"}, body)


def send_state(objects: Objects, device: str, data: dict[str, Any], now: float) -> Request:
    """One state for ``device`` sent by a backend (the operator's token), as deviceState.json."""
    return Request("device.sendState", "POST", f"/applications/{objects.application}/devices/{device}/state",
                   {"application": objects.application, "device": device}, {"time": int(now * 1000), "data": data},
                   parse=False)


def connection_status(objects: Objects, device: str) -> Request:
    return Request("device.setConnectionStatus", "POST",
                   f"/applications/{objects.application}/devices/{device}/setConnectionStatus",
                   {"application": objects.application, "device": device}, {"status": "connected"})


def table_rows(objects: Objects, query: bool, limit: int, label: str | None = None, parse: bool = True) -> Request:
    """A page of ``limit`` rows: get, or query with the empty (match-all) advanced query."""
    base = f"/applications/{objects.application}/data-tables/{objects.data_table}/rows"
    kinds = {"application": objects.application, "data_table": objects.data_table}
    if query:
        return Request("dataTableRows.query", "POST", f"{base}/query?limit={limit}", kinds, {}, label=label, parse=parse)
    return Request("dataTableRows.get", "GET", f"{base}?limit={limit}", kinds, label=label, parse=parse)


def insert_rows(objects: Objects, rows: list[dict[str, Any]]) -> Request:
    """Rows into the data table (``dataTableRowInsert.json``, the array form): what a size probe
    fills the table with so that an answer can reach the cap."""
    base = f"/applications/{objects.application}/data-tables/{objects.data_table}/rows"
    return Request("dataTableRows.post", "POST", base, {"application": objects.application,
                                                        "data_table": objects.data_table}, rows, parse=False)


def file_upload(objects: Objects, size: int, serial: int, label: str | None = None) -> Request:
    """``filePost`` JSON describing a file of ``size`` bytes, padded with JSON whitespace to
    ``size`` bytes: the body the upload cap measures, still the schema's body."""
    head = (b'{"name": "losant-load-%d.bin", "type": "file", "parentDirectory": "/losant-load", '
            b'"contentType": "application/octet-stream", "fileSize": %d' % (serial, size))
    pad = max(0, size - len(head) - 1)
    body = head + b" " * pad + b"}"
    return Request("files.post", "POST", f"/applications/{objects.application}/files",
                   {"application": objects.application}, body, nbytes=len(body), label=label or f"file@{len(body)}")


def action_request(spec: OperatorAction, objects: Objects, run_tag: str, pick_device: Callable[[], str],
                   serial: int, state_of: Callable[[str], dict[str, Any]] | None = None) -> Request | None:
    """The call a limited action makes in respect mode (None: not a limited action here)."""
    now = time.time()
    action = spec.action
    if action in JOB_REQUESTS:
        return job_request(spec, objects, pick_device() if action == "export_device_data" else "", now)
    if action == "press_virtual_button":
        return button_press(objects, run_tag)
    if action == "mqtt_publish":
        return mqtt_publish(objects, spec.topic or "losant-load", now)
    if action == "set_connection_status":
        return connection_status(objects, pick_device())
    if action == "send_state" and state_of is not None:
        device = pick_device()
        return send_state(objects, device, state_of(device), now)
    if action in ("get_data_table_rows", "query_data_table_rows"):
        return table_rows(objects, action == "query_data_table_rows", spec.limit or 100)
    if action == "upload_file":
        return file_upload(objects, spec.size or 1024, serial)
    return None
