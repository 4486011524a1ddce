"""Request-body validation against the official draft-07 schemas (copied into ``schemas/``).

Validators are compiled once per schema name. Three schema families refer to
``#/definitions/advancedDeviceQuery`` (and the event/key variants) without carrying a
``definitions`` section; the reference means the sibling file, so it is injected here.
Error messages name the failing field (``data.temp: ...``) without echoing values.

A hostile body must cost time linear in its size, and little of it. Stock jsonschema
does not: ``uniqueItems`` compares unhashable items pairwise (3,000 objects in
``requestedScopes`` of the public ``POST /auth/user`` took 85 s), ``anyOf``/``oneOf``
collect every error of every failing branch and put ``repr(instance)`` in their
message, and ``best_match`` consumes every error of the body (5,000 bad ``deviceIds``:
0.45 s). So: ``uniqueItems`` by hashing, ``anyOf``/``oneOf`` keeping a few errors per
branch and no repr, at most ``MAX_ERRORS`` errors looked at, and schemas reordered so
the cheap whole-value keywords (``type``, ``maxItems``, ``required``...) run, and fail,
before the ones that descend (``items``, ``properties``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft7Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from .errors import validation

SCHEMA_DIR = Path(__file__).with_name("schemas")
BOUNDED_SCOPES = ("all.Application.bounded",)
#: errors looked at per validation (and per anyOf/oneOf branch) to pick the one to report
MAX_ERRORS = 5
#: keywords that judge the value as a whole, cheaply: run first, so a 5,000-item list over
#: ``maxItems`` is refused before its items are checked one by one
_CHEAP_FIRST = ("type", "enum", "const", "maxItems", "minItems", "maxLength", "minLength", "maxProperties",
                "minProperties", "required", "additionalProperties", "minimum", "maximum", "pattern", "format")


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
        sub.pop("$schema", None)  # else jsonschema follows the $ref with the stock Draft7Validator, not ours
        definitions[ref] = sub
        more: set[str] = set()
        collect_refs(sub, more)
        todo |= more - set(definitions)
    if definitions:
        schema["definitions"] = {**schema.get("definitions", {}), **definitions}
    if name in ("apiTokenPost", "applicationApiTokenPost"):
        _add_bounded(schema["properties"]["scope"]["items"])  # API 1.31.0 adds them
    return _cheap_first(schema)


def _cheap_first(node: Any) -> Any:
    """The same schema with, in every subschema, the whole-value keywords before the others.

    jsonschema evaluates keywords in dict order; the order changes no verdict, only which
    errors come first (and so how many must be produced before the first useful one).
    """
    if isinstance(node, list):
        return [_cheap_first(v) for v in node]
    if not isinstance(node, dict):
        return node
    first = {k: _cheap_first(node[k]) for k in _CHEAP_FIRST if k in node and not isinstance(node[k], dict)}
    rest = {k: _cheap_first(v) for k, v in node.items() if k not in first and k != "uniqueItems"}
    last = {"uniqueItems": node["uniqueItems"]} if "uniqueItems" in node else {}  # hashes every item: after the rest
    return first | rest | last


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


def _hashable(value: Any) -> Any:
    """A key equal for JSON-equal values: true is not 1, 1 is 1.0 (as jsonschema's ``equal``)."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (dict, list)):
        return ("j", orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    return ("v", value)


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """``uniqueItems`` in linear time (stock jsonschema compares unhashable items pairwise)."""
    if unique and validator.is_type(instance, "array"):
        seen: set[Any] = set()
        for item in instance:
            key = _hashable(item)
            if key in seen:
                yield ValidationError("has non-unique elements")
                return
            seen.add(key)


def _branch_errors(validator: Any, instance: Any, subschemas: Any) -> tuple[int | None, list[ValidationError]]:
    """(index of the first branch the instance passes, or None; a few errors of each failing one)."""
    errors: list[ValidationError] = []
    for index, subschema in enumerate(subschemas):
        errs = list(itertools.islice(validator.descend(instance, subschema, schema_path=index), MAX_ERRORS))
        if not errs:
            return index, errors
        errors.extend(errs)
    return None, errors


def _any_of(validator: Any, any_of: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    passed, errors = _branch_errors(validator, instance, any_of)
    if passed is None:
        yield ValidationError("is not valid under any of the given schemas", context=errors)


def _one_of(validator: Any, one_of: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    passed, errors = _branch_errors(validator, instance, one_of)
    if passed is None:
        yield ValidationError("is not valid under any of the given schemas", context=errors)
    elif any(validator.evolve(schema=s).is_valid(instance) for s in one_of[passed + 1:]):
        yield ValidationError("is valid under more than one of the given schemas")


def _sized(kind: str, too: str, over: bool) -> Any:
    """``maxItems``/``minItems``/``maxLength``/... without ``repr(instance)`` in the message."""

    def keyword(validator: Any, bound: int, instance: Any, schema: Any) -> Iterator[ValidationError]:
        if validator.is_type(instance, kind) and (len(instance) > bound if over else len(instance) < bound):
            yield ValidationError(f"is too {too}")

    return keyword


def _type(validator: Any, types: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    names = types if isinstance(types, list) else [types]
    if not any(validator.is_type(instance, t) for t in names):
        yield ValidationError(f"is not of type {', '.join(map(str, names))}")


def _enum(validator: Any, enums: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if isinstance(instance, (dict, list)) and not any(isinstance(e, (dict, list)) for e in enums):
        yield ValidationError("is not one of the allowed values")  # no container is equal to a scalar
        return
    key = _hashable(instance)
    if not any(_hashable(e) == key for e in enums):
        yield ValidationError("is not one of the allowed values")


_Validator = validators.extend(Draft7Validator, {
    "uniqueItems": _unique_items, "anyOf": _any_of, "oneOf": _one_of, "type": _type, "enum": _enum,
    "maxItems": _sized("array", "long", True), "minItems": _sized("array", "short", False),
    "maxLength": _sized("string", "long", True), "minLength": _sized("string", "short", False),
    "maxProperties": _sized("object", "many properties", True), "minProperties": _sized("object", "few properties", False),
})


@lru_cache(maxsize=None)
def validator(name: str) -> Draft7Validator:
    # formats are checked where jsonschema can without extra packages (email); date-time and uri
    # stay unchecked, as the API accepts any Date.parse-able time in many of them
    return _Validator(load_schema(name), format_checker=Draft7Validator.FORMAT_CHECKER)


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
    error = best_match(itertools.islice(v.iter_errors(instance), MAX_ERRORS))
    if error is not None:
        raise validation(describe(error, root))


def application_scopes() -> frozenset[str]:
    """Scopes an application API token may carry (application-only schema + bounded)."""
    schema = load_schema("applicationApiTokenPost")
    return frozenset(s for enum in _enums(schema["properties"]["scope"]["items"]) for s in enum)
