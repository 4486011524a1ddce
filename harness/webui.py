"""A live "Throttles" tab in the Locust web UI: limits, busiest keys, 429s, lateness, p99.

Locust 2.x draws extra tabs from ``web_ui.template_args``: ``extendedTabs`` names the
tab, ``extendedTables`` gives its columns, and the rows arrive in the
``extended_stats`` field of the ``/stats/requests`` JSON that the page already polls
every 2 s while a test runs (Locust's ``examples/extend_web_ui.py``). So the tab is a
real tab that refreshes with the rest of the UI, and needs no script of ours.
Those tabs can only hold a table, so ``install`` also serves:

- ``/throttles/data``: the snapshot as JSON (for scripts, and the page below);
- ``/throttles``: a self-contained page that polls it every second and draws, per
  limit, bars of calls per window for the busiest keys against the limit line.

Usage (at Locust's ``init`` event, before the web server answers its first request,
since Flask refuses new routes after that)::

    from harness import webui
    webui.install(environment, snapshot=ctx.throttle_snapshot)

``snapshot()`` returns ``{"limits": [{"name", "count", "window", "throttled",
"busiest": [{"key", "calls"}]}], "lateness_p99_ms", "corrected_p99_ms": {op: ms},
"throttled_total", "updated"}``; it is called on the web server's greenlet, so it must
be quick and must not block.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

TAB_KEY = "throttles"
TAB_TITLE = "Throttles"
LATENESS_SATURATED_MS = 50.0
#: Column keys are single lowercase words: the UI camel-cases JSON keys, so these survive unchanged.
#: No column is called "name": the UI sorts extended tables by "name" by default, and our
#: rows are in a meaningful order (each limit, then its busiest keys, then run-wide figures).
COLUMNS = (
    {"key": "what", "title": "Limit / figure"},
    {"key": "key", "title": "Key"},
    {"key": "observed", "title": "Observed"},
    {"key": "limit", "title": "Documented"},
    {"key": "use", "title": "Use"},
    {"key": "throttled", "title": "429s"},
)
Snapshot = Callable[[], dict[str, Any]]


def _num(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f"{f:,.0f}" if f.is_integer() else f"{f:,.{digits}f}"


def safe_snapshot(snapshot: Snapshot) -> dict[str, Any]:
    """Call the provider; a failing provider gives an ``error`` field, never a broken UI."""
    try:
        data = snapshot()
        if not isinstance(data, dict):
            raise TypeError(f"snapshot returned {type(data).__name__}, expected dict")
        return data
    except Exception as exc:  # the UI must keep working whatever the provider does
        logger.warning("throttle snapshot failed: %s", exc)
        return {"limits": [], "error": f"{type(exc).__name__}: {exc}", "updated": time.time()}


def rows(snap: dict[str, Any]) -> list[dict[str, str]]:
    """The tab's table rows: one per limit, one per busy key under it, then the run-wide figures.

    >>> r = rows({"limits": [{"name": "device.sendState", "count": 30, "window": 15, "throttled": 2,
    ...           "busiest": [{"key": "dev-1", "calls": 29}]}], "lateness_p99_ms": 1.5,
    ...           "corrected_p99_ms": {"device.sendState": 12.0}, "throttled_total": 2, "updated": 0})
    >>> [(x["what"], x["key"], x["observed"], x["use"]) for x in r][:2]
    [('device.sendState', 'busiest: dev-1', '29 / 15 s', '97%'), ('  ↳ device.sendState', 'dev-1', '29 / 15 s', '97%')]
    """
    out: list[dict[str, str]] = []
    for lim in snap.get("limits") or []:
        count, window = lim.get("count") or 0, lim.get("window") or 0
        busiest = sorted(lim.get("busiest") or [], key=lambda b: -(b.get("calls") or 0))
        documented = f"{_num(count)} / {_num(window, 2)} s"
        top = busiest[0] if busiest else {"key": "–", "calls": 0}

        def use(calls: Any) -> str:
            return f"{100.0 * float(calls or 0) / count:.0f}%" if count else "–"

        out.append({"what": str(lim.get("name", "?")), "key": f"busiest: {top.get('key')}",
                    "observed": f"{_num(top.get('calls'))} / {_num(window, 2)} s", "limit": documented,
                    "use": use(top.get("calls")), "throttled": _num(lim.get("throttled", 0))})
        hist = lim.get("history")
        if isinstance(hist, dict) and hist.get("calls"):
            minutes = len(hist["calls"]) * float(hist.get("step") or 0) / 60
            out.append({"what": f"  ↳ last {minutes:g} min (calls per {_num(hist.get('step'))} s)",
                        "key": sparkline(hist["calls"]), "observed": f"now {_num(hist['calls'][-1])}",
                        "limit": "", "use": "", "throttled": sparkline(hist.get("throttled") or [])})
        for b in busiest:
            named = f"{b['name']} ({b.get('key')})" if b.get("name") else str(b.get("key"))
            out.append({"what": f"  ↳ {lim.get('name', '?')}", "key": named,
                        "observed": f"{_num(b.get('calls'))} / {_num(window, 2)} s", "limit": documented,
                        "use": use(b.get("calls")), "throttled": ""})
    late = snap.get("lateness_p99_ms")
    saturated = late is not None and late > LATENESS_SATURATED_MS
    out.append({"what": "scheduler lateness p99", "key": "", "observed": f"{_num(late, 2)} ms",
                "limit": f"< {LATENESS_SATURATED_MS:g} ms", "use": "SATURATED" if saturated else "ok", "throttled": ""})
    out.append({"what": "429 answers (all limits)", "key": "", "observed": _num(snap.get("throttled_total", 0)),
                "limit": "", "use": "", "throttled": _num(snap.get("throttled_total", 0))})
    for op, p99 in sorted((snap.get("corrected_p99_ms") or {}).items()):
        out.append({"what": "corrected p99 (from planned send)", "key": str(op), "observed": f"{_num(p99, 2)} ms",
                    "limit": "", "use": "", "throttled": ""})
    if snap.get("error"):
        out.append({"what": "snapshot error", "key": "", "observed": str(snap["error"]), "limit": "", "use": "",
                    "throttled": ""})
    last = snap.get("last_run")
    if isinstance(last, dict):  # the run that ended last: its verdict and where its report is
        out.insert(0, {"what": f"last run: {last.get('verdict', '?')}", "key": str(last.get("run_id", "")),
                       "observed": str(last.get("criteria", "")), "limit": str(last.get("report", "")), "use": "",
                       "throttled": ""})
    updated = snap.get("updated")
    if updated:
        out.append({"what": "updated", "key": "", "observed": time.strftime("%H:%M:%S", time.localtime(float(updated))),
                    "limit": "", "use": "", "throttled": ""})
    return out


BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[int]) -> str:
    """Counts as a row of bars, oldest first, scaled to the largest (empty for none).

    >>> sparkline([0, 1, 2, 4])
    ' ▂▄█'
    """
    top = max(values, default=0)
    if not top:
        return ""
    return "".join(" " if v <= 0 else BARS[min(len(BARS) - 1, max(0, round(v / top * len(BARS)) - 1))] for v in values)


def _add_once(args: dict[str, Any], field: str, item: dict[str, Any]) -> None:
    items = [x for x in args.get(field) or [] if x.get("key", x.get("href")) != item.get("key", item.get("href"))]
    args[field] = items + [item]


def install(environment: Any, snapshot: Snapshot) -> None:
    """Add the Throttles tab, ``/throttles`` and ``/throttles/data`` to the environment's web UI.

    A no-op when there is no web UI (headless runs). Calling it twice replaces nothing
    and adds nothing twice.
    """
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:
        return
    from flask import Response, jsonify, request

    args = web_ui.template_args
    _add_once(args, "extendedTabs", {"title": TAB_TITLE, "key": TAB_KEY})
    _add_once(args, "extendedTables", {"key": TAB_KEY, "structure": [dict(c) for c in COLUMNS]})
    _add_once(args, "extendedCsvFiles", {"href": "./throttles", "title": "Open the live throttles chart"})
    app = web_ui.app
    if getattr(app, "_losant_throttles_installed", False):
        app._losant_throttles_snapshot = snapshot
        return
    app._losant_throttles_installed = True
    app._losant_throttles_snapshot = snapshot

    def current() -> dict[str, Any]:
        return safe_snapshot(app._losant_throttles_snapshot)

    @app.after_request
    def _extend_stats(response: Any) -> Any:
        if not request.path.endswith("/stats/requests") or response.status_code != 200:
            return response
        try:
            data = json.loads(response.get_data(as_text=True))
        except ValueError:
            return response
        extended = [x for x in data.get("extended_stats") or [] if x.get("key") != TAB_KEY]
        data["extended_stats"] = extended + [{"key": TAB_KEY, "data": rows(current())}]
        response.set_data(json.dumps(data))
        return response

    def data_route() -> Any:
        return jsonify(current())

    def page_route() -> Any:
        return Response(PAGE, mimetype="text/html")

    app.add_url_rule("/throttles/data", "losant_throttles_data", web_ui.auth_required_if_enabled(data_route))
    app.add_url_rule("/throttles", "losant_throttles_page", web_ui.auth_required_if_enabled(page_route))


def install_run_rules(environment: Any, check_swarm: Callable[[dict[str, str]], str | None],
                      stopped_early: Callable[[], None], reports_dir: Callable[[], Path]) -> None:
    """What the form asks is honoured or refused where the user sees it, and a finished run is one click away.

    - ``check_swarm(form)`` sees each start request first: a problem it returns is the
      request's answer (``success: false``), which the web UI shows, instead of a run that
      silently does something else;
    - ``stopped_early()`` is called when the Stop button ends a run before the run time the
      form set (Locust's run-time timer is still pending), so it is judged incomplete;
    - ``/reports/<run-id>/<file>`` serves the run folders (the report is self-contained).
    """
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:
        return
    from flask import abort, jsonify, request, send_from_directory

    app = web_ui.app
    if getattr(app, "_losant_rules_installed", False):
        return
    app._losant_rules_installed = True

    @app.before_request
    def _rules() -> Any:
        if request.method != "POST":
            return None
        if request.path.endswith("/swarm"):
            problem = check_swarm({k: v for k, v in request.form.items()})
            if problem:
                logger.warning("%s", problem)
                return jsonify({"success": False, "message": problem, "host": environment.host})
        elif request.path.endswith("/stop"):
            timer = getattr(web_ui, "_run_time_greenlet", None)  # Locust's own run-time timer
            if timer is not None and not timer.dead:
                stopped_early()
        return None

    def report_route(run_id: str, name: str) -> Any:
        folder = (reports_dir() / run_id).resolve()
        if folder.parent != reports_dir().resolve() or not folder.is_dir():
            abort(404)
        return send_from_directory(folder, name)

    app.add_url_rule("/reports/<run_id>/<path:name>", "losant_reports", web_ui.auth_required_if_enabled(report_route))


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Throttles · losant-load</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:0;background:#f8fafc;color:#1f2937}
header{background:#0f172a;color:#f8fafc;padding:14px 24px}h1{font-size:18px;margin:0}main{padding:12px 24px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:8px 0}.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;
padding:8px 14px;min-width:160px}.card b{display:block;font-size:11px;color:#6b7280;text-transform:uppercase}
.card span{font-size:18px;font-variant-numeric:tabular-nums}.bad{color:#b91c1c}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px 16px;margin:12px 0}
h2{font-size:15px;margin:0 0 8px}.bar{position:relative;height:18px;margin:3px 0;background:#f1f5f9;border-radius:3px}
.fill{position:absolute;left:0;top:0;bottom:0;background:#2563eb;border-radius:3px}.fill.over{background:#ef4444}
.line{position:absolute;top:-3px;bottom:-3px;width:2px;background:#ef4444}
.lab{position:absolute;left:6px;top:0;font-size:12px;color:#0f172a;white-space:nowrap}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #e5e7eb;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#6b7280}
</style></head><body><header><h1>Throttles (live)</h1></header><main>
<div class="cards"><div class="card"><b>429 answers</b><span id="t429">–</span></div>
<div class="card"><b>lateness p99</b><span id="late">–</span></div>
<div class="card"><b>updated</b><span id="upd">–</span></div></div>
<div id="limits"></div><section><h2>Corrected p99 (from planned send) per operation</h2>
<table><tbody id="p99"></tbody></table></section><p class="muted" id="err"></p></main>
<script>
function el(tag, cls, text){const e=document.createElement(tag);if(cls)e.className=cls;if(text!==undefined)e.textContent=text;return e}
function fmt(v,d){return (v===null||v===undefined)?"–":Number(v).toLocaleString(undefined,{maximumFractionDigits:d})}
async function tick(){
  try{
    const r=await fetch("./throttles/data",{cache:"no-store"});const s=await r.json();
    document.getElementById("t429").textContent=fmt(s.throttled_total,0);
    const late=document.getElementById("late");late.textContent=fmt(s.lateness_p99_ms,2)+" ms";
    late.className=(s.lateness_p99_ms>50)?"bad":"";
    document.getElementById("upd").textContent=s.updated?new Date(s.updated*1000).toLocaleTimeString():"–";
    const box=document.getElementById("limits");box.replaceChildren();
    for(const lim of (s.limits||[])){
      const sec=el("section");sec.append(el("h2",null,lim.name+": "+fmt(lim.count,0)+" per "+fmt(lim.window,2)+" s · 429s "+fmt(lim.throttled,0)));
      const busiest=(lim.busiest||[]).slice().sort((a,b)=>b.calls-a.calls);
      const top=Math.max(lim.count*1.25,...busiest.map(b=>b.calls),1);
      for(const b of busiest){
        const bar=el("div","bar");const f=el("div","fill"+(b.calls>lim.count?" over":""));
        f.style.width=(100*b.calls/top)+"%";const ln=el("div","line");ln.style.left=(100*lim.count/top)+"%";
        bar.append(f,ln,el("span","lab",b.key+": "+fmt(b.calls,0)));sec.append(bar);
      }
      box.append(sec);
    }
    const tb=document.getElementById("p99");tb.replaceChildren();
    for(const [op,v] of Object.entries(s.corrected_p99_ms||{})){const tr=el("tr");tr.append(el("td",null,op),el("td","n",fmt(v,2)+" ms"));tb.append(tr)}
    document.getElementById("err").textContent=s.error||"";
  }catch(e){document.getElementById("err").textContent="update failed: "+e}
}
tick();setInterval(tick,1000);
</script></body></html>
"""
