"""Fixtures for the emulator tests (helpers live in emulator_support.py)."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from emulator_support import Api, FakeClock, make_api


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api(clock: FakeClock) -> Iterator[Api]:
    a = make_api(clock)
    a.login()
    yield a
    assert a.app.unexpected_errors == 0, "the top-level guard caught an unexpected exception"
    a.close()


@pytest.fixture
def world(api: Api) -> dict[str, Any]:
    """One application with two devices, an all-devices key and a device token for the first."""
    app_id = api.application()
    d1 = api.device(app_id, "dev-1", tags=[{"key": "floor", "value": "8"}])
    d2 = api.device(app_id, "dev-2")
    key = api.key(app_id)
    return {"app": app_id, "d1": d1, "d2": d2, "key": key, "dtoken": api.device_token(d1, key)}
