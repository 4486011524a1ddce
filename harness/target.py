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
from harness.fleet import Secret
from harness.provision import Login

ENV_VARS = {
    "user": ("LOSANT_EMAIL", "LOSANT_PASSWORD"),
    "token": ("LOSANT_API_TOKEN",),
    "key": ("LOSANT_ACCESS_KEY", "LOSANT_ACCESS_SECRET"),
}


def safe_url(url: str) -> str:
    """The URL with any user-info removed, for logs and reports."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


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
        return Target(url.rstrip("/"), login, live=True, application_id=getattr(tgt, "application_id", None))
    from harness.emulator.process import EmulatorProcess

    password = secrets.token_urlsafe(18)
    proc = EmulatorProcess(email="load@emulator.local", password=password, limits=str(limits) if limits else None)
    proc.start()
    login = Login(email="load@emulator.local", password=Secret(password))
    return Target(proc.url, login, live=False, application_id=None, emulator=proc)
