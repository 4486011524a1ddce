"""The other throttled endpoints of REFERENCE 5.9/5.10 and section 8.

Each is present, authorised as documented, answers its documented success shape
(``{"jobQueued": true, "jobId", "success": true}`` for jobs) and enforces its limit.
Resources the emulator does not model are accepted by id [I, docs/LIMITS.md]: any
24-hex flow, data table, notebook, dashboard or instance id; data tables and
notebooks must sit under an application the caller reaches; dashboards and
instances need a user token (their scopes exclude application tokens).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable


from .errors import ApiError, not_found, too_large
from .http import ApiResponse
from .validation import load_schema, validate, validator
from .views import SUCCESS, job, new_id

if TYPE_CHECKING:
    from .app import Emulator
    from .http import Request

_HEX24 = re.compile(r"[A-Fa-f0-9]{24}\Z")
Keys = dict[str, str]


def _hex_id(req: Request, name: str, what: str) -> str:
    value = req.params[name]
    if not _HEX24.match(value):
        raise not_found(what)
    return value


def _body(req: Request, schema: str | None) -> dict[str, Any]:
    if schema is None:
        return {}
    body = req.json()
    body = {} if body is None else body
    validate(schema, body)
    return body


def _app_keys(emu: Emulator, req: Request) -> Keys:
    app = emu.auth.application(req.principal, req.params["applicationId"])
    return {"application": app["id"], "owner": app.get("ownerId", "")}


def app_job(operation: str, schema: str | None, extra: Callable[[Emulator, Request, Keys], None] | None = None) -> Callable[..., Any]:
    """A job endpoint under ``/applications/{id}``: authorise, validate, throttle, 202."""
    def handler(emu: Emulator, req: Request) -> ApiResponse:
        keys = _app_keys(emu, req)
        if extra is not None:
            extra(emu, req, keys)
        _body(req, schema)
        emu.throttle.check(operation, keys)
        return ApiResponse(202, job(operation.split(".")[0]))
    return handler


def _device_key(emu: Emulator, req: Request, keys: Keys) -> None:
    keys["device"] = emu.auth.device(req.principal, keys["application"], req.params["deviceId"], "device.export")["id"]


def _table_key(emu: Emulator, req: Request, keys: Keys) -> None:
    keys["data_table"] = _hex_id(req, "dataTableId", "Data table")


def _notebook_key(emu: Emulator, req: Request, keys: Keys) -> None:
    keys["notebook"] = _hex_id(req, "notebookId", "Notebook")


def clone(emu: Emulator, req: Request) -> ApiResponse:
    keys = _app_keys(emu, req)
    body = req.json() or {}
    errors = list(validator("applicationClonePost").iter_errors(body))
    if errors:
        raise ApiError(422, "Validation", "Too many validation errors occurred." if len(errors) > 1 else "Validation failed",
                       {"validationErrors": [{"type": "Validation", "id": keys["application"], "name": ".".join(map(str, e.absolute_path)) or "body",
                                              "message": f"{e.validator} check failed"} for e in errors[:100]]})
    if body.get("dryRun"):
        return ApiResponse(200, SUCCESS)
    emu.throttle.check("application.clone", keys)
    return ApiResponse(202, job("clone"))


def applications_import(emu: Emulator, req: Request) -> ApiResponse:
    emu.throttle.check("applications.import", {"owner": req.principal.user_id or ""})
    return ApiResponse(202, job("import"))


def dashboard_report(emu: Emulator, req: Request) -> ApiResponse:
    dashboard = _hex_id(req, "dashboardId", "Dashboard")
    _body(req, "dashboardSendReport")
    emu.throttle.check("dashboard.sendReport", {"dashboard": dashboard})
    return ApiResponse(202, job("dash"))


def instance_report(emu: Emulator, req: Request) -> ApiResponse:
    instance = _hex_id(req, "instanceId", "Instance")
    _body(req, "instanceReportOptionsPost")
    emu.throttle.check("instance.generateReport", {"instance": instance})
    return ApiResponse(202, job("inst"))


def mqtt_publish(emu: Emulator, req: Request) -> dict[str, Any]:
    keys = _app_keys(emu, req)
    body = _body(req, "mqttPublishBody")
    keys["topic"] = keys["application"] + ":" + body["topic"]
    emu.throttle.check("application.mqttPublishMessage", keys)
    if emu.mqtt is not None:  # to the application's subscribers of that topic (mqtt/broker.py)
        emu.mqtt.deliver(keys["application"], body["topic"], body["message"].encode())
    return SUCCESS


def virtual_button(emu: Emulator, req: Request) -> dict[str, Any]:
    keys = _app_keys(emu, req)
    flow = _hex_id(req, "flowId", "Flow")
    body = _body(req, "virtualButtonPress")
    keys["virtual_button"] = f"{flow}:{body['key']}"
    emu.throttle.check("flow.pressVirtualButton", keys)
    return SUCCESS


def files_post(emu: Emulator, req: Request) -> ApiResponse:
    keys = _app_keys(emu, req)
    cap = emu.throttle.size_cap("files.post")
    if cap is not None and len(req.body) > cap:
        raise too_large(cap)
    body = _body(req, "filePost")
    file_id = new_id()
    answer: dict[str, Any] = {
        "id": file_id, "applicationId": keys["application"], "status": "pending", "name": body["name"], "type": body["type"],
        "parentDirectory": body.get("parentDirectory", "/"), "fileSize": body.get("fileSize", 0),
        "upload": {"url": f"http://127.0.0.1/emulator-upload/{file_id}", "fields": {"key": file_id}}}
    if body.get("contentType") is not None:  # a string or absent (fileUploadPostResponse.json)
        answer["contentType"] = body["contentType"]
    return ApiResponse(201, answer)


JOBS: tuple[tuple[str, str, str, str | None, Any], ...] = (
    # method, path under /applications/{applicationId}, operation, body schema, extra key
    ("GET", "/archiveData", "application.archiveData", None, None),
    ("GET", "/backfillArchiveData", "application.backfillArchiveData", None, None),
    ("POST", "/export", "application.export", "applicationExportPost", None),
    ("GET", "/fullDataTablesArchive", "application.fullDataTablesArchive", None, None),
    ("GET", "/fullEventsArchive", "application.fullEventsArchive", None, None),
    ("POST", "/import", "application.import", None, None),
    ("POST", "/data/export", "data.export", "devicesDataExport", None),
    ("POST", "/devices/export", "devices.export", "devicesExportPost", None),
    ("POST", "/devices/payloadCounts", "devices.payloadCounts", "devicesExportPayloadCountPost", None),
    ("POST", "/events/export", "events.export", "eventsExport", None),
    ("POST", "/devices/{deviceId}/export", "device.export", "deviceDataExport", _device_key),
    ("POST", "/data-tables/{dataTableId}/rows/export", "dataTableRows.export", "dataTableRowsExport", _table_key),
    ("POST", "/notebooks/{notebookId}/requestInputDataExport", "notebook.requestInputDataExport", "notebookDataExportOptions", _notebook_key),
    ("POST", "/embedded/deployments/export", "embeddedDeployments.export", "embeddedDeploymentExport", None),
)


def register(emu: Emulator) -> None:
    base = "/applications/{applicationId}"
    for method, path, operation, schema, extra in JOBS:
        if schema is not None:
            load_schema(schema)
        emu.route(method, base + path, operation, app_job(operation, schema, extra))
    emu.route("POST", base + "/clone", "application.clone", clone)
    emu.route("POST", "/applications/import", "applications.import", applications_import)
    emu.route("POST", "/dashboards/{dashboardId}", "dashboard.sendReport", dashboard_report)
    emu.route("POST", "/instances/{instanceId}/generateReport", "instance.generateReport", instance_report)
    emu.route("POST", base + "/mqttPublishMessage", "application.mqttPublishMessage", mqtt_publish)
    emu.route("POST", base + "/flows/{flowId}/virtualButton", "flow.pressVirtualButton", virtual_button)
    emu.route("POST", base + "/files", "files.post", files_post)
