"""Inputs the fuzzer found that once reached the top-level guard: each must be a clean JSON 4xx."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize("body", [
    {"end": 3600, "resolution": 2.26e16, "duration": 6395765552283120.0},  # window before year 1
    {"start": 1, "end": 400_000_000_000_000},  # after year 9999
    {"start": 2_000_000_000_000, "end": 1_000_000_000_000},  # starts after it ends
])
def test_time_series_window_outside_the_calendar_is_a_validation_error(api: Any, body: dict) -> None:
    app_id = api.application()
    r = api.post(f"/applications/{app_id}/data/time-series-query", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "Validation" and r.json()["message"].startswith(("start", "end"))
    assert api.app.unexpected_errors == 0
