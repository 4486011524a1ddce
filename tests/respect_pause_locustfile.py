"""A locustfile for tests/test_respect_pause_e2e.py: the harness's own users, plus a test-only
greenlet that, at set times after the run starts, pauses the target through the emulator's admin
endpoint (``PUT /_emulator/faults {"pause_s": ...}``) or stalls this generator with a *blocking*
sleep (Python's own ``time.sleep``, not gevent's patched one: no greenlet runs meanwhile).

The plan comes from ``RESPECT_PAUSE_PLAN`` (JSON: ``[{"at": 8, "pause_s": 2}, {"at": 14,
"stall_s": 2}]``) and the emulator's URL from ``RESPECT_PAUSE_URL``; what was done, and when,
is written to ``RESPECT_PAUSE_LOG`` (JSON lines) for the test to check against the samples.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request

import gevent
from gevent import monkey
from locust import events

from harness.locust_entry import Device, Fleet, Gateway, Operator  # noqa: F401

_blocking_sleep = monkey.get_original("time", "sleep")


def _put_pause(url: str, seconds: float) -> None:
    req = urllib.request.Request(url + "/_emulator/faults", data=json.dumps({"pause_s": seconds}).encode(),
                                 method="PUT", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def _drive(plan: list[dict[str, float]], url: str, log_path: str) -> None:
    t0 = time.time()
    with open(log_path, "a") as log:
        for step in plan:
            gevent.sleep(max(0.0, t0 + step["at"] - time.time()))
            start = time.time()
            if "pause_s" in step:
                _put_pause(url, step["pause_s"])
            else:
                _blocking_sleep(step["stall_s"])
            log.write(json.dumps({**step, "start": start, "end": time.time()}) + "\n")
            log.flush()


@events.test_start.add_listener
def _schedule(environment, **_kwargs) -> None:  # type: ignore[no-untyped-def]
    plan = json.loads(os.environ.get("RESPECT_PAUSE_PLAN", "[]"))
    if plan:
        gevent.spawn(_drive, plan, os.environ["RESPECT_PAUSE_URL"], os.environ["RESPECT_PAUSE_LOG"])
