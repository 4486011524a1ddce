"""The emulator describes itself: an OpenAPI 3.1 document built from its router and schemas.

Why generated and not written by hand: the routes registered in the router are the
truth of what the emulator serves, so the description cannot drift from it. Request
bodies are the shipped draft-07 schemas (OpenAPI 3.1 speaks JSON Schema, so they are
used as they are); their ``#/definitions/advanced*Query`` references, which point at
sibling files, become ``#/components/schemas/<name>``. Every operation documents the
JSON error body (``type``, ``message``) for each failure status it can give.
Served read-only at ``GET /_emulator/openapi.json`` (faults_admin.front).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable

import orjson

from .responses import schema_name
from .validation import SCHEMA_DIR
from .validation import collect_refs as _collect  # the sibling-file $ref walk, shared

if TYPE_CHECKING:
    from .app import Emulator
    from .router import Route, Router

#: operation -> request-body schema file (the one its handler validates against)
BODY_SCHEMAS: dict[str, str] = {
    "auth.authenticateUser": "userCredentials", "auth.authenticateDevice": "deviceCredentials",
    "applications.post": "applicationPost", "applicationKeys.post": "applicationKeyPost",
    "applicationApiTokens.post": "apiTokenPost", "devices.post": "devicePost", "device.patch": "devicePatch",
    "devices.sendCommand": "multiDeviceCommand", "device.sendState": "deviceStateOrStates",
    "device.sendCommand": "deviceCommand", "device.setConnectionStatus": "deviceConnectionStatus",
    "data.timeSeriesQuery": "timeSeriesQuery", "data.lastValueQuery": "lastValueQuery", "events.post": "eventPost",
    "application.export": "applicationExportPost", "data.export": "devicesDataExport",
    "devices.export": "devicesExportPost", "devices.payloadCounts": "devicesExportPayloadCountPost",
    "events.export": "eventsExport", "device.export": "deviceDataExport", "dataTableRows.export": "dataTableRowsExport",
    "notebook.requestInputDataExport": "notebookDataExportOptions",
    "embeddedDeployments.export": "embeddedDeploymentExport", "application.clone": "applicationClonePost",
    "dashboard.sendReport": "dashboardSendReport", "instance.generateReport": "instanceReportOptionsPost",
    "dataTableRows.query": "advancedQuery", "dataTableRows.post": "dataTableRowInsert", "application.mqttPublishMessage": "mqttPublishBody",
    "flow.pressVirtualButton": "virtualButtonPress", "files.post": "filePost",
}
#: bodies the handlers check in code rather than with a schema file
INLINE_BODIES: dict[str, dict[str, Any]] = {
    "application.patch": {"type": "object", "properties": {"name": {"type": "string"}, "description": {"type": "string"}}},
    "applicationKey.patch": {"type": "object", "properties": {"status": {"enum": ["active", "inactive"]},
                                                              "description": {"type": "string"}}},
    "applicationApiToken.patch": {"type": "object", "additionalProperties": False,
                                  "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 255},
                                                 "description": {"type": "string"},
                                                 "status": {"enum": ["active", "inactive"]}}},
}
_LIST_PARAMS = ("sortField", "sortDirection", "page", "perPage", "filterField", "filter", "query")
_HISTORY_PARAMS = ("limit", "since", "sortDirection", "duration", "start", "end")
_ROWS_PARAMS = ("sortColumn", "sortDirection", "limit", "offset", "includeFields")
QUERY_PARAMS: dict[str, tuple[str, ...]] = {
    "applications.get": _LIST_PARAMS, "applicationKeys.get": _LIST_PARAMS, "applicationApiTokens.get": _LIST_PARAMS,
    "devices.get": _LIST_PARAMS + ("deviceClass", "tagFilter", "parentId"),
    "devices.getCompositeState": _LIST_PARAMS + ("start", "end", "attributes"),
    "events.get": _LIST_PARAMS + ("state",), "device.getState": _HISTORY_PARAMS,
    "device.getCommand": _HISTORY_PARAMS, "device.getLogEntries": _HISTORY_PARAMS,
    "device.getCompositeState": ("start", "end", "attributes"), "application.archiveData": ("date",),
    "devices.export": ("email", "callbackUrl"),
    "dataTableRows.get": _ROWS_PARAMS, "dataTableRows.query": _ROWS_PARAMS,
}
#: typed query parameters (the rest are strings: times, filters, JSON-encoded ``query``)
QUERY_TYPES: dict[str, dict[str, Any]] = {
    "page": {"type": "integer", "minimum": 0}, "perPage": {"type": "integer", "minimum": 1},
    "limit": {"type": "integer", "minimum": 1}, "since": {"type": "integer"}, "duration": {"type": "integer", "minimum": 0},
    "sortDirection": {"enum": ["asc", "desc", "ASC", "DESC"]},
}
SUCCESS_STATUS: dict[str, str] = {"applications.post": "201", "applicationKeys.post": "201",
                                  "applicationApiTokens.post": "201", "devices.post": "201", "events.post": "201",
                                  "files.post": "201", "dataTableRows.post": "201"}
ERROR_TEXT = {"400": "Malformed request (bad JSON, schema violation, bad parameter)",
              "401": "Missing, invalid or expired token; or authentication failed",
              "403": "The token's scope or reach does not allow this", "404": "A resource in the path was not found",
              "405": "Method not allowed on this path", "413": "Request body too large",
              "422": "Validation errors (clone)", "429": "Over rate limit, request throttled",
              "503": "Service unavailable (overload or injected fault); may carry Retry-After"}


def routes_of(router: Router) -> list[Route]:
    """Every registered route, read-only (the router keeps them grouped by segment count)."""
    found: Iterable[Route] = getattr(router, "routes", None) or [r for g in router._by_len.values() for r in g]  # noqa: SLF001
    return sorted(found, key=lambda r: (r.pattern, r.method))


def _rewrite(node: Any) -> Any:
    """Draft-07 -> OpenAPI 3.1 component: sibling refs to components, no ``$schema``."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in ("$schema", "definitions"):
                continue
            if k == "$ref" and isinstance(v, str) and v.startswith("#/definitions/"):
                v = "#/components/schemas/" + v.rsplit("/", 1)[1]
            out[k] = _rewrite(v)
        return out
    if isinstance(node, list):
        return [_rewrite(v) for v in node]
    return node


