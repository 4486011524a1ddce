"""Drive headless Chromium through Playwright in a separate process; print one JSON result.

Why a separate process: the test process may have imported Locust, which
monkey-patches the standard library for gevent, and Playwright's sync API runs its
own event loop and driver subprocess, which does not mix with that. The tests run
this file with ``sys.executable`` (the web UI test through gevent's cooperative
``subprocess``, so the Locust web server keeps serving meanwhile).

    python browser_check.py report FILE.html SHOT.png
    python browser_check.py webui URL SHOT.png
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def check_report(page: Any, url: str, shot: str) -> dict[str, Any]:
    page.goto(url)
    page.wait_for_load_state("load")
    charts = page.eval_on_selector_all(
        "img.chart, svg",
        "els => els.map(e => {const r = e.getBoundingClientRect();"
        " return {tag: e.tagName, w: r.width, h: r.height, natural: e.naturalWidth || 0, complete: e.complete}})")
    sections = page.eval_on_selector_all("section", "els => els.map(e => e.id)")
    page.screenshot(path=shot, full_page=True)
    return {"charts": charts, "sections": sections, "title": page.title()}


def check_webui(page: Any, url: str, shot: str) -> dict[str, Any]:
    page.goto(url)
    page.get_by_role("tab", name="Throttles").click()
    page.wait_for_selector("text=device.sendState", timeout=15000)

    def observed() -> list[str]:
        return page.eval_on_selector_all("table tbody tr", "rows => rows.map(r => r.innerText)")

    first = observed()
    deadline = time.time() + 15
    later = first
    while time.time() < deadline:
        page.wait_for_timeout(500)
        later = observed()
        if later != first:
            break
    page.screenshot(path=shot, full_page=True)
    standalone = url.rstrip("/") + "/throttles"
    page.goto(standalone)
    page.wait_for_selector("section .bar", timeout=10000)
    bars = page.eval_on_selector_all(".bar .lab", "els => els.map(e => e.textContent)")
    t429_first = page.inner_text("#t429")
    page.wait_for_timeout(2500)
    t429_later = page.inner_text("#t429")
    page.screenshot(path=shot.replace(".png", "-page.png"), full_page=True)
    return {"first": first, "later": later, "bars": bars, "t429": [t429_first, t429_later]}


def main(argv: list[str]) -> int:
    mode, target, shot = argv
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(f"{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
        result = check_report(page, target, shot) if mode == "report" else check_webui(page, target, shot)
        browser.close()
    result["console_errors"] = errors
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
