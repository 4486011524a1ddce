"""Which official schema each answer must meet, and a checker for it.

Why here and not only in the tests: the emulator promises answers the official client and
its users can rely on, and the promise is "valid against the official schema of that
endpoint and status" (REFERENCE section 7). Keeping the table next to the routes lets
every test (``tests/emulator/emulator_support.Api`` checks each answer it sees) and the
OpenAPI description use one source.

The schema files refer to ``#/definitions/advancedDeviceQuery`` (and the event and key
variants) without a ``definitions`` section: the pointer means the sibling file. Each
file is registered in a ``referencing`` registry under ``urn:losant:schema:<name>`` with
a ``definitions`` section that only refers on to the siblings' URNs, so no schema is
copied into another and the self-referencing query schemas resolve.

Formats are checked: ``date-time`` (RFC 3339, the emulator's ``2016-06-13T04:00:00.000Z``)
and ``email``. With ``jsonschema_rs`` installed (the dev extra) the same registry of files
is compiled by it: a 100-device list checks in about 1 ms instead of about 150 ms, which
is what lets every emulator test check every answer.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Mapping

from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT7

from .errors import ApiError
from .http import parse_query
from .validation import SCHEMA_DIR, collect_refs

if TYPE_CHECKING:
    from .router import Router

URN = "urn:losant:schema:"
_JOB = "jobEnqueuedResult"

#: operation -> {success status: schema file}; every status >= 400 answers ``error`` (422: ``validationErrors``)
SUCCESS: dict[str, dict[int, str]] = {
    "auth.authenticateUser": {200: "authedUser"},
    "auth.authenticateDevice": {200: "authedDevice"},
    "applications.get": {200: "applications"},
    "applications.post": {201: "application"},
    "application.get": {200: "application"},
    "application.patch": {200: "application"},
    "application.delete": {200: "success"},
    "applicationKeys.get": {200: "applicationKeys"},
    "applicationKeys.post": {201: "applicationKeyPostResponse"},
    "applicationKey.get": {200: "applicationKey"},
    "applicationKey.patch": {200: "applicationKey"},
    "applicationKey.delete": {200: "success"},
    "applicationApiTokens.get": {200: "apiTokens"},
    "applicationApiTokens.post": {201: "apiToken"},
    "applicationApiToken.get": {200: "apiToken"},
    "applicationApiToken.patch": {200: "apiToken"},
    "applicationApiToken.delete": {200: "success"},
    "devices.get": {200: "devices"},
    "devices.post": {201: "device"},
    "devices.sendCommand": {200: "success", 202: _JOB},
    "devices.getCompositeState": {200: "compositeDevicesState"},
    "device.get": {200: "device"},
    "device.patch": {200: "device"},
    "device.delete": {200: "success"},
    "device.sendState": {200: "success"},
    "device.getState": {200: "deviceStates"},
    "device.getCompositeState": {200: "compositeDeviceState"},
    "device.sendCommand": {200: "success"},
    "device.getCommand": {200: "deviceCommands"},
    "device.setConnectionStatus": {200: "success"},
    "device.getLogEntries": {200: "deviceLog"},
    "data.timeSeriesQuery": {200: "timeSeriesData"},
    "data.lastValueQuery": {200: "lastValueData"},
    "events.post": {201: "event"},
    "events.get": {200: "events"},
    "event.get": {200: "event"},
    "application.clone": {200: "success", 202: _JOB},
    "dataTableRows.post": {201: "dataTableRowInsertResult"},
    "dataTableRows.get": {200: "dataTableRows"},
    "dataTableRows.query": {200: "dataTableRows"},
    "application.mqttPublishMessage": {200: "success"},
    "flow.pressVirtualButton": {200: "success"},
    "files.post": {201: "fileUploadPostResponse"},
}
#: operations answering only a queued job on success
JOB_OPERATIONS = (
    "application.archiveData", "application.backfillArchiveData", "application.export",
    "application.fullDataTablesArchive", "application.fullEventsArchive", "application.import", "applications.import",
    "data.export", "devices.export", "devices.payloadCounts", "events.export", "device.export", "dataTableRows.export",
    "notebook.requestInputDataExport", "embeddedDeployments.export", "dashboard.sendReport", "instance.generateReport",
)
for _op in JOB_OPERATIONS:
    SUCCESS[_op] = {202: _JOB}

_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)\Z")


def schema_name(operation: str, status: int) -> str | None:
    """The schema file an answer of ``operation`` with ``status`` must meet; None when that
    status is not one the operation answers with success."""
    if status >= 400:
        return "validationErrors" if status == 422 else "error"
    return SUCCESS.get(operation, {}).get(status)


def _raw(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    """(URN, contents) of every schema file; sibling ``#/definitions/<name>`` pointers lead to the sibling."""
    out = []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        contents = _raw(path.stem)
        refs: set[str] = set()
        collect_refs(contents, refs)
        if refs:
            contents["definitions"] = {**contents.get("definitions", {}),
                                       **{ref: {"$ref": URN + ref} for ref in sorted(refs)}}
        out.append((URN + path.stem, contents))
    return tuple(out)


