"""JSON bodies whose cost is not their size: many small containers, values or keys in 10 MiB.

10 MiB of ``[[],[],...]`` held the event loop 0.3-2 s (orjson building 3.4 million objects,
then the depth walk). Now the text is measured before parsing (``bounds.JsonMeasure``):
over ``MAX_JSON_ITEMS`` of structure is a 413 JSON error before orjson runs, large bodies
are measured in slices with the loop served in between, and the depth is read from the text.
Costs are in bench/hostile_bodies.py; here: the answers, the exactness of the measure, and
that legitimate bodies (punctuation inside strings, many values under the bound) still pass.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import orjson
import pytest
from emulator_support import Api

from harness.emulator.bounds import MAX_JSON_DEPTH, MAX_JSON_ITEMS, SLICE_BYTES, JsonMeasure, measure_json, measure_json_async
from harness.emulator.errors import ApiError

JSON = {"content-type": "application/json"}
STATE = "/applications/{a}/devices/{d}/state"
MiB = 2**20


def _array(unit: bytes, size: int) -> bytes:
    """A JSON array of ``unit`` repeated to about ``size`` bytes."""
    return b"[" + b",".join([unit] * (size // (len(unit) + 1))) + b"]"


SHAPES = {  # each about 10 MiB, each far over the bound
    "[[],[],...]": _array(b"[]", 10 * MiB - 64),
    "data.a [{},{},...]": b'{"data":{"a":' + _array(b"{}", 10 * MiB - 64) + b"}}",
    "[1,1,...]": _array(b"1", 10 * MiB - 64),
    "a million keys": b'{"data":{' + b",".join(b'"k%07d":1' % i for i in range(800_000)) + b"}}",
    "strings": _array(b'"a"', 10 * MiB - 64),
    "escaped strings": _array(b'"\\"\\\\"', 10 * MiB - 64),
}


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _items(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(1 + _items(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(map(_items, value))
    return 1


def _random_json(rng: random.Random, depth: int) -> Any:
    """Nested values whose strings and keys are full of the characters the measure must not mistake."""
    def text() -> str:
        return "".join(rng.choice('ab[]{},:"\\\u00e9\n /') for _ in range(rng.randint(0, 6)))

    if depth <= 0 or rng.random() < 0.3:
        return rng.choice([1, 2.5, True, None, text()])
    width = rng.randint(0, 4 if rng.random() < 0.15 else 1)
    if rng.random() < 0.5:
        return [_random_json(rng, depth - 1) for _ in range(width)]
    return {text(): _random_json(rng, depth - 1) for _ in range(width)}


def test_the_measure_is_exact_whole_and_in_pieces() -> None:
    """Depth and the count of values and keys exactly as a walk finds them, whatever the pieces (an
    escape, a string or an empty container cut at a piece's end included)."""
    rng = random.Random(12)
    for _ in range(3000):
        value = _random_json(rng, rng.randint(0, 40))
        raw = json.dumps(value, indent=rng.choice([None, 1])).encode() if rng.random() < 0.5 else orjson.dumps(value)
        limit = rng.randint(1, 40)
        whole = JsonMeasure(max_items=10**9)
        whole.feed(raw)
        cuts = sorted(rng.sample(range(len(raw) + 1), min(len(raw) + 1, rng.randint(1, 8))))
        pieces = JsonMeasure(max_items=10**9)
        for start, end in zip([0, *cuts], [*cuts, len(raw)]):
            pieces.feed(raw[start:end])
        assert whole.nests_deeper(limit) == pieces.nests_deeper(limit) == (_depth(value) > limit), raw[:200]
        assert pieces.items == whole.items == _items(value), raw[:200]
        assert _items(value) <= (len(orjson.dumps(value)) + 1) // 2  # so any body under 2 * MAX_JSON_ITEMS bytes passes


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_hostile_shape_is_refused_before_parsing(api: Api, world: dict[str, Any], shape: str) -> None:
    """On the send-state fast path, the general path (an event, a command) and a public route."""
    body = SHAPES[shape]
    assert len(body) < api.app.config.max_body_bytes
    a, d = world["app"], world["d1"]
    for path, token in ((STATE.format(a=a, d=d), "default"), (f"/applications/{a}/events", "default"),
                        (f"/applications/{a}/devices/{d}/command", "default"), ("/auth/user", None)):
        r = api.post(path, content=body, headers=JSON, token=token)
        assert r.status_code == 413, (shape, path, r.status_code, r.text[:200])
        assert r.json() == {"type": "PayloadTooLarge", "message": f"body: JSON holds more than {MAX_JSON_ITEMS} values and keys"}
    assert api.get(STATE.format(a=a, d=d), params={"limit": 10}).json() == []


def test_legitimate_large_bodies_pass(api: Api, world: dict[str, Any]) -> None:
    """Punctuation inside strings is not structure; many values under the bound are served."""
    a, d = world["app"], world["d1"]
    command = f"/applications/{a}/devices/{d}/command"
    commas = '[{"a": 1}, ' * (MAX_JSON_ITEMS // 2)  # 131,000 brackets, commas and colons, all in one string
    r = api.post(command, json={"name": "csv", "payload": {"text": commas, "quoted": '\\"[' * 1000}})
    assert r.status_code == 200, r.text[:200]
    assert api.get(command).json()[0]["payload"]["text"] == commas
    ten_mib = {"data": {"msg": "x" * (10 * MiB - 100)}}  # a string over 64 KiB: dropped, as documented
    assert api.post(STATE.format(a=a, d=d), json=ten_mib).status_code == 200
    names = {f"k{i:06d}": i for i in range(MAX_JSON_ITEMS // 2 - 8)}  # just under the bound; undeclared: dropped
    r = api.post(STATE.format(a=a, d=d), json={"data": {**names, "temp": 7}})
    assert r.status_code == 200, r.text[:200]
    assert api.get(STATE.format(a=a, d=d)).json()[0]["data"] == {"temp": 7}
    over = {f"k{i:06d}": i for i in range(MAX_JSON_ITEMS // 2 + 1)}
    assert api.post(STATE.format(a=a, d=d), json={"data": over}).status_code == 413


def test_depth_of_a_large_body_is_read_from_its_text(api: Api, world: dict[str, Any]) -> None:
    """Bodies past one slice: 32 levels stored, 33 refused naming the field; brackets in strings are not levels."""
    a, d = world["app"], world["d1"]
    command = f"/applications/{a}/devices/{d}/command"
    pad = "[" * (SLICE_BYTES + 1000)  # strings of brackets over more than one slice
    ok = b'{"name":"c","payload":' + b"[" * (MAX_JSON_DEPTH - 1) + orjson.dumps(pad) + b"]" * (MAX_JSON_DEPTH - 1) + b"}"
    assert len(ok) > MAX_JSON_ITEMS
    assert api.post(command, content=ok, headers=JSON).status_code == 200
    deep = b'{"name":"c","payload":' + b"[" * MAX_JSON_DEPTH + orjson.dumps(pad) + b"]" * MAX_JSON_DEPTH + b"}"
    r = api.post(command, content=deep, headers=JSON)
    assert r.status_code == 400 and r.json()["message"] == f"payload: JSON nests deeper than {MAX_JSON_DEPTH} levels", r.text
    r = api.post(STATE.format(a=a, d=d), content=b"[" + b'{"data":{"temp":1}},' * 10_000 + b"[" * 40 + b"]" * 40 + b"]",
                 headers=JSON)
    assert r.status_code == 400 and r.json()["message"].startswith("body[10000]: JSON nests deeper"), r.text[:200]


def test_a_large_body_is_measured_with_the_loop_served_between_slices() -> None:
    """Another task runs between the slices of one measurement (no single long stall)."""
    body = b'{"a":' + _array(b'"' + b"x," * 100 + b'"', 8 * SLICE_BYTES) + b"}"
    turns = 0

    async def other() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    async def run() -> bool:
        task = asyncio.get_running_loop().create_task(other())
        await asyncio.sleep(0)
        try:
            return await measure_json_async(body)
        finally:
            task.cancel()

    assert asyncio.run(run()) is False
    assert turns >= len(body) // SLICE_BYTES


def test_small_bodies_cost_two_byte_counts() -> None:
    """The common body is not split, translated or walked: within the bound by its size, too few brackets to nest."""
    assert measure_json(b'{"data":{"temp":21.5,"hum":40,"msg":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}}') is False
    densest = _array(b"1", 2 * MAX_JSON_ITEMS - 2)  # 128 KiB of the densest shape: 65,536 values, within
    assert len(densest) < 2 * MAX_JSON_ITEMS and measure_json(densest) is False
    measure = JsonMeasure()
    measure.feed(densest)
    assert measure.items == MAX_JSON_ITEMS
    with pytest.raises(ApiError) as refused:
        measure_json(_array(b"1", 2 * MAX_JSON_ITEMS + 8))
    assert refused.value.status == 413
