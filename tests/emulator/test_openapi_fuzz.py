"""Schemathesis over every emulated operation, from the emulator's own OpenAPI description.

Bounded: a few examples per operation, positive and negative data, in-process (ASGI),
so the whole file runs in well under a minute on two cores. Half the cases target real
ids (an application and a device that exist) and carry a user token, so they reach the
handlers instead of stopping at 401/404. Every answer must be a documented status with
the documented body: the JSON error (``type``, ``message``) for failures, never a 500.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings

from harness.emulator.app import create_app
from harness.emulator.config import DEFAULT_EMAIL, DEFAULT_PASSWORD
from harness.emulator.faults_admin import front
from harness.emulator.openapi import build_openapi
from harness.emulator.scopes import FAMILIES, SPECIAL

schemathesis = pytest.importorskip("schemathesis")  # dev extra (pyproject [dev]); see docs/RELIABILITY.md
GenerationMode = schemathesis.GenerationMode
EXAMPLES_PER_OPERATION = 6
#: schemathesis' own checks. Not positive_data_acceptance (schema-valid bodies may still break
#: documented rules the schemas cannot say, e.g. a parentId that does not exist) and not
#: negative_data_rejection (the emulator, like its jsonschema validator, ignores ``format``).
CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
          schemathesis.checks.content_type_conformance, schemathesis.checks.response_schema_conformance]
EMU = create_app()
APP = front(EMU)


def _provision() -> dict[str, str]:
    async def go() -> dict[str, str]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=APP), base_url="http://e") as c:
            token = (await c.post("/auth/user", json={"email": DEFAULT_EMAIL, "password": DEFAULT_PASSWORD})).json()["token"]
            h = {"Authorization": f"Bearer {token}"}
            app_id = (await c.post("/applications", json={"name": "fuzz"}, headers=h)).json()["id"]
            dev = await c.post(f"/applications/{app_id}/devices", headers=h,
                               json={"name": "d", "attributes": [{"name": "temp", "dataType": "number"}]})
            return {"token": token, "applicationId": app_id, "deviceId": dev.json()["id"]}
    return asyncio.run(go())


WORLD = _provision()
schema = schemathesis.openapi.from_asgi("/_emulator/openapi.json", APP)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
SEEN: dict[str, int] = {}


def test_description_covers_every_operation() -> None:
    doc = build_openapi(EMU)
    ops = {op["operationId"] for methods in doc["paths"].values() for op in methods.values()}
    expected = set(FAMILIES) | set(SPECIAL) | {"auth.authenticateUser", "auth.authenticateDevice"}
    assert ops == expected, (expected - ops, ops - expected)
    for methods in doc["paths"].values():
        for op in methods.values():
            errors = [c for c in op["responses"] if c.startswith("4")]
            assert errors and all(op["responses"][c]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
                                  for c in errors)


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, phases=[Phase.generate],
          suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_fuzz(case: Any) -> None:
    op = case.operation.definition.raw.get("operationId", case.operation.label)
    n = SEEN[op] = SEEN.get(op, 0) + 1
    if n % 2 == 0 and not op.endswith(".delete"):  # half the cases reach handlers; deletes would end the world
        for name in ("applicationId", "deviceId"):
            if case.path_parameters and name in case.path_parameters:
                case.path_parameters[name] = WORLD[name]
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {WORLD['token']}"}
    before = EMU.unexpected_errors  # per case: one bug must not fail every later case
    response = case.call_and_validate(checks=CHECKS)
    assert response.status_code < 500 or response.status_code == 503, (op, response.status_code, response.text[:300])
    documented = case.operation.definition.raw["responses"]
    assert str(response.status_code) in documented, (op, response.status_code, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("type"), str) and isinstance(body.get("message"), str), body
        assert "Traceback" not in response.text
    assert EMU.unexpected_errors == before, "the top-level guard caught an emulator bug (see the log)"
