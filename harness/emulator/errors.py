"""API errors as exceptions, so a handler can stop anywhere with the documented JSON body.

Every answer the emulator gives for a failure is ``{"type": ..., "message": ...}`` with
the matching status (REFERENCE section 2). Messages never carry secrets.
"""

from __future__ import annotations

from typing import Any

THROTTLED_MESSAGE = "Over rate limit, request throttled"


#: The body of every 500: an emulator bug (logged on the server), never a client's fault.
INTERNAL_ERROR = {"type": "InternalError", "message": "The emulator failed to process the request (an emulator bug, logged on the server)"}


class ApiError(Exception):
    """A client-visible failure: status, error type name and a plain message."""

    def __init__(self, status: int, type_: str, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "message": self.message}
        out.update(self.extra)
        return out


def validation(message: str) -> ApiError:
    return ApiError(400, "Validation", message)


def unauthorized(message: str = "Unauthorized") -> ApiError:
    return ApiError(401, "Unauthorized", message)


def forbidden(message: str = "Forbidden") -> ApiError:
    return ApiError(403, "Forbidden", message)


def not_found(what: str) -> ApiError:
    return ApiError(404, "NotFound", f"{what} was not found")


def throttled() -> ApiError:
    return ApiError(429, "TooManyRequests", THROTTLED_MESSAGE)


def too_large(limit: int) -> ApiError:
    return ApiError(413, "PayloadTooLarge", f"Request body is larger than the {limit} byte limit")
