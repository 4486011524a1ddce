"""What the target holds for a run: the provisioned application, devices and credentials.

The shared types of the early stages (target, provision, the run, the users), kept in one
low module so that each stage imports only earlier ones: ``target`` makes a ``Login``,
``provision`` uses it and produces a ``Fleet``, the Locust users only read it. Secrets live
in ``Secret`` strings whose ``repr`` hides them, so a stray log line or traceback never
prints one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.scenario import Scenario

RUN_TAG_KEY = "losant-load-run"
CLASS_TAG_KEY = "losant-load-class"


class Secret(str):
    """A string that never shows itself in repr/format-for-debugging."""

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True)
class Login:
    """How the harness signs in to provision; exactly one way is set."""

    email: str | None = None
    password: Secret | None = None
    api_token: Secret | None = None

    def __repr__(self) -> str:
        return f"Login(email={self.email!r}, password={'***' if self.password else None}, api_token={'***' if self.api_token else None})"


@dataclass(frozen=True)
class DeviceSpec:
    """One device the scenario asks for, before it exists on the target."""

    name: str
    class_name: str
    kind: str  # standalone | gateway | peripheral
    tags: tuple[tuple[str, str], ...]
    attributes: tuple[tuple[str, str], ...]  # (name, dataType)
    gateway_name: str | None = None


@dataclass
class Device:
    id: str
    name: str
    class_name: str
    kind: str
    gateway_id: str | None = None
    peripheral_ids: list[str] = field(default_factory=list)


@dataclass
class Fleet:
    """The provisioned fleet, shared (read-only) by every user of the process."""

    base_url: str
    application_id: str
    run_tag: str
    access_key: str
    access_secret: Secret
    operator_token: Secret | None
    user_token: Secret | None
    devices: list[Device]
    key_id: str | None = None
    token_id: str | None = None

    def by_class(self, class_name: str) -> list[Device]:
        return [d for d in self.devices if d.class_name == class_name]

    def reporters(self) -> list[Device]:
        """Devices that authenticate themselves (standalone devices and gateways)."""
        return [d for d in self.devices if d.kind != "peripheral"]

    def public(self) -> dict[str, Any]:
        """What may be written to the run folder: no secrets."""
        return {
            "base_url": self.base_url,
            "application_id": self.application_id,
            "run_tag": self.run_tag,
            "devices": len(self.devices),
            "by_kind": {k: sum(1 for d in self.devices if d.kind == k) for k in ("standalone", "gateway", "peripheral")},
        }


def plan_devices(scenario: Scenario) -> list[DeviceSpec]:
    """Every device the scenario's fleet asks for, with the tags and attributes to declare.

    Names come from the scenario (deterministic), so a second run with the same run
    tag finds the devices the first one made.
    """
    classes = {c.name: c for c in scenario.fleet.classes}
    specs: list[DeviceSpec] = []
    for planned in scenario.planned_devices():
        cls = classes[planned.class_name]
        attrs = tuple((a.name, a.data_type) for a in cls.attributes)
        tags = tuple(sorted((str(k), str(v)) for k, v in cls.tags.items()))
        specs.append(DeviceSpec(planned.name, cls.name, planned.kind, tags, attrs, gateway_name=planned.gateway))
    return specs
