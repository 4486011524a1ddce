"""Where a run sends its traffic: the embedded emulator, or a live tenant.

Credentials for a live tenant come only from environment variables; the embedded
emulator gets a fresh random password each run, so no default password is ever in
play against a network-reachable server.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from harness.errors import ConfigError
from harness.fleet import Login, Secret
from harness.scenario.model import CREDENTIAL_ENV, LIVE_MQTT_URL

ENV_VARS = CREDENTIAL_ENV  # the one list of credential variables, beside the scenario's target.auth


def safe_url(url: str | None) -> str:
    """The URL without credentials, query or fragment: what logs, reports and run files may show.

    >>> safe_url("https://user:s3cret@api.losant.com:443/applications?token=abc#x")
    'https://api.losant.com:443/applications'
    >>> safe_url("")
    ''
    """
    if not url:
        return ""
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "(unparseable URL hidden)"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def login_from_env(auth: str, env: dict[str, str] | None = None) -> Login:
    """Read the live tenant's credentials; the error names the variables, never their values."""
    env = dict(os.environ) if env is None else env
    names = ENV_VARS[auth]
    missing = [n for n in names if not env.get(n)]
    if missing:
        other = next((kind for kind in ("token", "user") if kind != auth and all(env.get(n) for n in ENV_VARS[kind])), None)
        hint = f"; {', '.join(ENV_VARS[other])} is set: pass --auth {other} to use it" if other else ""
        raise ConfigError(f"target.auth is {auth!r}: set the environment variable(s) {', '.join(missing)} "
                          f"(credentials are read only from the environment){hint}")
    if auth == "user":
        return Login(email=env[names[0]], password=Secret(env[names[1]]))
    if auth == "token":
        return Login(api_token=Secret(env[names[0]]))
    raise ConfigError("target.auth 'key' authenticates devices only; provisioning needs a user login or an API token "
                      "(set target.auth to user or token)")


@dataclass
class Target:
    url: str
    login: Login
    live: bool
    application_id: str | None
    emulator: Any = None  # EmulatorProcess while the embedded emulator runs
    #: The MQTT broker: the scenario's ``target.mqtt_url`` (live; Losant's own by default), or the
    #: embedded emulator's, read from its start line (a free port each run: ``--mqtt-port 0``)
    mqtt_url: str = ""

    def stop(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None


def open_target(scenario: Any, scenario_path: Path | None, target_url: str | None = None,
                limits: str | Path | None = None, auth: str | None = None) -> Target:
    """Start the embedded emulator (enforcing ``limits`` when given), or describe the live tenant
    (``auth``, the ``--auth`` option, overrides the scenario's ``target.auth``)."""
    tgt = scenario.target
    url = target_url or (tgt.url if tgt.kind == "live" else None)
    if url:
        login = login_from_env(auth or getattr(tgt, "auth", "user") or "user")
        return Target(url.rstrip("/"), login, live=True, application_id=getattr(tgt, "application_id", None),
                      mqtt_url=getattr(tgt, "mqtt_url", None) or LIVE_MQTT_URL)
    from harness.emulator.process import EmulatorProcess

    password = secrets.token_urlsafe(18)
    # MQTT devices: the broker's admin endpoint (loopback only) lets a scenario drop every connection (a storm)
    mqtt = any(getattr(c, "transport", "rest") == "mqtt" for c in scenario.fleet.classes)
    proc = EmulatorProcess(email="load@emulator.local", password=password, limits=str(limits) if limits else None,
                           admin=mqtt or None)
    proc.start()
    login = Login(email="load@emulator.local", password=Secret(password))
    return Target(proc.url, login, live=False, application_id=None, emulator=proc, mqtt_url=proc.mqtt_url)