@lru_cache(maxsize=1)
def registry() -> Registry:
    """The schema files as a ``referencing`` registry (jsonschema's)."""
    return Registry().with_resources((uri, DRAFT7.create_resource(c)) for uri, c in _documents())


def _format_checker() -> FormatChecker:
    checker = FormatChecker(("email",))

    @checker.checks("date-time")
    def is_date_time(value: object) -> bool:
        return not isinstance(value, str) or _DATE_TIME.match(value) is not None

    return checker


@lru_cache(maxsize=None)
def validator(name: str) -> Draft7Validator:
    return Draft7Validator({"$ref": URN + name}, registry=registry(), format_checker=_format_checker())


@lru_cache(maxsize=None)
def _fast_validator(name: str) -> Any:
    """The same schema compiled by ``jsonschema_rs`` (None when it is not installed)."""
    try:
        import jsonschema_rs  # noqa: PLC0415 - optional, a dev dependency
    except ImportError:
        return None
    rs_registry = _fast_registry(jsonschema_rs)
    return jsonschema_rs.Draft7Validator({"$ref": URN + name}, registry=rs_registry, validate_formats=True)


@lru_cache(maxsize=1)
def _fast_registry(module: Any) -> Any:
    return module.Registry(list(_documents()), draft=module.Draft7)


def _errors(name: str, instance: Any, fast: bool) -> list[tuple[str, str]]:
    """(where, message) of every error; ``fast`` uses jsonschema_rs when it is installed."""
    rs = _fast_validator(name) if fast else None
    if rs is not None:
        return [("/".join(map(str, e.instance_path)), e.message) for e in rs.iter_errors(instance)]
    found: list[ValidationError] = list(validator(name).iter_errors(instance))
    return [("/".join(map(str, e.absolute_path)), e.message) for e in found]


def _as_documented(body: Any, query: Mapping[str, Any]) -> Any:
    """Undo ``tagsAsObject`` / ``attributesAsObject`` (shapes no schema describes, REFERENCE 5.4)."""
    tags = str(query.get("tagsAsObject", "")).lower() == "true"
    attrs = str(query.get("attributesAsObject", "")).lower() == "true"
    if not (tags or attrs) or not isinstance(body, dict):
        return body

    def one(doc: Any) -> Any:
        if not isinstance(doc, dict):
            return doc
        doc = dict(doc)
        if tags and isinstance(doc.get("tags"), dict):
            doc["tags"] = [{"key": k, "value": v} for k, values in doc["tags"].items() for v in values]
        if attrs and isinstance(doc.get("attributes"), dict):
            doc["attributes"] = list(doc["attributes"].values())
        return doc

    if isinstance(body.get("items"), list):
        return {**body, "items": [one(d) for d in body["items"]]}
    return one(body)


def problems(operation: str, status: int, body: Any, query: Mapping[str, Any] | None = None,
             fast: bool = True) -> list[str]:
    """Why an answer does not meet its schema (empty when it does); each names the field."""
    name = schema_name(operation, status)
    if name is None:
        return [f"{operation}: status {status} is not a documented answer"]
    instance = _as_documented(body, query or {})
    return [f"{operation} {status} vs {name}.json at {where or '(body)'}: {message[:200]}"
            for where, message in sorted(_errors(name, instance, fast))]


def answer_problems(router: Router, method: str, path: str, raw_query: bytes, status: int, body: Any) -> list[str]:
    """``problems`` for an answer to ``method path?raw_query``, the operation found by the router
    (an unrouted path can only answer an error)."""
    if path.startswith("/_emulator/"):
        return []
    try:
        operation = router.match(method, path)[0].operation
    except ApiError:
        operation = f"{method} {path[:80]} (unrouted)"
    try:
        query = parse_query(raw_query)
    except ApiError:  # a query string the emulator refuses (bounds.py): the answer is that 400
        query = {}
    return problems(operation, status, body, query)
