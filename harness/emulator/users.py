"""User accounts: who may sign in, and whose applications are whose.

Why more than one: "per owner" limits (one clone or applications import at a time per
owner) and the isolation between owners can only be exercised with two owners. Each
user owns the applications it creates (``ownerId`` = its id, stable across restarts
because it derives from the email) and reaches no other user's: another owner's
application is a 404, as an unknown one is.

Accounts come from the configuration (the login, ``--user EMAIL:PASSWORD``, env
``LOSANT_EMULATOR_USERS``; reapplied at every start, so a configured password wins over
a stored one) or from ``POST /_emulator/users`` (with ``--admin``, loopback clients
only). Passwords are kept as salted sha256 like access key secrets, compared in
constant time, and never logged, listed or echoed.
"""

from __future__ import annotations

import hmac
import secrets
from typing import TYPE_CHECKING, Any, Callable, Iterable

import orjson

from harness.errors import ConfigError

from .auth import hash_secret, user_id_for
from .errors import ApiError
from .http import from_loopback, read_body, send_json

if TYPE_CHECKING:
    from .store import Store

MIN_PASSWORD, MAX_PASSWORD, MAX_EMAIL = 8, 2048, 1024  # userCredentials.json
MAX_ADMIN_BODY = 64 * 1024
ENV_USERS = "LOSANT_EMULATOR_USERS"
_DUMMY_SALT = secrets.token_hex(8)


def check_account(email: Any, password: Any, where: str) -> tuple[str, str]:
    """A usable (email, password) pair or ConfigError naming ``where``; the password is never quoted."""
    if not isinstance(email, str) or "@" not in email or not 3 <= len(email) <= MAX_EMAIL or email != email.strip():
        raise ConfigError(f"{where}: email must be an address like name@example.com (at most {MAX_EMAIL} characters)")
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ConfigError(f"{where}: password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return email, password


def parse_user_specs(specs: Iterable[str], where: str) -> tuple[tuple[str, str], ...]:
    """``EMAIL:PASSWORD`` items (split at the first colon) -> checked pairs."""
    out = []
    for spec in specs:
        email, sep, password = spec.partition(":")
        if not sep:
            raise ConfigError(f"{where}: expected EMAIL:PASSWORD, got an item without a colon")
        out.append(check_account(email.strip(), password, where))
    return tuple(out)


class Users:
    """The accounts table (``users`` in the store): add, verify, list."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock

    def add(self, email: str, password: str, replace: bool = True) -> dict[str, Any]:
        """Create (or with ``replace``, reset the password of) an account; its public view."""
        email, password = check_account(email, password, "user")
        user_id = user_id_for(email)
        existing = self.store.get("users", user_id)
        if existing is not None and not replace:
            raise ApiError(409, "Conflict", "A user with this email already exists")
        salt = secrets.token_hex(8)
        created = existing["creationDate"] if existing is not None else int(self.clock() * 1000)
        doc = {"id": user_id, "email": email, "creationDate": created, "passwordSalt": salt,
               "passwordHash": hash_secret(password, salt)}
        self.store.put("users", user_id, doc, email=email.lower())
        return self.view(doc)

    def verify(self, email: str, password: str) -> dict[str, Any] | None:
        """The account these credentials open, else None (same work either way)."""
        doc = self.store.get("users", user_id_for(email))
        salt, stored = (doc["passwordSalt"], doc["passwordHash"]) if doc is not None else (_DUMMY_SALT, "")
        matches = hmac.compare_digest(hash_secret(password, salt), stored)
        return doc if doc is not None and matches else None

    def accounts(self) -> list[dict[str, Any]]:
        rows = self.store.db.execute("SELECT doc FROM users ORDER BY email").fetchall()
        return [self.view(orjson.loads(r[0])) for r in rows]

    @staticmethod
    def view(doc: dict[str, Any]) -> dict[str, Any]:
        return {"id": doc["id"], "email": doc["email"]}


def seed(store: Store, clock: Callable[[], float], accounts: Iterable[tuple[str, str]]) -> Users:
    """The accounts of the configuration, (re)applied at start."""
    users = Users(store, clock)
    for email, password in accounts:
        users.add(email, password)
    return users


class UsersAdmin:
    """``GET /_emulator/users`` (ids and emails) and ``POST`` ``{"email", "password"}`` (201, 409 if taken).

    Loopback clients only; others get the 404 an unknown path gets."""

    def __init__(self, users: Users) -> None:
        self.users = users

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            if not from_loopback(scope):
                raise ApiError(404, "NotFound", f"Path {scope['path'][:200]} was not found")
            method = scope["method"]
            if method == "GET":
                items = self.users.accounts()
                await send_json(send, 200, {"items": items, "count": len(items)})
            elif method == "POST":
                raw = await read_body(receive, MAX_ADMIN_BODY)
                try:
                    body = orjson.loads(raw or b"null")
                except orjson.JSONDecodeError:
                    raise ApiError(400, "Validation", "POST /_emulator/users: body is not valid JSON") from None
                if not isinstance(body, dict) or set(body) - {"email", "password"}:
                    raise ApiError(400, "Validation", "POST /_emulator/users: body must be {\"email\", \"password\"}")
                try:
                    check_account(body.get("email"), body.get("password"), "POST /_emulator/users")
                except ConfigError as exc:
                    raise ApiError(400, "Validation", str(exc)) from None
                await send_json(send, 201, self.users.add(body["email"], body["password"], replace=False))
            else:
                raise ApiError(405, "MethodNotAllowed", f"Method {method} is not allowed on /_emulator/users; allowed: GET, POST")
        except ApiError as exc:
            await send_json(send, exc.status, exc.body())
