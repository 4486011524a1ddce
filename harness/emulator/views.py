"""Shaping stored documents into API answers: ISO times, envelopes, paging, sorting.

Documents keep times as epoch ms (so queries compare numbers); answers carry ISO-8601
with milliseconds and ``Z`` (REFERENCE section 1). List answers use the collection
envelope of section 3.
"""

from __future__ import annotations

import secrets
from typing import Any, Callable, Iterable

from .errors import validation
from .http import int_param
from .query import glob_match
from .timeparse import format_time

TIME_FIELDS = ("creationDate", "lastUpdated", "expirationDate", "deletedAt")


def new_id() -> str:
    return secrets.token_hex(12)


def iso(value: Any) -> Any:
    return format_time(int(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def public(doc: dict[str, Any], drop: Iterable[str] = ()) -> dict[str, Any]:
    """A copy without internal fields (``_``-prefixed, listed), times as ISO strings."""
    out = {k: v for k, v in doc.items() if not k.startswith("_") and k not in drop}
    for name in TIME_FIELDS:
        if name in out and out[name] is not None:
            out[name] = iso(out[name])
    return out


def device_view(doc: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
    out = public(doc, ("connectionStatus",))
    info = out.get("connectionInfo")
    if isinstance(info, dict):
        info = dict(info)
        for k in ("time", "connectedAt", "disconnectedAt"):
            if info.get(k) is not None:
                info[k] = iso(info[k])
        out["connectionInfo"] = info
    if str(query.get("excludeConnectionInfo", "")).lower() == "true":
        out.pop("connectionInfo", None)
    if str(query.get("tagsAsObject", "")).lower() == "true":
        tags: dict[str, list[str]] = {}
        for tag in out.get("tags") or []:
            tags.setdefault(tag["key"], []).append(tag["value"])
        out["tags"] = tags
    if str(query.get("attributesAsObject", "")).lower() == "true":
        out["attributes"] = {a["name"]: a for a in out.get("attributes") or []}
    return out


def _sort_key(field: str) -> Callable[[dict[str, Any]], Any]:
    def key(doc: dict[str, Any]) -> Any:
        value = doc.get(field)
        if field == "connectionStatus":
            value = doc.get("connectionStatus", "disconnected")
        if value is None:
            return (0, "")
        if isinstance(value, str):
            return (1, value.lower())
        return (1, value) if isinstance(value, (int, float)) else (1, str(value))
    return key


def page(docs: list[dict[str, Any]], query: dict[str, Any], sort_fields: tuple[str, ...], default_sort: str,
         default_dir: str, filter_fields: tuple[str, ...], max_per_page: int,
         render: Callable[[dict[str, Any]], dict[str, Any]], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Filter (glob), sort, page and wrap ``docs`` in the collection envelope."""
    sort_field = query.get("sortField") or default_sort
    if sort_field not in sort_fields:
        raise validation(f"sortField must be one of {', '.join(sort_fields)}")
    direction = str(query.get("sortDirection") or default_dir).lower()
    if direction not in ("asc", "desc"):
        raise validation("sortDirection must be asc or desc")
    number = int_param(query, "page", 0, minimum=0)
    per_page = int_param(query, "perPage", 100, minimum=1, maximum=max_per_page)
    envelope: dict[str, Any] = {}
    pattern = query.get("filter")
    if pattern:
        field = query.get("filterField") or filter_fields[0]
        if field not in filter_fields:
            raise validation(f"filterField must be one of {', '.join(filter_fields)}")
        docs = [d for d in docs if glob_match(str(pattern), str(d.get(field, "")))]
        envelope.update(filter=pattern, filterField=field)
    docs = sorted(docs, key=_sort_key("id"))
    docs.sort(key=_sort_key(sort_field), reverse=direction == "desc")
    chunk = docs[number * per_page:(number + 1) * per_page]
    envelope.update(items=[render(d) for d in chunk], count=len(chunk), totalCount=len(docs), perPage=per_page,
                    page=number, sortField=sort_field, sortDirection=direction)
    if extra:
        envelope.update(extra)
    return envelope


def job(prefix: str = "job") -> dict[str, Any]:
    """The documented job answer; ``jobId`` up to 21 characters."""
    return {"jobQueued": True, "jobId": (prefix[:4] + secrets.token_hex(8))[:21], "success": True}


SUCCESS = {"success": True}
