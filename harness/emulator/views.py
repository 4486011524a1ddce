"""Shaping stored documents into API answers: ISO times, envelopes, paging, sorting.

Documents keep times as epoch ms (so queries compare numbers); answers carry ISO-8601
with milliseconds and ``Z`` (REFERENCE section 1). List answers use the collection
envelope of section 3.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any, Callable, Iterable

import orjson

from .errors import validation
from .http import int_param
from .query import glob_matcher
from .timeparse import format_time

TIME_FIELDS = ("creationDate", "lastUpdated", "expirationDate", "deletedAt")
#: fields the schemas type as strings only: when unset they are left out, as the platform does, never null
OMIT_WHEN_NULL = frozenset(("gatewayId", "expirationDate", "deletedAt", "description"))


def new_id() -> str:
    return secrets.token_hex(12)


def iso(value: Any) -> Any:
    return format_time(int(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def public(doc: dict[str, Any], drop: Iterable[str] = ()) -> dict[str, Any]:
    """A copy without internal fields (``_``-prefixed, listed), times as ISO strings."""
    out = {k: v for k, v in doc.items()
           if not k.startswith("_") and k not in drop and (v is not None or k not in OMIT_WHEN_NULL)}
    for name in TIME_FIELDS:
        if name in out and out[name] is not None:
            out[name] = iso(out[name])
    return out


def device_view(doc: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
    out = public(doc, ("connectionStatus",))
    info = out.get("connectionInfo")
    if isinstance(info, dict):
        info = {k: v for k, v in info.items() if v is not None or k == "connected"}  # time: a string or absent
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
        if not isinstance(pattern, str):  # filter[x]=... parses to an object; the answer echoes a string
            raise validation("filter must be a string (a glob), not an object or list")
        field = query.get("filterField") or filter_fields[0]
        if field not in filter_fields:
            raise validation(f"filterField must be one of {', '.join(filter_fields)}")
        match = glob_matcher(str(pattern))  # compiled once for the whole list
        docs = [d for d in docs if match(str(d.get(field, "")))]
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


# ---- the platform's decoration: _type, _links, _etag (REFERENCE section 3) -------------
def links_wanted(raw_query: bytes) -> bool:
    """``_links`` defaults to on (the documented plain-curl answer carries them); ``_links=false`` drops them."""
    return b"_links=false" not in raw_query


def etag(out: dict[str, Any]) -> str:
    """An ``_etag`` in the documented shape (``"174-u7/3je4oFyaKGePPbcHLqw"``: length in hex and a
    22-character base64 MD5 of the representation), so it changes exactly when the resource does."""
    raw = orjson.dumps(out)
    digest = base64.b64encode(hashlib.md5(raw, usedforsecurity=False).digest()).decode()[:22]
    return f'"{len(raw):x}-{digest}"'


def _links(pairs: dict[str, str]) -> dict[str, dict[str, str]]:
    return {name: {"href": href} for name, href in pairs.items()}


def resource_links(kind: str, out: dict[str, Any]) -> dict[str, str]:
    """The ``_links`` of one resource: its parent, its collection and itself."""
    if kind == "application":
        return {"applications": "/applications", "self": f"/applications/{out['id']}"}
    app = f"/applications/{out.get('applicationId') or out.get('ownerId')}"
    collection = {"device": "devices", "applicationKey": "keys", "apiToken": "tokens", "event": "events"}[kind]
    name = {"device": "devices", "applicationKey": "applicationKeys", "apiToken": "applicationApiTokens",
            "event": "events"}[kind]
    return {"application": app, name: f"{app}/{collection}", "self": f"{app}/{collection}/{out['id']}"}


def resource(kind: str, out: dict[str, Any], links: bool = True) -> dict[str, Any]:
    """Decorate a rendered resource in place: ``_etag`` (of the undecorated view), ``_type``, ``_links``."""
    out["_etag"] = etag(out)
    out["_type"] = kind
    if links:
        out["_links"] = _links(resource_links(kind, out))
    return out


def collection(envelope: dict[str, Any], kind: str, self_href: str, links: bool = True,
               parent: dict[str, str] | None = None) -> dict[str, Any]:
    """Decorate a collection envelope in place: ``_type`` and ``_links`` (its parent and itself)."""
    envelope["_type"] = kind
    if links:
        envelope["_links"] = _links({**(parent or {}), "self": self_href})
    return envelope

