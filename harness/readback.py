"""Read accepted states back after a run, so a lost write is caught, not assumed away.

For the sampled devices, every state the target answered with success carried an
explicit time (ms); here the harness asks the target's state history for exactly that
time range and hands both lists to the pure comparison in ``harness.analysis``.
"""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError
from harness.fleet import Fleet
from harness.provision import Api

MAX_PAGE = 10_000


def fetch_state_times(api: Api, app_id: str, device_id: str, start_ms: int, end_ms: int) -> list[int]:
    """Every state time of a device in [start_ms, end_ms], paging backwards by time."""
    from harness.emulator.timeparse import parse_input_time  # ISO → ms, same rules as the emulator

    times: list[int] = []
    end = end_ms
    while True:
        batch = api.call("GET", f"/applications/{app_id}/devices/{device_id}/state",
                         f"reading back states of {device_id}",
                         params={"start": start_ms, "end": end, "limit": MAX_PAGE, "sortDirection": "desc"})
        got = [parse_input_time(item["time"], 0) for item in batch or []]
        got = [t for t in got if t is not None]
        times.extend(got)
        if len(got) < MAX_PAGE or not got:
            return times
        end = min(got) - 1


def read_back(base_url: str, fleet: Fleet, accepted: dict[str, list[int]]) -> dict[str, Any]:
    """Compare what the target accepted with what it returns; the result goes to integrity.json."""
    from harness.analysis.integrity import integrity_block

    sent = {d: sorted(set(ts)) for d, ts in accepted.items() if ts}
    if not sent:
        return {"checked": False, "reason": "no accepted states were logged for the sampled devices"}
    api = Api(base_url, token=str(fleet.user_token))
    try:
        read = {d: fetch_state_times(api, fleet.application_id, d, ts[0], ts[-1]) for d, ts in sent.items()}
    except HarnessError as exc:
        return {"checked": False, "reason": f"read-back failed: {exc}"}
    finally:
        api.close()
    return integrity_block(sent, read)
