"""Method + path pattern -> handler, without a framework.

Patterns are literal segments and ``{name}`` placeholders. Routes are grouped by
segment count so a lookup compares only a handful of candidates; the send-state path
is matched in a few microseconds.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from .errors import ApiError


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: Callable[..., Any]
    operation: str
    parts: tuple[tuple[bool, str], ...]  # (is_param, text)
    is_async: bool = False


class Router:
    """Find the handler for a request; unknown path -> 404, known path wrong method -> 405."""

    def __init__(self) -> None:
        self._by_len: dict[int, list[Route]] = {}
        # (segment count, last segment) -> candidates; last segment None = a parameter
        self._index: dict[tuple[int, str | None], list[Route]] = {}

    def add(self, method: str, pattern: str, operation: str, handler: Callable[..., Any]) -> None:
        segs = [s for s in pattern.strip("/").split("/") if s]
        parts = tuple((s.startswith("{"), s.strip("{}")) for s in segs)
        route = Route(method, pattern, handler, operation, parts, inspect.iscoroutinefunction(handler))
        # literal routes first so ".../devices/command" beats ".../devices/{deviceId}"
        routes = self._by_len.setdefault(len(parts), [])
        routes.append(route)
        routes.sort(key=lambda r: [p[0] for p in r.parts])
        self._index = {}
        for n, group in self._by_len.items():
            for r in group:
                last = None if not r.parts or r.parts[-1][0] else r.parts[-1][1]
                self._index.setdefault((n, last), []).append(r)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        segs = path.strip("/").split("/") if path not in ("", "/") else []
        allowed: list[str] = []
        n = len(segs)
        candidates = self._index.get((n, segs[-1]), []) + self._index.get((n, None), []) if segs else self._by_len.get(0, [])
        for route in candidates:
            params: dict[str, str] = {}
            for (is_param, text), seg in zip(route.parts, segs):
                if is_param:
                    if not seg:
                        break
                    params[text] = seg
                elif text != seg:
                    break
            else:
                if route.method == method:
                    return route, params
                allowed.append(route.method)
        if allowed:
            raise ApiError(405, "MethodNotAllowed", f"Method {method} is not allowed on {path}; allowed: {', '.join(sorted(set(allowed)))}")
        raise ApiError(404, "NotFound", f"Path {path} was not found")
