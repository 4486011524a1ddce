"""Which token scopes admit which operation (REFERENCE section 4.1/4.2, client 2.3.0 docstrings).

Families: W = all.Application/Organization/User (+ ``.bounded``), ``<resource>.*`` and
the operation itself; R = W plus the ``.read`` variants; D adds device tokens
(``all.Device``; with R also ``all.Device.read``). Credential-minting operations omit
``.bounded``. The table below reproduces the lists in the official client's docstrings.
"""

from __future__ import annotations

_W = ("all.Application", "all.Application.bounded", "all.Organization", "all.Organization.bounded",
      "all.User", "all.User.bounded")
_R = _W + ("all.Application.read", "all.Organization.read", "all.User.read")
_NOBOUND = ("all.Application", "all.Organization", "all.User")

#: operation -> family; "W", "R", "W+D", "R+D", "W-bounded"
FAMILIES: dict[str, str] = {
    "application.get": "R", "application.patch": "W", "application.delete": "W",
    "application.archiveData": "W", "application.backfillArchiveData": "W", "application.clone": "W",
    "application.export": "W", "application.fullDataTablesArchive": "W", "application.fullEventsArchive": "W",
    "application.mqttPublishMessage": "W", "application.import": "W",
    "applicationKeys.get": "R", "applicationKeys.post": "W",
    "applicationKey.get": "R", "applicationKey.patch": "W", "applicationKey.delete": "W",
    "applicationApiTokens.get": "R", "applicationApiTokens.post": "W-bounded",
    "applicationApiToken.get": "R", "applicationApiToken.patch": "W-bounded", "applicationApiToken.delete": "W-bounded",
    "devices.get": "R+D", "devices.post": "W", "devices.sendCommand": "W+D", "devices.getCompositeState": "R+D",
    "devices.export": "R", "devices.payloadCounts": "R",
    "device.get": "R+D", "device.patch": "W", "device.delete": "W", "device.sendState": "W+D",
    "device.getState": "R+D", "device.getCompositeState": "R+D", "device.sendCommand": "W+D",
    "device.getCommand": "R+D", "device.setConnectionStatus": "W+D", "device.getLogEntries": "R+D",
    "device.export": "R",
    "data.timeSeriesQuery": "R+D", "data.lastValueQuery": "R+D", "data.export": "R+D",
    "events.post": "W", "events.get": "R", "event.get": "R", "events.export": "R",
    "flow.pressVirtualButton": "W",
    "dataTableRows.export": "R", "dataTableRows.get": "R", "dataTableRows.query": "R",
    "dataTableRows.post": "W",
    "notebook.requestInputDataExport": "R", "embeddedDeployments.export": "R", "files.post": "W",
}

#: operations outside any application: explicit lists from the client.
SPECIAL: dict[str, tuple[str, ...]] = {
    "applications.get": ("all.Organization", "all.Organization.bounded", "all.Organization.read", "all.User",
                         "all.User.bounded", "all.User.read", "applications.*", "applications.get"),
    "applications.post": ("all.Organization", "all.Organization.bounded", "all.User", "all.User.bounded",
                          "applications.*", "applications.post"),
    "applications.import": ("all.Organization", "all.Organization.bounded", "all.User", "all.User.bounded",
                            "applications.*", "applications.import"),
    "dashboard.sendReport": ("all.Organization", "all.Organization.bounded", "all.User", "all.User.bounded",
                             "dashboard.*", "dashboard.sendReport", "only.Organization", "only.Organization.bounded"),
    "instance.generateReport": ("all.Instance", "all.Instance.bounded", "all.Instance.read", "all.User",
                                "all.User.bounded", "all.User.read", "instance.*", "instance.generateReport"),
}

DEVICE_SCOPES = frozenset((
    "all.Device", "all.Device.read", "data.export", "data.timeSeriesQuery", "data.lastValueQuery",
    "device.commandStream", "device.get", "device.getCompositeState", "device.getState", "device.stateStream",
    "device.getLogEntries", "device.getCommand", "device.debug", "device.sendState", "device.sendCommand",
    "device.setConnectionStatus", "devices.get", "devices.getCompositeState", "devices.sendCommand",
))


def allowed_scopes(operation: str) -> frozenset[str]:
    """Every scope any one of which admits ``operation``."""
    if operation in SPECIAL:
        return frozenset(SPECIAL[operation])
    family = FAMILIES[operation]
    resource = operation.split(".", 1)[0]
    base = {"W": _W, "W+D": _W, "W-bounded": _NOBOUND, "R": _R, "R+D": _R}[family]
    extra: tuple[str, ...] = (f"{resource}.*", operation)
    if family == "W+D":
        extra += ("all.Device",)
    elif family == "R+D":
        extra += ("all.Device", "all.Device.read")
    return frozenset(base + extra)


_CACHE: dict[str, frozenset[str]] = {}


def admits(scopes: frozenset[str], operation: str) -> bool:
    allowed = _CACHE.get(operation)
    if allowed is None:
        allowed = _CACHE[operation] = allowed_scopes(operation)
    return not scopes.isdisjoint(allowed)
