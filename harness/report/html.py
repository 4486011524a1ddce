"""Page assembly: one self-contained HTML file, sections in the order a reader asks.

Verdict first (did it pass, against what, how big), then load (throughput, devices),
then latency (over time, distribution, per-operation table), then the questions that
decide whether the latency figures can be trusted (throttles, scheduler health,
errors, integrity). Styles are inline in one ``<style>`` block and charts are data
URIs, so the file opens from disk with no network; there is no script at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness import __version__
from harness.report import charts, mqtt_section, tables
from harness.report.figures import Figures, accepted_windows
from harness.report.rundata import RunData, _find, utc
from harness.report.tables import esc

LATENESS_SATURATED_S = 0.050
CPU_SATURATED_PERCENT = 90.0

CSS = """
:root{--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--card:#fff;--pass:#047857;--passbg:#d1fae5;
--fail:#b91c1c;--failbg:#fee2e2;--warn:#b45309;--warnbg:#fef3c7;--accent:#2563eb}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header.top{background:#0f172a;color:#f8fafc;padding:22px 32px 18px}
header.top h1{margin:0;font-size:22px;font-weight:650}header.top .sub{color:#94a3b8;margin-top:4px}
nav{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid var(--line);padding:8px 32px;
display:flex;gap:18px;flex-wrap:wrap}nav a{color:var(--muted);text-decoration:none;font-size:13px}
nav a:hover{color:var(--accent)}main{max-width:1180px;margin:0 auto;padding:20px 24px 60px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 22px;margin:18px 0}
h2{font-size:17px;margin:0 0 12px}h3{font-size:14px;margin:18px 0 8px}
.verdict{display:inline-block;font-weight:700;font-size:20px;padding:6px 16px;border-radius:8px;margin-right:12px}
.verdict.pass{background:var(--passbg);color:var(--pass)}.verdict.fail{background:var(--failbg);color:var(--fail)}
.verdict.na{background:#e5e7eb;color:var(--muted)}.topbadge{display:inline-block;font-size:15px;padding:3px 10px;border-radius:6px;margin-right:8px;vertical-align:3px}
.topbadge.pass{background:var(--passbg);color:var(--pass)}.topbadge.fail{background:#fee2e2;color:#b91c1c}
.topbadge.na{background:#e5e7eb;color:var(--muted)}
.meta{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:10px;margin:16px 0}
.meta div{background:var(--bg);border-radius:8px;padding:8px 12px}.meta b{display:block;font-size:11px;
color:var(--muted);font-weight:600;text-transform:uppercase;letter-spacing:.04em}.meta span{font-size:15px;
font-variant-numeric:tabular-nums;word-break:break-all}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:13px}
caption{text-align:left;font-weight:600;padding:4px 0;color:var(--muted)}
th{text-align:left;font-weight:600;color:var(--muted);border-bottom:2px solid var(--line);padding:6px 8px;
white-space:nowrap}td{border-bottom:1px solid var(--line);padding:5px 8px}tbody tr:nth-child(even){background:#fafafa}
.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.op{font-family:ui-monospace,Menlo,Consolas,monospace;
font-size:12px}tr.total td{font-weight:650;border-top:2px solid var(--line)}
.badge{font-weight:700;text-align:center;border-radius:6px}.badge.pass{color:var(--pass);background:var(--passbg)}
.badge.fail{color:var(--fail);background:var(--failbg)}.badge.na{color:var(--muted)}
td.bad,.bad{color:var(--fail)}td.warn{color:var(--warn)}.ok{color:var(--pass)}.muted{color:var(--muted)}
.alert{border-radius:8px;padding:10px 14px;margin:10px 0}.alert.fail{background:var(--failbg);color:var(--fail)}
.alert.warn{background:var(--warnbg);color:var(--warn)}.alert.ok{background:var(--passbg);color:var(--pass)}
img.chart{display:block;width:100%;height:auto;margin:8px 0}
.legend-note{font-size:12px;color:var(--muted)}footer{color:var(--muted);font-size:12px;text-align:center}
"""



def _dict(value: Any) -> dict[str, Any]:
    """A summary.json section, or an empty one when absent or malformed (old run folders)."""
    return value if isinstance(value, dict) else {}

def _meta(items: list[tuple[str, str]]) -> str:
    return '<div class="meta">' + "".join(f"<div><b>{esc(k)}</b><span>{esc(v)}</span></div>" for k, v in items) + "</div>"


def _img(uri: str, alt: str) -> str:
    return f'<img class="chart" src="{uri}" alt="{esc(alt)}">'


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{esc(title)}</h2>{body}</section>'


def saturation(run: RunData, fig: Figures) -> list[str]:
    """Reasons to distrust the latency figures (the generator, not the target, was the bottleneck)."""
    out = []
    p99 = fig.lateness.get("p99")
    if p99 is not None and p99 > LATENESS_SATURATED_S:
        out.append(f"scheduler lateness p99 is {tables.ms(p99)} ms (> {LATENESS_SATURATED_S * 1000:g} ms)")
    cpu = run.cpu_percent
    if cpu is not None and cpu > CPU_SATURATED_PERCENT:
        out.append(f"generator CPU reached {cpu:.0f}% (> {CPU_SATURATED_PERCENT:g}%)")
    return out


def header(run: RunData, fig: Figures, saturated: list[str]) -> str:
    passed = run.passed
    cls, word = ("na", "NOT JUDGED") if passed is None else (("pass", "PASS") if passed else ("fail", "FAIL"))
    fleet = (f"{run.fleet_size:,} devices" if run.fleet_size is not None
             else f"{int(fig.active_keys.max()) if len(fig.active_keys) else 0:,} keys seen")
    meta = _meta([
        ("scenario", run.name), ("run", run.run_id), ("target", run.target_url), ("started", utc(fig.t0)),
        ("duration", f"{fig.duration:,.1f} s"),
        ("fleet", fleet),
        ("requests", f"{fig.total.count:,}"), _throughput_meta(run, fig),
        ("corrected p99", f"{tables.ms(fig.total.corrected['p99'])} ms"),
        ("response p99", f"{tables.ms(fig.total.response['p99'])} ms"),
        ("errors / throttled (429)", f"{fig.total.errors:,} / {fig.total.throttled:,}"),
        ("harness", f"losant-load {__version__}"),
    ])
    warn = _workers(run)
    if run.summary.get("complete") is False:
        cls, word = "fail", "INCOMPLETE"
        warn = (f'<div class="alert fail" id="incomplete"><b>Incomplete run:</b> '
                f'{esc(str(run.summary.get("incomplete_reason", "interrupted")))}. The figures cover only what was '
                f'gathered before it stopped.</div>') + warn
    if saturated:
        warn = ('<div class="alert fail" id="saturated"><b>Generator saturated: latency figures are suspect.</b> '
                + esc("; ".join(saturated)) + "</div>") + warn  # after, not instead of, "Incomplete run"
    regression = _dict(run.summary.get("regression"))
    if regression.get("verdict") == "regression":  # one verdict everywhere: the badge says why it failed
        if run.summary.get("complete") is not False:
            cls, word = "fail", "FAIL: REGRESSION"
        top = "".join(f"<li>{esc(str(t.get('text') or t.get('op')))}</li>" for t in regression.get("top") or []
                      if isinstance(t, dict))
        warn = (f'<div class="alert fail" id="regression"><b>Regression against baseline '
                f'{esc(str(regression.get("baseline", "")))}:</b> {regression.get("regressions_total", 0)} '
                f'change(s) beyond noise and the floors (see <a href="#comparison">Comparison</a>).'
                f"<ul>{top}</ul></div>") + warn
    elif regression.get("verdict") == "not compared":
        warn = (f'<div class="alert fail" id="regression">Not compared with baseline '
                f'{esc(str(regression.get("baseline", "")))}: {esc(str(regression.get("error", "")))}</div>') + warn
    return (f'<section id="verdict"><div><span class="verdict {cls}" id="verdict-word">{word}</span>'
            f'<span class="muted">{len(run.verdicts)} criteria</span></div>{warn}{meta}'
            f'<h3>Criteria</h3>{tables.criteria(run.verdicts)}</section>')


def _throughput_meta(run: RunData, fig: Figures) -> tuple[str, str]:
    """Throughput over the steady window (what the criterion judges) when summary.json has it,
    else over the whole run, labelled as such."""
    overall = _dict(run.summary.get("overall"))
    window = overall.get("steady_window")
    rate = overall.get("steady_throughput_rps")
    if isinstance(window, dict) and isinstance(rate, (int, float)) and not window.get("whole_run"):
        return ("throughput (steady window)", f"{tables.num(rate, 1)} req/s over "
                f"{window.get('start_offset_s', 0):.1f} s .. {window.get('end_offset_s', 0):.1f} s")
    return ("throughput (whole run)", f"{tables.num(fig.total.rate, 1)} req/s")


def _steady_span(run: RunData) -> tuple[float, float] | None:
    """The steady window in seconds from the first send (the load chart's axis), when it is known."""
    overall = _dict(run.summary.get("overall"))
    w = overall.get("steady_window")
    if not isinstance(w, dict) or not isinstance(w.get("start_offset_s"), (int, float)) \
            or not isinstance(w.get("end_offset_s"), (int, float)):
        return None
    return float(w["start_offset_s"]), float(w["end_offset_s"])


def _steady_note(run: RunData) -> str:
    """Under the load chart: where the steady window lies on its time axis, and how it was found."""
    overall = _dict(run.summary.get("overall"))
    w = overall.get("steady_window")
    if not isinstance(w, dict) or w.get("start_offset_s") is None:
        return ""
    rate = w.get("throughput_rps")
    text = (f"Steady window: {w['start_offset_s']:.1f} s .. {w.get('end_offset_s', 0):.1f} s ({w.get('how', '')})"
            + (f", {rate:,.1f} req/s" if isinstance(rate, (int, float)) else "")
            + ". The throughput criterion is judged over it: the ramp-up's and the stop's bursts are not the plan.")
    return f'<p class="legend-note" id="steady-window">{esc(text)}</p>'


def _workers(run: RunData) -> str:
    """A distributed run's worker changes: who left (and when) is part of reading its figures."""
    events = [e for e in (_find(run.summary, "scenario.workers") or []) if isinstance(e, dict)]
    if not events:
        return ""
    joined = sum(1 for e in events if e.get("event") == "joined")
    left = [e for e in events if e.get("event") == "left"]
    text = f"Distributed over {joined} Locust worker{'s' if joined != 1 else ''}."
    cls = "ok"
    if left:
        cls = "fail"
        text += " " + "; ".join(f"Worker {e.get('worker')} left at {e.get('at')}: its devices moved to the others"
                                for e in left) + ". Samples it sent before leaving are kept."
    return f'<div class="alert {cls}" id="workers">{esc(text)}</div>'


def _limit_reports(run: RunData, fig: Figures) -> list[dict[str, Any]]:
    """Rate limits the run touched: the summary's reports, else rebuilt from the limits table."""
    reports = [r for r in run.conformance.get("limits", []) if isinstance(r, dict)]
    if reports:
        return reports
    s = run.samples
    present = set(fig.ops)
    out = []
    for lim in run.limits().rate_limits():
        ops = [o for o in lim.operations if o in present]
        if not ops:
            continue
        codes = [s.op_names.index(o) for o in ops]
        mask = np.isin(s.op, codes)
        out.append({"limit": lim.name, "operations": list(lim.operations), "count": lim.count, "window": lim.window,
                    "key": lim.key, "calls": int(mask.sum()), "throttled": int((s.status[mask] == 429).sum()),
                    "keys": len(np.unique(s.key[mask])), "model": "not judged (no summary.json)"})
    return out


def _documented(conf: dict[str, Any]) -> str:
    """Every row of the documented table, with a one-line count of what the run drove and how it was judged."""
    rows = [r for r in conf.get("documented_rows") or [] if isinstance(r, dict)]
    if not conf:
        return ""
    if not rows:
        return "<h3>Documented limits</h3>" + tables.documented_rows(rows)
    driven = sum(1 for r in rows if r.get("driven") != "no")
    fully = sum(1 for r in rows if r.get("driven") == "yes")
    by: dict[str, int] = {}
    for r in rows:
        by[str(r.get("verdict"))] = by.get(str(r.get("verdict")), 0) + 1
    order = list((conf.get("rows_summary") or {}).get("by_verdict") or {})  # the judge's order of verdicts
    verdicts = ", ".join(f"{by[v]} {v}" for v in sorted(by, key=lambda v: order.index(v) if v in order else 99))
    line = (f"{len(rows)} documented rows: {driven} driven by this run ({fully} with every operation); "
            f"{verdicts}.")
    return ("<h3>Documented limits</h3>" + f'<p id="documented-rows">{esc(line)}</p>' + tables.documented_rows(rows)
            + '<p class="legend-note">Refused means 429 for rate and concurrency rows, 400 or 413 for size rows. '
              '"not tested": driven, but never near the limit, so no conformance was earned. Rate rows follow the '
              "rule above; concurrency and size rows follow the rules under their own tables below (each verdict's tooltip "
              "says which rule applied; summary.json has it as <code>judged</code>).</p>")


def throttles(run: RunData, fig: Figures) -> str:
    """The judge's rule and verdict, every documented row, the per-limit tables, probe results, and
    accepted-per-window charts."""
    reports = _limit_reports(run, fig)
    conf = run.conformance
    if not reports:
        mqtt_note = (' The MQTT broker\'s limits are judged in <a href="#mqtt">the MQTT section</a>.'
                     if any(o.startswith("mqtt.") for o in run.samples.op_names) else "")
        body = ("<h3>Rate limits</h3>" + '<p class="muted">The run called no REST operation with a documented rate limit.'
                + mqtt_note + "</p>")
    else:
        s, imgs = run.samples, []
        for i, r in enumerate(reports):
            ops = [o for o in (r.get("operations") or [r.get("limit")]) if o in s.op_names]
            window, count = float(r.get("window") or 0), int(r.get("count") or 0)
            if not ops or window <= 0:
                continue
            series = accepted_windows(s, [s.op_names.index(o) for o in ops], window)
            if series and r.get("max_accepted_in_window") is None:
                # accepted peak by the middle of each call's bounds, when the summary has no judgement
                peak = max((int(c.max()) for _, _, c, _, _ in series if len(c)), default=0)
                r = reports[i] = {**r, "max_accepted_in_window": peak}
            imgs.append(_img(charts.accepted_per_window(str(r.get("limit")), count, window, series),
                             f"accepted calls per window for the busiest keys of {r.get('limit')}"))
        body = "<h3>Rate limits</h3>" + tables.limits(reports) + tables.probes(reports) + "".join(imgs)
    found = [f for f in conf.get("findings", []) if isinstance(f, dict)]
    body += tables.concurrency([r for r in conf.get("concurrency") or [] if isinstance(r, dict)])
    body += tables.sizes([r for r in conf.get("sizes") or [] if isinstance(r, dict)])
    body = tables.throttle_status(conf) + _documented(conf) + body
    body += "<h3>Findings</h3>" + (tables.findings(found, conf.get("findings_total"), fig.t0,
                                                   tested=conf.get("tested")) if conf
                                  else '<p class="muted">Not judged: the run folder has no summary.json.</p>')
    return _section("throttles", "Throttle and limit conformance", body)


def scheduler(run: RunData, fig: Figures, saturated: list[str]) -> str:
    cpu = run.cpu_percent
    status = (f'<div class="alert fail">Saturated: {esc("; ".join(saturated))}.</div>' if saturated
              else '<div class="alert ok">The generator kept up: lateness p99 within '
                   f'{LATENESS_SATURATED_S * 1000:g} ms{" and CPU within 90%" if cpu is not None else ""}.</div>')
    meta = _meta([(f"lateness {p}", f"{tables.ms(v)} ms") for p, v in fig.lateness.items()]
                 + [("generator CPU", f"{cpu:.0f}%" if cpu is not None else "not recorded")] + _cpu_cost(run))
    chart = _img(charts.lateness(fig.lateness_curve, fig.times, fig.lateness_series, LATENESS_SATURATED_S * 1000),
                 "scheduler lateness")
    return _section("scheduler", "Scheduler health", status + meta + chart)


def _cpu_cost(run: RunData) -> list[tuple[str, str]]:
    """The generator's own CPU (summary ``generator``, recorded by the run): seconds over the run, and per
    1,000 requests, the figure to compare generator versions and machines by."""
    gen = run.summary.get("generator")
    if not isinstance(gen, dict) or not isinstance(gen.get("cpu_seconds"), (int, float)):
        return []
    out = [("generator CPU time", f"{gen['cpu_seconds']:,.1f} s over {gen.get('wall_seconds') or 0:,.0f} s of run"
            + (f" ({len(gen['processes'])} processes)" if len(gen.get("processes") or []) > 1 else ""))]
    per_k = gen.get("cpu_seconds_per_1000_requests")
    if isinstance(per_k, (int, float)):
        out.append(("generator CPU per 1,000 requests", f"{per_k * 1000:,.0f} ms"))
    return out


def integrity(run: RunData) -> str:
    data = run.integrity_result
    if not data:
        return _section("integrity", "Data integrity", '<p class="muted">Not checked: no integrity.json in the run folder.</p>')
    lost = data.get("lost")
    n_lost = data.get("lost_writes")
    if not isinstance(n_lost, int):
        n_lost = len(lost) if isinstance(lost, list) else (lost if isinstance(lost, int) else 0)
    statement = data.get("statement")
    if data.get("checked") is False:
        head = f'<div class="alert warn">Not checked: {esc(data.get("reason", "no reason given"))}</div>'
    elif isinstance(statement, str) and statement:  # coverage and true counts, in the terminal's words
        head = f'<div class="alert {"fail" if n_lost else "ok"}" id="integrity-result">{esc(statement)}</div>'
    elif n_lost:
        head = f'<div class="alert fail" id="integrity-result">{n_lost:,} accepted states were lost.</div>'
    else:
        head = (f'<div class="alert ok" id="integrity-result">All {esc(tables.value(data.get("accepted", "?")))} '
                'accepted states were read back.</div>')
    def shown(v: Any) -> str:
        return f"{len(v):,} items" if isinstance(v, (list, dict)) else tables.value(v)

    rows = [f"<tr>{tables.cell(k)}{tables.cell(shown(v), 'n')}</tr>" for k, v in data.items()]
    extra = ""
    if isinstance(lost, list) and lost:
        extra = "<h3>First lost states</h3><pre>" + esc("\n".join(str(x) for x in lost[:20])) + "</pre>"
    return _section("integrity", "Data integrity", head + tables.table(("field", "value"), rows, cls="integrity") + extra)


def _zero(curves: dict[str, Any] | None) -> bool:
    """Whether an operation's latency curves hold nothing above zero (or nothing at all)."""
    values = [np.asarray(v, float) for v in (curves or {}).values()]
    return all(not np.any(np.nan_to_num(v) > 0) for v in values)


NAV = (("verdict", "Verdict"), ("load", "Load"), ("latency", "Latency"), ("operations", "Operations"),
       ("throttles", "Throttles"), ("mqtt", "MQTT"), ("scheduler", "Scheduler"), ("errors", "Errors"), ("integrity", "Integrity"),
       ("comparison", "Comparison"))


def page(run: RunData, fig: Figures, comparison_html: str = "", top_ops: int = 6) -> str:
    """The whole report as one HTML string."""
    saturated = saturation(run, fig)
    # an event recorded with no duration (mqtt.disconnect) has no latency to chart on a log axis
    timed = [op for op in fig.ops if not _zero(fig.curves.get(op))]
    shown = timed[:top_ops]
    more = f" (the {len(shown)} busiest of {len(timed)} timed operations)" if len(timed) > len(shown) else ""
    mqtt_html = mqtt_section.section(run.summary, fig.colors)  # "" without MQTT samples
    sections = [
        header(run, fig, saturated),
        _section("load", "Load", _img(charts.throughput(fig.times, fig.rps, fig.active_keys, fig.bucket, fig.colors,
                                                 _steady_span(run)), "throughput")
                 + _steady_note(run)),
        _section("latency", "Latency" + more,
                 _img(charts.percentile_series(fig.times, fig.pct_series, shown, fig.bucket), "percentiles over time")
                 + '<h3>Distribution (HDR percentile curve)</h3>'
                 + _img(charts.distribution(fig.curves, shown, colors=fig.colors), "latency distribution")),
        _section("operations", "Per operation",
                 tables.operations(fig) + '<p class="legend-note">Also in <a href="operations.csv">operations.csv</a>. '
                 "Errors are failed requests other than 429; throttled are requests answered 429 (the terminal "
                 "and summary.json use the same words). Rates divide by the whole run's duration (first send to "
                 "last response), ramp-up and stop included; the throughput criterion is judged over the steady "
                 "window stated in the verdict.</p>"),
        throttles(run, fig),
        mqtt_html,
        scheduler(run, fig, saturated),
        _section("errors", "Errors and throttled calls", tables.errors(fig.errors, fig.t0)
                 + (_img(charts.errors_over_time(fig.times, fig.error_series, fig.bucket), "errors over time")
                    if fig.error_series else "")),
        integrity(run),
    ]
    if comparison_html:
        sections.append(comparison_html)
    nav = "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in NAV
                  if (a != "comparison" or comparison_html) and (a != "mqtt" or mqtt_html))
    word = "NOT JUDGED" if run.passed is None else ("PASS" if run.passed else "FAIL")
    badge = "na" if run.passed is None else ("pass" if run.passed else "fail")
    if run.summary.get("complete") is False:  # exit code 2, as the verdict card says
        word, badge = "INCOMPLETE", "fail"
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(word)} · {esc(run.name)} · losant-load</title><style>{CSS}</style></head><body>"
            f'<header class="top"><h1><span class="topbadge {badge}">{esc(word)}</span> {esc(run.name)}</h1><div class="sub">losant-load report · run {esc(run.run_id)}'
            f" · {esc(utc(fig.t0))}</div></header><nav>{nav}</nav><main>{''.join(sections)}</main>"
            f"<footer>losant-load {esc(__version__)} · generated from the run folder's samples</footer></body></html>")
