"""Bad input: always the JSON error body with the right 4xx, never a 500 or a traceback."""

from __future__ import annotations

from typing import Any

import pytest
from emulator_support import Api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HEX = "0123456789abcdef01234567"


def _is_error(r: Any, status: int, type_: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"type", "message"} and body["type"] == type_, body
    assert "Traceback" not in r.text
    return body


def test_unknown_route_and_wrong_method(api: Api) -> None:
    _is_error(api.get("/nothing/here"), 404, "NotFound")
    _is_error(api.request("PUT", "/applications"), 405, "MethodNotAllowed")


def test_malformed_json_and_wrong_content_type(api: Api, world: dict[str, Any]) -> None:
    path = f"/applications/{world['app']}/devices/{world['d1']}/state"
    _is_error(api.post(path, content=b"{not json", headers={"content-type": "application/json"}), 400, "Validation")
    _is_error(api.post(path, content=b"data=1", headers={"content-type": "application/x-www-form-urlencoded"}), 400, "Validation")


@pytest.mark.parametrize("body,field", [
    ({"data": {"temp": {"nested": 1}}}, "data.temp"),
    ({"data": {"bad name": 1}}, "data"),
    ({"dta": {"temp": 1}}, "'data'"),
    ([{"data": {"temp": 1}}, {"data": []}], "[1].data"),
    ({"data": {"temp": 1}, "flowVersion": ""}, "flowVersion"),
    (None, "body"),
    ("text", "body"),
])
def test_state_schema_violation_names_the_field(api: Api, world: dict[str, Any], body: Any, field: str) -> None:
    r = api.post(f"/applications/{world['app']}/devices/{world['d1']}/state", json=body)
    assert field in _is_error(r, 400, "Validation")["message"]


def test_bad_params(api: Api, world: dict[str, Any]) -> None:
    a, d = world["app"], world["d1"]
    _is_error(api.get(f"/applications/{a}/devices", params={"sortField": "color"}), 400, "Validation")
    _is_error(api.get(f"/applications/{a}/devices", params={"page": "x"}), 400, "Validation")
    _is_error(api.get(f"/applications/{a}/devices", params={"query": "{not json"}), 400, "Validation")
    _is_error(api.get(f"/applications/{a}/devices", params={"query": '{"$bogus": 1}'}), 400, "Validation")
    _is_error(api.get(f"/applications/{a}/devices/{d}/state", params={"start": "yesterday-ish"}), 400, "Validation")
    _is_error(api.post(f"/applications/{a}/data/time-series-query", json={"aggregation": "AVG"}), 400, "Validation")
    _is_error(api.post(f"/applications/{a}/data/time-series-query", json={"resolution": -5}), 400, "Validation")
    _is_error(api.post(f"/applications/{a}/devices", json={"name": "x", "gatewayId": HEX}), 400, "Validation")
    _is_error(api.get(f"/applications/{a}/devices/{HEX}"), 404, "NotFound")
    _is_error(api.get(f"/applications/{a}/events/{HEX}"), 404, "NotFound")
    _is_error(api.get(f"/applications/{a}/keys/{HEX}"), 404, "NotFound")
    _is_error(api.get(f"/applications/{a}/tokens/{HEX}"), 404, "NotFound")
    _is_error(api.post(f"/applications/{a}/flows/not-hex/virtualButton", json={"key": "k"}), 404, "NotFound")


def test_body_over_the_cap_is_413(api: Api, world: dict[str, Any]) -> None:
    big = b"[" + b'{"data":{"temp":1}},' * 600_000 + b'{"data":{"temp":1}}]'
    r = api.post(f"/applications/{world['app']}/devices/{world['d1']}/state", content=big, headers={"content-type": "application/json"})
    _is_error(r, 413, "PayloadTooLarge")


def test_client_noise_is_tolerated(api: Api, world: dict[str, Any]) -> None:
    r = api.get(f"/applications/{world['app']}/devices?_actions=false&_links=true&_embedded=true&deviceClass[0]=standalone"
                f"&tagFilter[0][key]=floor", headers={"Accept-Version": "^1.31.0", "losantdomain": "x.example"})
    assert r.status_code == 200 and [d["id"] for d in r.json()["items"]] == [world["d1"]]


def test_clone_validation_is_422(api: Api, world: dict[str, Any]) -> None:
    r = api.post(f"/applications/{world['app']}/clone", json={"dryRun": "yes", "bogus": 1})
    body = _is_error(r, 422, "Validation")
    assert len(body["validationErrors"]) == 2
    assert api.post(f"/applications/{world['app']}/clone", json={"dryRun": True}).status_code == 200


PATHS = [
    ("POST", "/auth/user"), ("POST", "/auth/device"), ("POST", "/applications"), ("PATCH", "/applications/{a}"),
    ("POST", "/applications/{a}/devices"), ("PATCH", "/applications/{a}/devices/{d}"),
    ("POST", "/applications/{a}/devices/{d}/state"), ("POST", "/applications/{a}/devices/{d}/command"),
    ("POST", "/applications/{a}/devices/{d}/setConnectionStatus"), ("POST", "/applications/{a}/devices/command"),
    ("POST", "/applications/{a}/data/time-series-query"), ("POST", "/applications/{a}/data/last-value-query"),
    ("POST", "/applications/{a}/events"), ("POST", "/applications/{a}/keys"), ("PATCH", "/applications/{a}/keys/{k}"),
    ("POST", "/applications/{a}/tokens"), ("POST", "/applications/{a}/mqttPublishMessage"),
    ("POST", "/applications/{a}/flows/" + HEX + "/virtualButton"), ("POST", "/applications/{a}/files"),
    ("POST", "/applications/{a}/clone"), ("POST", "/applications/{a}/data-tables/" + HEX + "/rows/query"),
    ("GET", "/applications/{a}/devices"), ("GET", "/applications/{a}/events"), ("GET", "/applications/{a}/devices/{d}/state"),
    ("GET", "/applications/{a}/devices/compositeState"), ("GET", "/applications/{a}/keys"),
]
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["data", "time", "name", "deviceIds", "query", "start", "end", "aggregation",
                                         "$and", "level", "subject", "tags", "key", "status", "x"]), inner, max_size=4),
                    max_leaves=10)
PARAMS = st.dictionaries(st.sampled_from(["page", "perPage", "sortField", "sortDirection", "query", "filter", "limit",
                                          "start", "end", "tagFilter[0][key]", "deviceClass[0]", "duration", "since"]),
                         st.text(max_size=10), max_size=3)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(route=st.sampled_from(PATHS), body=JSON, params=PARAMS, raw=st.booleans())
def test_fuzzed_input_never_breaks_the_guard(api: Api, world: dict[str, Any], route: tuple[str, str], body: Any,
                                             params: dict[str, str], raw: bool) -> None:
    method, template = route
    path = template.format(a=world["app"], d=world["d1"], k=world["key"]["id"])
    kw: dict[str, Any] = {"params": params}
    if method != "GET":
        if raw:
            kw.update(content=str(body).encode(), headers={"content-type": "application/json"})
        else:
            kw["json"] = body
    r = api.request(method, path, **kw)
    assert r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert api.app.unexpected_errors == 0, (method, path, body, params)
