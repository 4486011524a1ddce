"""Bare Locust baseline for bench/generator.py: FastHttpUser posting the same state, no scheduler, no recorder.

BENCH_NO_COOKIES=1 drops the cookie jar, as the harness's users do, so that variant
isolates the cost of the harness's own per-send Python."""

import json
import os
import random

from locust import FastHttpUser, task

TARGETS = json.loads(open(os.environ["BENCH_TARGETS"]).read())
BODY = b'{"time": 1800000000000, "data": {"v": 0.5}}'


class Bare(FastHttpUser):
    def on_start(self) -> None:
        if os.environ.get("BENCH_NO_COOKIES"):  # as the harness does: the Losant API sets no cookies
            self.client.cookiejar = self.client.client.cookiejar = None
        self.path, token = random.choice(TARGETS)
        self.headers = {"Content-Type": "application/json", "Accept": "application/json",
                        "Authorization": "Bearer " + token}

    @task
    def send(self) -> None:
        self.client.request("POST", self.path, name="device.sendState", data=BODY, headers=self.headers)
