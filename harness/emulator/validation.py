"""Request-body validation against the official draft-07 schemas (copied into ``schemas/``).

Validators are compiled once per schema name. Three schema families refer to
``#/definitions/advancedDeviceQuery`` (and the event/key variants) without carrying a
``definitions`` section; the reference means the sibling file, so it is injected here.
Error messages name the failing field (``data.temp: ...``) without echoing values.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match

from .errors import validation

SCHEMA_DIR = Path(__file__).with_name("schemas")
BOUNDED_SCOPES = ("all.Application.bounded",)


def _load_raw(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))


def collect_refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            collect_refs(value, found)
    elif isinstance(node, list):
        for value in node:
            collect_refs(value, found)


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """The schema with every sibling it refers to injected under ``definitions``."""
    schema = _load_raw(name)
    todo: set[str] = set()
    collect_refs(schema, todo)
    definitions: dict[str, Any] = {}
    while todo:
        ref = todo.pop()
        if ref in definitions:
            continue
        sub = _load_raw(ref)
        definitions[ref] = sub
        more: set[str] = set()
        collect_refs(sub, more)
        todo |= more - set(definitions)
    if definitions:
        schema["definitions"] = {**schema.get("definitions", {}), **definitions}
    if name in ("apiTokenPost", "applicationApiTokenPost"):
        _add_bounded(schema["properties"]["scope"]["items"])  # API 1.31.0 adds them
    return schema


def _enums(node: Any) -> list[list[str]]:
    if isinstance(node, dict):
        found = [node["enum"]] if isinstance(node.get("enum"), list) else []
        for value in node.get("oneOf", []) + node.get("anyOf", []):
            found += _enums(value)
        return found
    return []


def _add_bounded(items: dict[str, Any]) -> None:
    enums = _enums(items)
    for enum in enums:
        if "all.Application" in enum:
            enum.extend(s for s in BOUNDED_SCOPES if s not in enum)


@lru_cache(maxsize=None)
def validator(name: str) -> Draft7Validator:
    # formats are checked where jsonschema can without extra packages (email); date-time and uri
    # stay unchecked, as the API accepts any Date.parse-able time in many of them
    return Draft7Validator(load_schema(name), format_checker=Draft7Validator.FORMAT_CHECKER)


def _field(error: ValidationError, root: str) -> str:
    parts = [root] if root else []
    for p in error.absolute_path:
        parts.append(f"[{p}]" if isinstance(p, int) else str(p))
    text = ".".join(parts).replace(".[", "[")
    return text or "body"


def describe(error: ValidationError, root: str = "") -> str:
    """One line naming the field and what is wrong, without echoing the client's value."""
    where = _field(error, root)
    kind = error.validator
    if kind == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "a field"
        return f"{where}: missing required field {missing!r}"
    if kind == "additionalProperties":
        return f"{where}: unknown field(s) not allowed: {error.message.split('(')[-1].rstrip(')')}"
    if kind == "type":
        return f"{where}: must be of type {error.validator_value}"
    if kind == "enum":
        return f"{where}: value is not one of the allowed values"
    if kind in ("minLength", "maxLength", "minItems", "maxItems", "minimum", "maximum"):
        return f"{where}: violates {kind} {error.validator_value}"
    if kind in ("anyOf", "oneOf"):
        options = error.validator_value
        if all(isinstance(o, dict) and set(o) == {"required"} for o in options):
            names = ", ".join(n for o in options for n in o["required"])
            return f"{where}: one of the fields {names} is required"
        return f"{where}: does not match any allowed form ({kind})"
    if kind == "pattern":
        return f"{where}: does not match pattern {error.validator_value}"
    return f"{where}: is not valid ({kind})"


def validate(name: str, instance: Any, root: str = "") -> None:
    """Raise 400 Validation naming the first (best) failing field."""
    v = validator(name)
    error = best_match(v.iter_errors(instance))
    if error is not None:
        raise validation(describe(error, root))


def application_scopes() -> frozenset[str]:
    """Scopes an application API token may carry (application-only schema + bounded)."""
    schema = load_schema("applicationApiTokenPost")
    return frozenset(s for enum in _enums(schema["properties"]["scope"]["items"]) for s in enum)
