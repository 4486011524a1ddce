"""The live Throttles tab: rows from a snapshot (pure), and the real Locust web UI in Chromium."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
from pathlib import Path

import pytest

from harness import webui

HELPER = Path(__file__).with_name("browser_check.py")
SERVER = Path(__file__).with_name("locust_ui_server.py")
CHROMIUM = "/usr/bin/chromium"
needs_browser = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),  # in CI a missing browser is a failure
    reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium) to run browser tests")


def snap(n: int) -> dict:
    return {"limits": [{"name": "device.sendState", "count": 30, "window": 15.0, "throttled": n,
                        "busiest": [{"key": "<b>dev-1</b>", "calls": 20 + n % 10}, {"key": "dev-2", "calls": 12}]}],
            "lateness_p99_ms": 1.0 + n, "corrected_p99_ms": {"device.sendState": 10.0 + n},
            "throttled_total": n, "updated": 1_800_000_000.0 + n}


def test_rows_show_limit_keys_and_figures() -> None:
    r = webui.rows(snap(3))
    assert r[0] == {"what": "device.sendState", "key": "busiest: <b>dev-1</b>", "observed": "23 / 15 s",
                    "limit": "30 / 15 s", "use": "77%", "throttled": "3"}
    assert [x["key"] for x in r[1:3]] == ["<b>dev-1</b>", "dev-2"]
    names = [x["what"] for x in r]
    assert "scheduler lateness p99" in names and "corrected p99 (from planned send)" in names
    late = next(x for x in r if x["what"] == "scheduler lateness p99")
    assert late["observed"] == "4 ms" and late["use"] == "ok"
    assert next(x for x in webui.rows(snap(60)) if x["what"] == "scheduler lateness p99")["use"] == "SATURATED"


def test_failing_provider_gives_an_error_row_not_an_exception() -> None:
    def broken() -> dict:
        raise RuntimeError("boom")

    data = webui.safe_snapshot(broken)
    assert "boom" in data["error"]
    assert any(x["what"] == "snapshot error" for x in webui.rows(data))


def test_install_without_web_ui_is_a_no_op() -> None:
    class Env:
        web_ui = None

    webui.install(Env(), lambda: snap(0))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def locust_ui():
    """A local runner with one idle user, the web UI on a free loopback port, our panel installed,
    in its own process (see locust_ui_server.py for why)."""
    import subprocess

    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(SERVER), str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield f"http://127.0.0.1:{port}"
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _get_json(url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_data_route_and_stats_extension(locust_ui) -> None:
    import urllib.request

    base = locust_ui
    data = _get_json(base + "/throttles/data")
    assert data["limits"][0]["name"] == "device.sendState"
    stats = _get_json(base + "/stats/requests")
    ext = {x["key"]: x["data"] for x in stats["extended_stats"]}
    assert ext["throttles"][0]["what"] == "device.sendState"
    with urllib.request.urlopen(base + "/", timeout=10) as resp:
        page = resp.read().decode()
    assert page.count('"extendedTabs": [{"key": "throttles", "title": "Throttles"}]') == 1, "installed twice: still one tab"
    with urllib.request.urlopen(base + "/throttles", timeout=10) as resp:
        assert "<title>" in resp.read().decode()
    later = _get_json(base + "/throttles/data")
    assert later["throttled_total"] > data["throttled_total"], "each poll asks the provider afresh"


@needs_browser
def test_throttles_tab_updates_live_in_chromium(locust_ui, tmp_path: Path) -> None:
    assert importlib.util.find_spec("playwright"), "install the Python package: pip install playwright (no browser download)"
    import subprocess as gsub

    base = locust_ui
    shot = tmp_path / "throttles-tab.png"
    proc = gsub.run([sys.executable, str(HELPER), "webui", base, str(shot)], capture_output=True, text=True,
                    timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert any("device.sendState" in r and "/ 15 s" in r for r in result["first"])
    assert any("<b>dev-1</b>" in r for r in result["first"]), "a key name must show as text, not markup"
    assert result["later"] != result["first"], "the tab did not refresh"
    assert any(r.startswith("scheduler lateness p99") for r in result["later"])
    assert result["later"][0].startswith("device.sendState"), "rows must keep their order (limit, then its keys)"
    assert "dev-1" in result["later"][1]
    assert result["bars"] and result["t429"][0] != result["t429"][1], "the standalone page did not refresh"
    assert result["console_errors"] == []
    assert shot.exists() and shot.stat().st_size > 10_000
    assert _get_json(base + "/throttles/data")["throttled_total"] >= 3, "the provider was polled live"
