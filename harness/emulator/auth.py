"""Tokens, principals and the authorization rules of REFERENCE section 4.

Tokens are random strings handed out once; only their sha256 is stored and they are
looked up by that hash, so no secret is ever compared as a string. Key secrets are
stored as salted sha256 and compared with ``hmac.compare_digest``.

Reach: a user token reaches the user's applications (others: 404); application API
tokens and device tokens reach only their own application (others: 403). Device
tokens reach their own device, the devices their access key allows (live: tag
changes apply at once), and, for send-state only, a peripheral whose ``gatewayId``
is empty or the calling gateway; all of it only while the key still allows the
calling device itself (a gateway that loses the key's tag loses its peripherals too).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Callable

from . import scopes as scope_rules
from .errors import ApiError, forbidden, not_found, unauthorized
from .query import tag_filter_matches
from .store import Store

GATEWAY_CLASSES = frozenset(("gateway", "edgeCompute", "embedded"))
HASH_CACHE_CAP = 65_536
REACH_CACHE_CAP = 262_144


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(40)


def hash_secret(secret: str, salt: str) -> str:
    return hashlib.sha256((salt + ":" + secret).encode("utf-8", "surrogatepass")).hexdigest()


def secret_matches(secret: str, salt: str, stored: str) -> bool:
    return hmac.compare_digest(hash_secret(secret, salt), stored)


def user_id_for(email: str) -> str:
    """A stable 24-hex user id, so applications stay owned across restarts."""
    return hashlib.sha256(email.lower().encode()).hexdigest()[:24]


@dataclass(slots=True)
class Principal:
    """Who is calling, as recorded when the token was minted."""

    kind: str  # "user" | "apiToken" | "device"
    scopes: frozenset[str]
    user_id: str | None = None
    application_id: str | None = None
    device_id: str | None = None
    key_id: str | None = None
    api_token_id: str | None = None
    name: str = ""


def key_allows(key: dict[str, Any], device: dict[str, Any]) -> bool:
    """An access key with neither deviceIds nor deviceTags allows every device of its application.

    Memoised on the cached device document for the last key object asked about: the store
    replaces a cached document by a new object whenever it is written (``put`` drops it from
    the cache), so an identity match means neither the key nor the device changed since.
    """
    memo = device.get("_allows")
    if memo is not None and memo[0] is key:
        return memo[1]
    allowed = _key_allows(key, device)
    device["_allows"] = (key, allowed)  # memory only; ``_``-prefixed fields are never stored or shown
    return allowed


def _key_allows(key: dict[str, Any], device: dict[str, Any]) -> bool:
    ids = key.get("deviceIds") or []
    tags = key.get("deviceTags") or []
    if not ids and not tags:
        return True
    if device["id"] in ids:
        return True
    return bool(tags) and tag_filter_matches(device.get("tags") or [], tags)


class Auth:
    """Resolve bearer tokens to principals and enforce scope and reach."""

    def __init__(self, store: Store, clock: Callable[[], float], email: str) -> None:
        self.store = store
        self.clock = clock
        self.user_id = user_id_for(email)
        # Authorization header -> sha256 of its token: a pure function, so it needs no invalidation
        # (what the hash stands for is looked up live). Memory only, bounded, never persisted.
        self._hashes: dict[bytes, str] = {}
        # (header, application, device, operation) -> (store generation, token expiry, device):
        # see ``reach``. Memory only, bounded.
        self._reach: dict[tuple[bytes | None, str, str, str], tuple[int, float | None, dict[str, Any]]] = {}

    def mint(self, doc: dict[str, Any], ttl_s: float | None) -> str:
        """Store a new token's principal (by hash) and return the token string once."""
        token = new_token()
        doc = dict(doc)
        doc["expiresAt"] = self.clock() + ttl_s if ttl_s else doc.get("expiresAt")
        self.store.put_token(hash_token(token), doc)
        return token

    def principal(self, authorization: bytes | None) -> Principal:
        """The caller behind an ``Authorization: Bearer`` header; 401 when absent or unusable."""
        if not authorization:
            raise unauthorized("Authorization header with a Bearer token is required")
        token_hash = self._hashes.get(authorization)
        if token_hash is None:
            text = authorization.decode("latin-1")
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise unauthorized("Authorization header must be 'Bearer <token>'")
            token_hash = hash_token(token.strip())
            if len(self._hashes) >= HASH_CACHE_CAP:
                self._hashes.clear()
            self._hashes[authorization] = token_hash
        doc = self.store.token(token_hash)
        if doc is None:
            raise unauthorized("Invalid or unknown token")
        expires = doc.get("expiresAt")
        if expires is not None and self.clock() >= expires:
            raise unauthorized("Token has expired")
        if doc.get("status", "active") != "active":
            raise unauthorized("Token is inactive")
        principal = doc.get("_principal")
        if principal is None:
            principal = Principal(doc["kind"], frozenset(doc.get("scopes") or ()), doc.get("userId"),
                                  doc.get("applicationId"), doc.get("deviceId"), doc.get("keyId"),
                                  doc.get("apiTokenId"), doc.get("name", ""))
            doc["_principal"] = principal  # memory only; never serialized after put
        if principal.kind == "device":
            key = self.store.get("keys", principal.key_id or "")
            if key is None or key.get("status", "active") != "active":
                raise unauthorized("The access key of this device token is missing or inactive")
            # live, and for every call the token makes (a gateway's for its peripherals too):
            # a device that lost the key's tag lost the key
            caller = self.store.get("devices", principal.device_id or "")
            if caller is None or caller.get("applicationId") != principal.application_id:
                raise unauthorized("The device of this device token no longer exists")
            if not key_allows(key, caller):
                raise forbidden("The access key of this device token no longer allows its device")
        return principal

    def reach(self, authorization: bytes | None, app_id: str, device_id: str, operation: str) -> dict[str, Any]:
        """The device of a device-scoped call after every check the general path makes, in its
        order (principal 401, scope 403, application 403/404, device and reach 403/404).

        A success is remembered until the store's ``generation`` moves (any token, key,
        device or application written or deleted) or the token expires: the checks read
        nothing else, so a hit answers exactly what they would. Failures are never
        remembered. This is the send-state hot path's auth (bench/emulator.py): it
        replaces five lookups and four calls by one dictionary hit.
        """
        memo_key = (authorization, app_id, device_id, operation)
        hit = self._reach.get(memo_key)
        generation = self.store.generation
        if hit is not None and hit[0] == generation and (hit[1] is None or self.clock() < hit[1]):
            return hit[2]
        principal = self.principal(authorization)
        self.require_scope(principal, operation)
        self.application(principal, app_id)
        device = self.device(principal, app_id, device_id, operation)
        token = self.store.token(self._hashes[authorization]) if authorization in self._hashes else None
        expires = token.get("expiresAt") if token is not None else None
        if token is not None and self.store.generation == generation:
            if len(self._reach) >= REACH_CACHE_CAP:
                self._reach.clear()
            self._reach[memo_key] = (generation, expires, device)
        return device

    def require_scope(self, principal: Principal, operation: str) -> None:
        if not scope_rules.admits(principal.scopes, operation):
            raise forbidden(f"Token scopes do not allow {operation}")

    def application(self, principal: Principal, application_id: str) -> dict[str, Any]:
        """The application in the path, if the principal reaches it."""
        if principal.kind == "user":
            app = self.store.get("applications", application_id)
            if app is None or app.get("ownerId") != principal.user_id:
                raise not_found("Application")
            return app
        if application_id != principal.application_id:
            raise forbidden("Token does not grant access to this application")
        app = self.store.get("applications", application_id)
        if app is None:
            raise not_found("Application")
        return app

    def device(self, principal: Principal, app_id: str, device_id: str, operation: str) -> dict[str, Any]:
        """The device in the path: 404 outside the application, 403 outside a device token's reach."""
        device = self.store.get("devices", device_id)
        if device is None or device.get("applicationId") != app_id:
            raise not_found("Device")
        if principal.kind == "device" and not self.device_reaches(principal, device, operation):
            raise forbidden("Device token does not grant access to this device")
        return device

    def device_reaches(self, principal: Principal, device: dict[str, Any], operation: str) -> bool:
        key = self.store.get("keys", principal.key_id or "")
        if key is None or key.get("status", "active") != "active":
            return False
        caller = device if device["id"] == principal.device_id else self.store.get("devices", principal.device_id or "")
        # live, for every device (the MQTT broker asks here per message, without ``principal``):
        # a device that lost the key's tag lost the key, a gateway's peripherals with it
        if caller is None or not key_allows(key, caller):
            return False
        if caller is device:
            return True
        if operation == "device.sendState":
            return (caller.get("deviceClass") in GATEWAY_CLASSES
                    and device.get("deviceClass") == "peripheral"
                    and device.get("gatewayId") in (None, "", caller["id"]))
        return key_allows(key, device)

    def visible(self, principal: Principal, devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Devices a device token may see (all of them for other principals)."""
        if principal.kind != "device":
            return devices
        return [d for d in devices if self.device_reaches(principal, d, "device.get")]


def check_scopes_request(requested: list[str] | None, allowed: frozenset[str]) -> frozenset[str] | None:
    """Validate ``requestedScopes`` of an auth body against what the token kind may hold."""
    if not requested:
        return None
    bad = [s for s in requested if s not in allowed]
    if bad:
        raise ApiError(400, "Validation", f"requestedScopes: not allowed for this token kind: {', '.join(bad[:5])}")
    return frozenset(requested)
