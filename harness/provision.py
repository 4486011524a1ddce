"""Make the target hold the scenario's fleet, through the same API calls on the emulator and a live tenant.

Everything created carries the run tag, so a second run reuses it and ``--teardown``
removes exactly what the harness made. Creation resumes without duplicates: existing
devices are listed by run tag first and only the missing ones are created. The access
key and operator token are made afresh for every run (their secrets are shown only
once, and the harness never stores secrets), and deleted when the run ends.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from harness.errors import HarnessError
from harness.fleet import CLASS_TAG_KEY, RUN_TAG_KEY, Device, DeviceSpec, Fleet, Login, Secret

APP_PREFIX = "losant-load-"
PAGE = 1000


def _describe(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        return f"{resp.status_code} {body.get('type', '')}: {body.get('message', '')}"
    except ValueError:
        return f"{resp.status_code}"


class Api:
    """A thin JSON client for provisioning (not the hot path: httpx is fine here)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0,
                 log: Callable[[int, float, str, bool], None] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.log = log  # harness_calls.HarnessCalls.log(phase): each attempt, counted apart from the load
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout,
                                 headers={"Accept": "application/json"},
                                 limits=httpx.Limits(max_connections=16))
        self.token = token

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, what: str, json: Any = None,
             params: dict[str, Any] | None = None, ok: Iterable[int] = (200, 201, 202)) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        for attempt in range(6):
            t0 = time.perf_counter()
            try:
                resp = self.http.request(method, path, json=json, params=params, headers=headers)
            except httpx.HTTPError as exc:
                if self.log is not None:
                    self.log(0, time.perf_counter() - t0, type(exc).__name__, False)
                if attempt == 5:
                    raise HarnessError(f"{what}: cannot reach {self.base_url} ({type(exc).__name__})") from None
                time.sleep(0.5 * (attempt + 1))
                continue
            if self.log is not None:
                self.log(resp.status_code, time.perf_counter() - t0, "", resp.status_code in ok)
            if resp.status_code == 429 or resp.status_code >= 500:
                time.sleep(float(resp.headers.get("retry-after", 0.5 * (attempt + 1))))
                continue
            if resp.status_code not in ok:
                raise HarnessError(f"{what} failed: {_describe(resp)}")
            return resp.json() if resp.content else None
        raise HarnessError(f"{what} failed after retries: {_describe(resp)}")

    def pages(self, path: str, what: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page = 0
        while True:
            body = self.call("GET", path, what, params={**params, "page": page, "perPage": PAGE})
            items.extend(body.get("items", []))
            if not body.get("items") or len(items) >= body.get("totalCount", 0):
                return items
            page += 1


def sign_in(api: Api, login: Login) -> str:
    if login.api_token:
        return str(login.api_token)
    body = api.call("POST", "/auth/user", "signing in", json={"email": login.email, "password": str(login.password)})
    return body["token"]


def find_or_create_application(api: Api, run_tag: str, application_id: str | None) -> str:
    if application_id:
        api.call("GET", f"/applications/{application_id}", f"reading application {application_id}")
        return application_id
    name = APP_PREFIX + run_tag
    found = api.pages("/applications", "listing applications", {"filterField": "name", "filter": name})
    for app in found:
        if app.get("name") == name:
            return app["id"]
    body = api.call("POST", "/applications", "creating the application",
                    json={"name": name, "description": f"Created by losant-load for run tag {run_tag}"})
    return body["id"]


def _device_body(spec: DeviceSpec, run_tag: str, gateway_id: str | None) -> dict[str, Any]:
    tags = [{"key": RUN_TAG_KEY, "value": run_tag}, {"key": CLASS_TAG_KEY, "value": spec.class_name}]
    tags += [{"key": k, "value": v} for k, v in spec.tags]
    body: dict[str, Any] = {
        "name": spec.name,
        "deviceClass": spec.kind,
        "tags": tags,
        "attributes": [{"name": n, "dataType": t} for n, t in spec.attributes],
    }
    if gateway_id:
        body["gatewayId"] = gateway_id
    return body


class Progress:
    """One self-rewriting line on stderr, so long provisioning shows it is alive."""

    #: A log file (or the web UI's Logs tab) gets a line at most this often, and one at the end.
    LOG_EVERY_S = 5.0

    def __init__(self, label: str, total: int, stream: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self._last = clock()  # the first log line comes after LOG_EVERY_S, not at the first device

    def step(self, n: int = 1) -> None:
        self.done += n
        if not self.tty:  # not a redrawn bar: a line every few seconds, so long provisioning shows it is alive
            now = self.clock()
            if self.done >= self.total or now - self._last >= self.LOG_EVERY_S:
                self._last = now
                self.stream.write(f"{self.label}: {self.done}/{self.total}\n")
                self.stream.flush()
            return
        now = self.clock()
        if now - self._last > 0.2 or self.done == self.total:
            self._last = now
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}")
            if self.done >= self.total:
                self.stream.write("\n")
            self.stream.flush()


def ensure_devices(api: Api, app_id: str, run_tag: str, specs: list[DeviceSpec],
                   parallel: int = 8, progress: Callable[[str, int], Progress] = Progress) -> list[Device]:
    """Create the devices that are missing (by name, among those carrying the run tag)."""
    path = f"/applications/{app_id}/devices"
    existing = api.pages(path, "listing devices", {"tagFilter[0][key]": RUN_TAG_KEY, "tagFilter[0][value]": run_tag})
    ids: dict[str, str] = {d["name"]: d["id"] for d in existing}
    bar = progress("provisioning devices", len(specs))
    bar.step(sum(1 for s in specs if s.name in ids))

    def create(spec: DeviceSpec) -> tuple[str, str]:
        gateway_id = ids[spec.gateway_name] if spec.gateway_name else None
        body = api.call("POST", path, f"creating device {spec.name}", json=_device_body(spec, run_tag, gateway_id))
        bar.step()
        return spec.name, body["id"]

    # Gateways before peripherals, since a peripheral names its gateway's id.
    for wave in ([s for s in specs if s.kind != "peripheral"], [s for s in specs if s.kind == "peripheral"]):
        missing = [s for s in wave if s.name not in ids]
        if missing:
            with ThreadPoolExecutor(max_workers=parallel) as pool:
                ids.update(pool.map(create, missing))
    devices = {s.name: Device(ids[s.name], s.name, s.class_name, s.kind) for s in specs}
    for spec in specs:
        if spec.gateway_name:
            gw = devices[spec.gateway_name]
            devices[spec.name].gateway_id = gw.id
            gw.peripheral_ids.append(ids[spec.name])
    return [devices[s.name] for s in specs]


def create_access(api: Api, app_id: str, run_tag: str, run_id: str, operator_token: bool) -> dict[str, Any]:
    """A fresh access key for the fleet's devices and, when needed, an operators' API token."""
    key = api.call("POST", f"/applications/{app_id}/keys", "creating the access key", json={
        "name": f"losant-load {run_tag} {run_id}",
        "description": f"losant-load run {run_id}",
        "deviceTags": [{"key": RUN_TAG_KEY, "value": run_tag}],
    })
    out: dict[str, Any] = {"key_id": key["id"], "key": key["key"], "secret": Secret(key["secret"])}
    if operator_token:
        tok = api.call("POST", f"/applications/{app_id}/tokens", "creating the operators' API token", json={
            "name": f"losant-load {run_tag} {run_id}", "scope": ["all.Application"],
        })
        out.update(token_id=tok["id"], token=Secret(tok["token"]))
    return out


def provision(base_url: str, login: Login, run_tag: str, run_id: str, specs: list[DeviceSpec],
              application_id: str | None = None, operator_token: bool = True,
              log: Callable[[int, float, str, bool], None] | None = None) -> Fleet:
    """Sign in, find or create the application and devices, and mint this run's credentials."""
    api = Api(base_url, log=log)
    try:
        user_token = sign_in(api, login)
        api.token = user_token
        app_id = find_or_create_application(api, run_tag, application_id)
        devices = ensure_devices(api, app_id, run_tag, specs)
        access = create_access(api, app_id, run_tag, run_id, operator_token)
    finally:
        api.close()
    return Fleet(base_url=base_url, application_id=app_id, run_tag=run_tag,
                 access_key=access["key"], access_secret=access["secret"],
                 operator_token=access.get("token"), user_token=Secret(user_token), devices=devices,
                 key_id=access["key_id"], token_id=access.get("token_id"))


def release_access(fleet: Fleet, log: Callable[[int, float, str, bool], None] | None = None) -> None:
    """Delete this run's access key and token: they were minted for it alone."""
    api = Api(fleet.base_url, token=fleet.user_token, log=log)
    try:
        if fleet.key_id:
            api.call("DELETE", f"/applications/{fleet.application_id}/keys/{fleet.key_id}", "deleting the access key", ok=(200, 404))
        if fleet.token_id:
            api.call("DELETE", f"/applications/{fleet.application_id}/tokens/{fleet.token_id}", "deleting the API token", ok=(200, 404))
    finally:
        api.close()


def teardown(base_url: str, login: Login, run_tag: str, application_id: str | None = None,
             log: Callable[[int, float, str, bool], None] | None = None) -> int:
    """Remove every device carrying the run tag (and the application if the harness named it); returns devices removed."""
    api = Api(base_url, log=log)
    try:
        api.token = sign_in(api, login)
        name = APP_PREFIX + run_tag
        if application_id is None:
            apps = [a for a in api.pages("/applications", "listing applications", {"filterField": "name", "filter": name})
                    if a.get("name") == name]
        else:
            apps = [{"id": application_id, "name": None}]
        removed = 0
        for app in apps:
            path = f"/applications/{app['id']}/devices"
            devices = api.pages(path, "listing devices", {"tagFilter[0][key]": RUN_TAG_KEY, "tagFilter[0][value]": run_tag})
            for dev in devices:
                api.call("DELETE", f"{path}/{dev['id']}", f"deleting device {dev['name']}", ok=(200, 404))
                removed += 1
            if app.get("name") == name:
                api.call("DELETE", f"/applications/{app['id']}", "deleting the application", ok=(200, 404))
        return removed
    finally:
        api.close()
