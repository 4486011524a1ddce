"""A Locust web UI with the Throttles panel and a changing snapshot, in its own process.

Locust monkey-patches the standard library when imported; doing that inside pytest
(after ssl and threads are in use) breaks other tests, so the UI runs here instead.
Usage: python locust_ui_server.py PORT  (prints "ready" once serving; stops on stdin EOF).
"""

import sys

import gevent
from locust import User, constant, task
from locust.env import Environment

from harness import webui


def snap(n: int) -> dict:
    return {"limits": [{"name": "device.sendState", "count": 30, "window": 15.0, "throttled": n,
                        "busiest": [{"key": "<b>dev-1</b>", "calls": 20 + n % 10}, {"key": "dev-2", "calls": 12}]}],
            "lateness_p99_ms": 1.0 + n, "corrected_p99_ms": {"device.sendState": 10.0 + n},
            "throttled_total": n, "updated": 1_800_000_000.0 + n}


class Idle(User):
    wait_time = constant(1)

    @task
    def nothing(self) -> None:
        pass


def main() -> None:
    port = int(sys.argv[1])
    sys.argv = ["locust"]  # the UI re-parses argv for its extra options on page loads
    calls = {"n": 0}

    def provider() -> dict:
        calls["n"] += 1
        return snap(calls["n"])

    env = Environment(user_classes=[Idle])
    runner = env.create_local_runner()
    ui = env.create_web_ui("127.0.0.1", port, delayed_start=True)
    webui.install(env, provider)
    webui.install(env, provider)  # idempotent: still one tab
    ui.start()
    runner.start(1, spawn_rate=10)
    gevent.sleep(0.3)
    print("ready", flush=True)
    from gevent.os import make_nonblocking, nb_read

    make_nonblocking(sys.stdin.fileno())
    while nb_read(sys.stdin.fileno(), 1024):
        pass
    runner.quit()
    ui.stop()


if __name__ == "__main__":
    main()
