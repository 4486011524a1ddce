"""Applications, access keys and application API tokens (REFERENCE 5.2, 5.3)."""

from __future__ import annotations

import secrets
import uuid
from typing import TYPE_CHECKING, Any

from .auth import hash_secret
from .errors import forbidden, not_found, validation
from .http import ApiResponse
from .query import compile_query
from .timeparse import parse_input_time
from .validation import application_scopes, validate
from .views import SUCCESS, collection, links_wanted, new_id, page, public, resource

if TYPE_CHECKING:
    from .app import Emulator
    from .http import Request

# creator* are what keys carried before they followed applicationKey.json (createdBy*, lastUpdatedBy*)
_KEY_HIDDEN = ("secretSalt", "secretHash", "creatorId", "creatorType", "creatorName")
_APP_PATCH = {"name": str, "description": str}
_APP_MAX_LENGTH = {"name": 255, "description": 1024}  # application.json


def _obj(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise validation("body: must be a JSON object")
    return body


def _creator(req: Request) -> dict[str, Any]:
    """Who made an API token, as apiToken.json names it."""
    p = req.principal
    if p.kind == "user":
        return {"creatorId": p.user_id, "creatorType": "user", "creatorName": p.name}
    return {"creatorId": p.api_token_id, "creatorType": "apiToken", "creatorName": p.name}


def _actor(req: Request, role: str) -> dict[str, Any]:
    """Who made (``createdBy``) or last changed (``lastUpdatedBy``) an access key, as applicationKey.json names it."""
    p = req.principal
    if p.kind == "user":
        return {f"{role}Id": p.user_id, f"{role}Type": "user"}
    return {f"{role}Id": p.api_token_id, f"{role}Type": "apiToken"}


def _app_view(doc: dict[str, Any], req: Request) -> dict[str, Any]:
    return resource("application", public(doc), links_wanted(req.raw_query))


def _key_view(doc: dict[str, Any], req: Request) -> dict[str, Any]:
    return resource("applicationKey", public(doc, _KEY_HIDDEN), links_wanted(req.raw_query))


def _token_view(doc: dict[str, Any], req: Request) -> dict[str, Any]:
    return resource("apiToken", public(doc), links_wanted(req.raw_query))


# ---- applications ------------------------------------------------------------
def apps_post(emu: Emulator, req: Request) -> ApiResponse:
    owner = req.principal.user_id
    if not owner:  # only user tokens hold applications.post (scopes.SPECIAL); an application belongs to a user
        raise forbidden("Only a user may create applications")
    body = _obj(req.json())
    validate("applicationPost", body)
    now = emu.now_ms()
    app_id = new_id()
    doc = {**body, "id": app_id, "applicationId": app_id, "ownerId": owner, "ownerType": "user",
           "creationDate": now, "lastUpdated": now}
    emu.store.put("applications", app_id, doc, owner_id=owner)
    return ApiResponse(201, _app_view(doc, req))


def apps_get(emu: Emulator, req: Request) -> dict[str, Any]:
    docs = emu.store.list_where("applications", "owner_id", req.principal.user_id or "")
    envelope = page(docs, req.query, ("name", "id", "creationDate", "ownerId", "lastUpdated"), "name", "asc",
                    ("name",), emu.config.max_per_page, lambda d: _app_view(d, req))
    return collection(envelope, "applications", "/applications", links_wanted(req.raw_query))


def app_get(emu: Emulator, req: Request) -> dict[str, Any]:
    return _app_view(emu.auth.application(req.principal, req.params["applicationId"]), req)


def app_patch(emu: Emulator, req: Request) -> dict[str, Any]:
    app = dict(emu.auth.application(req.principal, req.params["applicationId"]))
    body = _obj(req.json())
    for name, value in body.items():
        if name in _APP_PATCH and not isinstance(value, _APP_PATCH[name]):
            raise validation(f"{name}: must be a string")
        if name in _APP_PATCH and not (name == "description" or value):
            raise validation(f"{name}: must not be empty")
        if name in _APP_PATCH and len(value) > _APP_MAX_LENGTH[name]:
            raise validation(f"{name}: must be at most {_APP_MAX_LENGTH[name]} characters")
    app.update({k: v for k, v in body.items() if k in _APP_PATCH}, lastUpdated=emu.now_ms())
    emu.store.put("applications", app["id"], app, owner_id=app["ownerId"])
    return _app_view(app, req)


def app_delete(emu: Emulator, req: Request) -> dict[str, Any]:
    app = emu.auth.application(req.principal, req.params["applicationId"])
    emu.store.delete_application(app["id"])
    return SUCCESS


# ---- access keys ---------------------------------------------------------------
def keys_post(emu: Emulator, req: Request) -> ApiResponse:
    app = emu.auth.application(req.principal, req.params["applicationId"])
    body = _obj(req.json() or {})
    validate("applicationKeyPost", body)
    now = emu.now_ms()
    key_id = new_id()
    secret = secrets.token_hex(32)
    salt = secrets.token_hex(8)
    doc = {"filterType": "none", "pubTopics": [], "subTopics": [], **body, "id": key_id, "applicationKeyId": key_id,
           "applicationId": app["id"], "key": str(uuid.uuid4()), "status": "active", "creationDate": now,
           "lastUpdated": now, **_actor(req, "createdBy"), **_actor(req, "lastUpdatedBy"), "secretSalt": salt,
           "secretHash": hash_secret(secret, salt)}
    emu.store.put("keys", key_id, doc, application_id=app["id"], key=doc["key"])
    return ApiResponse(201, {**_key_view(doc, req), "secret": secret})


def keys_get(emu: Emulator, req: Request) -> dict[str, Any]:
    app = emu.auth.application(req.principal, req.params["applicationId"])
    docs = emu.store.list("keys", app["id"])
    q = req.json_query("query")
    if q is not None:
        try:
            predicate = compile_query(q, "key")
        except ValueError as exc:
            raise validation(str(exc)) from None
        docs = [d for d in docs if predicate(d)]
    envelope = page(docs, req.query, ("key", "status", "id", "creationDate", "lastUpdated", "name"), "creationDate",
                    "desc", ("key", "status", "name"), emu.config.max_per_page, lambda d: _key_view(d, req),
                    {"applicationId": app["id"]})
    return collection(envelope, "applicationKeys", f"/applications/{app['id']}/keys", links_wanted(req.raw_query),
                      {"application": f"/applications/{app['id']}"})


def _key(emu: Emulator, req: Request) -> dict[str, Any]:
    app = emu.auth.application(req.principal, req.params["applicationId"])
    doc = emu.store.get("keys", req.params["applicationKeyId"])
    if doc is None or doc["applicationId"] != app["id"]:
        raise not_found("Application key")
    return doc


def key_get(emu: Emulator, req: Request) -> dict[str, Any]:
    return _key_view(_key(emu, req), req)


def key_patch(emu: Emulator, req: Request) -> dict[str, Any]:
    doc = dict(_key(emu, req))
    body = _obj(req.json())
    if "deviceIds" in body or "deviceTags" in body:
        raise validation("deviceIds/deviceTags: device restrictions cannot be changed after creation")
    if body.get("status", "active") not in ("active", "inactive"):
        raise validation("status: must be active or inactive")
    check = {k: v for k, v in body.items() if k != "status"}
    validate("applicationKeyPost", check)
    doc.update(body, lastUpdated=emu.now_ms(), **_actor(req, "lastUpdatedBy"))
    emu.store.put("keys", doc["id"], doc, application_id=doc["applicationId"], key=doc["key"])
    return _key_view(doc, req)


def key_delete(emu: Emulator, req: Request) -> dict[str, Any]:
    doc = _key(emu, req)
    emu.store.delete("keys", doc["id"])
    return SUCCESS


# ---- application API tokens ------------------------------------------------------
def tokens_post(emu: Emulator, req: Request) -> ApiResponse:
    app = emu.auth.application(req.principal, req.params["applicationId"])
    body = _obj(req.json())
    validate("apiTokenPost", body)
    scope = body.get("scope") or ["all.Application"]
    bad = [s for s in scope if s not in application_scopes()]
    if bad:
        raise validation(f"scope: not an application scope: {', '.join(bad[:5])}")
    expires_ms = None
    if body.get("expirationDate") is not None:
        expires_ms = parse_input_time(body["expirationDate"], emu.now_ms())
        if expires_ms is None:
            raise validation("expirationDate: not a readable date")
    now = emu.now_ms()
    token_id = new_id()
    doc = {"description": "", **body, "id": token_id, "apiTokenId": token_id, "ownerId": app["id"],
           "ownerType": "application", **_creator(req), "scope": scope, "status": body.get("status", "active"),
           "expirationDate": expires_ms, "creationDate": now, "lastUpdated": now}
    emu.store.put("api_tokens", token_id, doc, application_id=app["id"])
    token = emu.auth.mint({"kind": "apiToken", "scopes": scope, "applicationId": app["id"], "apiTokenId": token_id,
                           "status": doc["status"], "name": doc["name"],
                           "expiresAt": expires_ms / 1000 if expires_ms is not None else None}, None)
    return ApiResponse(201, {**_token_view(doc, req), "token": token})


def tokens_get(emu: Emulator, req: Request) -> dict[str, Any]:
    app = emu.auth.application(req.principal, req.params["applicationId"])
    envelope = page(emu.store.list("api_tokens", app["id"]), req.query,
                    ("name", "status", "id", "creationDate", "lastUpdated", "expirationDate"), "name", "asc",
                    ("name", "status"), emu.config.max_per_page, lambda d: _token_view(d, req),
                    {"ownerId": app["id"], "ownerType": "application"})
    return collection(envelope, "apiTokens", f"/applications/{app['id']}/tokens", links_wanted(req.raw_query),
                      {"application": f"/applications/{app['id']}"})


def _token(emu: Emulator, req: Request) -> dict[str, Any]:
    app = emu.auth.application(req.principal, req.params["applicationId"])
    doc = emu.store.get("api_tokens", req.params["apiTokenId"])
    if doc is None or doc["ownerId"] != app["id"]:
        raise not_found("API token")
    return doc


def token_get(emu: Emulator, req: Request) -> dict[str, Any]:
    return _token_view(_token(emu, req), req)


def token_patch(emu: Emulator, req: Request) -> dict[str, Any]:
    doc = dict(_token(emu, req))
    body = _obj(req.json())
    if "scope" in body or "expirationDate" in body:
        raise validation("scope/expirationDate: cannot be changed after creation")
    unknown = set(body) - {"name", "description", "status"}
    if unknown:
        raise validation(f"body: unknown field(s) not allowed: {', '.join(sorted(unknown))}")
    if body.get("status", "active") not in ("active", "inactive"):
        raise validation("status: must be active or inactive")
    if "name" in body and (not isinstance(body["name"], str) or not 1 <= len(body["name"]) <= 255):
        raise validation("name: must be a string of 1-255 characters")
    if "description" in body and (not isinstance(body["description"], str) or len(body["description"]) > 32767):
        raise validation("description: must be a string of at most 32767 characters")  # apiToken.json
    doc.update(body, lastUpdated=emu.now_ms())
    emu.store.put("api_tokens", doc["id"], doc, application_id=doc["ownerId"])
    if "status" in body:
        emu.store.update_api_token_status(doc["id"], body["status"])
    return _token_view(doc, req)


def token_delete(emu: Emulator, req: Request) -> dict[str, Any]:
    doc = _token(emu, req)
    emu.store.delete("api_tokens", doc["id"])
    emu.store.delete_tokens("api_token_id", doc["id"])
    return SUCCESS


def register(emu: Emulator) -> None:
    r = emu.route
    r("GET", "/applications", "applications.get", apps_get)
    r("POST", "/applications", "applications.post", apps_post)
    r("GET", "/applications/{applicationId}", "application.get", app_get)
    r("PATCH", "/applications/{applicationId}", "application.patch", app_patch)
    r("DELETE", "/applications/{applicationId}", "application.delete", app_delete)
    base = "/applications/{applicationId}"
    r("GET", base + "/keys", "applicationKeys.get", keys_get)
    r("POST", base + "/keys", "applicationKeys.post", keys_post)
    r("GET", base + "/keys/{applicationKeyId}", "applicationKey.get", key_get)
    r("PATCH", base + "/keys/{applicationKeyId}", "applicationKey.patch", key_patch)
    r("DELETE", base + "/keys/{applicationKeyId}", "applicationKey.delete", key_delete)
    r("GET", base + "/tokens", "applicationApiTokens.get", tokens_get)
    r("POST", base + "/tokens", "applicationApiTokens.post", tokens_post)
    r("GET", base + "/tokens/{apiTokenId}", "applicationApiToken.get", token_get)
    r("PATCH", base + "/tokens/{apiTokenId}", "applicationApiToken.patch", token_patch)
    r("DELETE", base + "/tokens/{apiTokenId}", "applicationApiToken.delete", token_delete)
