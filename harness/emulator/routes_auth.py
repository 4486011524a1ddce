"""``POST /auth/user`` and ``POST /auth/device`` (REFERENCE 5.1 and 4.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .auth import check_scopes_request, key_allows, secret_matches
from .errors import unauthorized
from .scopes import DEVICE_SCOPES
from .validation import validate

if TYPE_CHECKING:
    from .app import Emulator
    from .http import Request

FAILED = "Authentication failed"


def _ttl(body: dict[str, Any], emu: Emulator) -> float | None:
    ttl = body.get("tokenTTL")
    return float(ttl) if ttl else (emu.config.default_token_ttl_s or None)


def auth_user(emu: Emulator, req: Request) -> dict[str, Any]:
    body = req.json()
    validate("userCredentials", body)
    user = emu.users.verify(str(body["email"]), str(body["password"]))
    if user is None:
        raise unauthorized(FAILED)
    scopes = check_scopes_request(body.get("requestedScopes"), frozenset(body.get("requestedScopes") or ())) or frozenset(("all.User",))
    token = emu.auth.mint({"kind": "user", "scopes": sorted(scopes), "userId": user["id"], "name": user["email"]},
                          _ttl(body, emu))
    return {"userId": user["id"], "token": token, "needsToVerifyEmail": False}


def auth_device(emu: Emulator, req: Request) -> dict[str, Any]:
    body = req.json()
    validate("deviceCredentials", body)
    if not body.get("key") or not body.get("secret"):
        raise unauthorized("Access key and secret are required")
    scopes = check_scopes_request(body.get("requestedScopes"), DEVICE_SCOPES) or frozenset(("all.Device",))
    key = emu.store.key_by_key(str(body["key"]))
    if key is None or not secret_matches(str(body["secret"]), key["secretSalt"], key["secretHash"]):
        raise unauthorized(FAILED)
    if key.get("status", "active") != "active":
        raise unauthorized(FAILED)
    device = emu.store.get("devices", str(body["deviceId"]))
    if device is None or device.get("applicationId") != key["applicationId"] or not key_allows(key, device):
        raise unauthorized(FAILED)
    token = emu.auth.mint({"kind": "device", "scopes": sorted(scopes), "applicationId": key["applicationId"],
                           "deviceId": device["id"], "keyId": key["id"], "name": device.get("name", "")},
                          _ttl(body, emu))
    restricted = bool(key.get("deviceIds") or key.get("deviceTags"))
    return {"applicationId": key["applicationId"], "deviceId": device["id"], "deviceClass": device.get("deviceClass", "standalone"),
            "token": token, "ownerType": "user", "filterType": key.get("filterType", "none"),
            "pubTopics": key.get("pubTopics", []), "subTopics": key.get("subTopics", []), "restricted": restricted}


def register(emu: Emulator) -> None:
    emu.route("POST", "/auth/user", "auth.authenticateUser", auth_user, public=True)
    emu.route("POST", "/auth/device", "auth.authenticateDevice", auth_device, public=True)