def _load(name: str, components: dict[str, Any]) -> None:
    if name in components:
        return
    raw = json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))
    components[name] = _rewrite(raw)
    refs: set[str] = set()
    _collect(raw, refs)
    for ref in sorted(refs):
        _load(ref, components)


def _errors_for(route: Route, public: bool) -> list[str]:
    codes = ["400", "404", "405", "413", "429", "503"]
    if not public or route.operation.startswith("auth."):
        codes += ["401"]
    if not public:
        codes += ["403"]
    if route.operation == "application.clone":
        codes.append("422")
    return sorted(codes)


def build_openapi(emu: Emulator) -> dict[str, Any]:
    """The OpenAPI 3.1 document of everything ``emu`` routes."""
    components: dict[str, Any] = {}
    _load("error", components)
    components["Error"] = {"type": "object", "required": ["type", "message"],
                           "properties": {"type": {"type": "string"}, "message": {"type": "string"}}}
    public_ops: set[str] = getattr(emu, "_public", set())
    paths: dict[str, Any] = {}
    for route in routes_of(emu.router):
        public = route.operation in public_ops
        op: dict[str, Any] = {"operationId": route.operation, "summary": route.operation,
                              "tags": [route.operation.split(".")[0]]}
        params = [{"name": text, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
                  for is_param, text in route.parts if is_param]
        params += [{"name": n, "in": "query", "required": False, "schema": QUERY_TYPES.get(n, {"type": "string"})}
                   for n in QUERY_PARAMS.get(route.operation, ())]
        if params:
            op["parameters"] = params
        if route.method in ("POST", "PATCH", "PUT"):
            name = BODY_SCHEMAS.get(route.operation)
            if name is not None:
                _load(name, components)
                schema: dict[str, Any] = {"$ref": f"#/components/schemas/{name}"}
            else:
                schema = INLINE_BODIES.get(route.operation, {})
            op["requestBody"] = {"required": name is not None,
                                 "content": {"application/json": {"schema": schema}}}
        ok = SUCCESS_STATUS.get(route.operation, "202" if _is_job(route) else "200")
        responses: dict[str, Any] = {}
        for code, text in ((ok, "Success"), ("200", "Dry run"), ("202", "Queued as a job")):
            answer = schema_name(route.operation, int(code))  # the official answer schema (responses.py)
            if answer is not None and code not in responses:
                _load(answer, components)
                responses[code] = {"description": text,
                                   "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{answer}"}}}}
        for code in _errors_for(route, public):
            responses[code] = {"description": ERROR_TEXT[code],
                               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        op["responses"] = responses
        if not public:
            op["security"] = [{"bearer": []}]
        paths.setdefault(route.pattern, {})[route.method.lower()] = op
    return {"openapi": "3.1.0",
            "info": {"title": "Losant REST API emulator", "version": "1.31.0-emulated",
                     "description": "Generated from the emulator's router; see /work/shared/losant-api/REFERENCE.md."},
            "servers": [{"url": "/"}], "paths": paths,
            "components": {"schemas": components,
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}


def _is_job(route: Route) -> bool:
    from .routes_jobs import JOBS  # noqa: PLC0415

    jobs = {op for _, _, op, _, _ in JOBS} | {"applications.import", "dashboard.sendReport", "instance.generateReport",
                                               "application.clone"}
    return route.operation in jobs


def openapi_handler(emu: Emulator) -> Any:
    """A tiny ASGI app serving the document (built once, on first use)."""
    cache: list[bytes] = []

    async def handler(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            body = orjson.dumps({"type": "MethodNotAllowed", "message": "Only GET is allowed on /_emulator/openapi.json"})
            status = 405
        else:
            if not cache:
                cache.append(orjson.dumps(build_openapi(emu)))
            body, status = cache[0], 200
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    return handler


@lru_cache(maxsize=1)
def operations_with_bodies() -> frozenset[str]:
    return frozenset(BODY_SCHEMAS) | frozenset(INLINE_BODIES)
