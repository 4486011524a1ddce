"""What a person sees on the terminal: a progress line during a run, the verdict after it."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

from harness.record import LOCUST_MQTT_TYPE


#: Printed once above the progress lines: the words mean what they mean in the verdict and the report.
PROGRESS_LEGEND = ("progress: errors = failed requests other than 429; throttled = answered 429 "
                   "(the verdict, summary.json and the report use the same words)")


def progress_line(elapsed: float, duration: float | None, users: int, requests: int, failures: int,
                  throttled: int, rps: float, p99_ms: float | None,
                  mqtt: tuple[int, int, float, int] | None = None, mixed: bool = False) -> str:
    """One progress line. ``failures`` is Locust's count, which includes 429s; ``throttled``
    the harness's count of 429s: the line shows errors (failures other than 429) and
    throttled (429) separately, as the verdict does. ``requests`` are HTTP requests (Locust's
    statistics); MQTT devices add ``mqtt`` = (connected now, states acknowledged, acknowledged
    per second since the last line, disconnects), counted by the run's MQTT hub; ``mixed``: the
    p99 is over HTTP and MQTT samples alike (see ``http_totals``)."""
    total = f"/{duration:.0f}s" if duration else "s"
    p99 = f"{p99_ms:.0f} ms" if p99_ms is not None else "-"
    errors = max(0, failures - throttled)
    line = (f"[{elapsed:5.0f}{total}] users {users:>5}  requests {requests:>8,}  {rps:7.1f} req/s  "
            f"errors {errors:>5,}  throttled {throttled:>5,}  p99 (last 10 s{', HTTP+MQTT' if mixed else ''}) {p99}")
    if mqtt is not None:
        connected, published, per_s, lost = mqtt
        line += (f"  mqtt: connected {connected:>6,}  states acknowledged {published:>9,}  {per_s:7.1f}/s  "
                 f"disconnects {lost:>5,}")
    return line


def progress_loop(environment: Any, ctx: Any, duration: float | None, every: float = 5.0,
                  out: TextIO | None = None) -> None:
    """Print a progress line every few seconds until the greenlet is killed at test stop."""
    import gevent

    out = out or sys.stderr
    start = time.time()
    print(PROGRESS_LEGEND, file=out, flush=True)
    published, at = 0, start
    while True:
        gevent.sleep(every)
        hub = getattr(ctx, "mqtt", None)  # the run's MQTT side, once an MQTT user started
        mqtt = None
        if hub is not None:
            now = time.time()
            mqtt = (int(hub.connected), int(hub.published), (hub.published - published) / max(now - at, 1e-9),
                    int(hub.disconnects))
            published, at = int(hub.published), now
        requests, failures, rps, p99, mixed = http_totals(environment.runner.stats)
        print(progress_line(time.time() - start, duration, environment.runner.user_count, requests,
                            failures, ctx.throttled_count, rps, p99, mqtt, mixed), file=out, flush=True)


def http_totals(stats: Any) -> tuple[int, int, float, float | None, bool]:
    """Locust's totals without its MQTT entries: (requests, failures, current req/s, p99, mixed).

    MQTT samples are in Locust's statistics too (request type ``LOCUST_MQTT_TYPE``, for the web
    UI), and the line shows them apart from the HTTP requests. Counts and rates subtract exactly;
    the rolling p99 of the last 10 s does not (Locust keeps one window per entry, filled only when
    that entry logs), so with MQTT entries present it stays the total's and ``mixed`` says so.
    """
    total = stats.total
    mqtt = [e for (_, method), e in stats.entries.items() if method == LOCUST_MQTT_TYPE]
    requests = total.num_requests - sum(e.num_requests for e in mqtt)
    failures = total.num_failures - sum(e.num_failures for e in mqtt)
    rps = max(0.0, total.current_rps - sum(e.current_rps for e in mqtt))
    try:
        p99 = total.get_current_response_time_percentile(0.99)
    except (ValueError, KeyError, IndexError):
        p99 = None
    return requests, failures, rps, p99, bool(mqtt)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _count(value: Any, fallback: Any = None) -> int:
    """A true count from the summary: an int field, else the length of a (possibly truncated) list."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(fallback, int) and not isinstance(fallback, bool):
        return fallback
    return len(fallback) if isinstance(fallback, (list, tuple)) else 0


def failed_reasons(summary: dict[str, Any]) -> list[str]:
    """Why the run failed, in words: ``failed_because`` when the summary has it, else derived
    from the same fields (a failed criterion, a regression against the baseline)."""
    given = summary.get("failed_because")
    if isinstance(given, list) and given:
        return [str(x) for x in given]
    out = []
    if any(isinstance(v, dict) and v.get("passed") is False for v in summary.get("verdicts") or []):
        out.append("criteria")
    if any((summary.get(k) or {}).get("verdict") == "regression" for k in ("regression", "comparison")
           if isinstance(summary.get(k), dict)):
        out.append("regression")
    return out


def verdict_word(summary: dict[str, Any]) -> str:
    """PASSED, FAILED: <reasons> or INCOMPLETE (<why>): the same verdict as summary.json's
    ``passed`` (and the exit code, and the report's badge)."""
    if summary.get("complete") is False:
        return f"INCOMPLETE ({summary.get('incomplete_reason', 'interrupted')})"
    if summary.get("passed"):
        return "PASSED"
    reasons = failed_reasons(summary)
    return "FAILED" + (f": {', '.join(reasons)}" if reasons else "")


def overall_lines(summary: dict[str, Any]) -> list[str]:
    """Requests, errors (other than 429), throttled (429), throughput over the steady window, latency."""
    overall = summary.get("overall") or {}
    if not overall:
        return []
    from harness.analysis.criteria import steady_throughput

    count = _count(overall.get("count"))
    duration = (summary.get("run") or {}).get("duration_s")
    over = f" in {duration:,.1f} s" if isinstance(duration, (int, float)) else ""
    lines = [f"  requests {count:,}{over}: errors {_count(overall.get('errors')):,} "
             f"({overall.get('error_rate', 0):.2%}, failures other than 429), throttled "
             f"{_count(overall.get('throttled')):,} ({overall.get('throttled_rate', 0):.2%}, answered 429)"]
    rate, where = steady_throughput(overall)
    if rate is not None:
        whole = overall.get("throughput_rps")
        steady = isinstance(overall.get("steady_window"), dict) and not overall["steady_window"].get("whole_run")
        lines.append(f"  throughput {rate:,.1f} req/s {where}"
                     + (f"; {whole:,.1f} req/s over the whole run" if steady and whole is not None else ""))
    rt = overall.get("response_time_ms", {})
    co = overall.get("corrected_latency_ms", {})
    lines.append(f"  response time (from actual send) p50 {_fmt(rt.get('p50'))} ms  p99 {_fmt(rt.get('p99'))} ms;  "
                 f"corrected latency (from planned send) p50 {_fmt(co.get('p50'))} ms  p99 {_fmt(co.get('p99'))} ms")
    return lines


def criteria_lines(summary: dict[str, Any]) -> list[str]:
    verdicts = summary.get("verdicts") or []
    if not verdicts:
        return []
    from harness.analysis.criteria import measure_text

    lines = ["  criteria:"]
    for v in verdicts:
        mark = "PASS" if v.get("passed") else ("n/a " if v.get("status") == "not checked" else "FAIL")
        unit, detail = v.get("unit", ""), v.get("detail") or ""
        if v.get("status") == "not checked":
            text = detail if detail.startswith("not ") else (f"not checked ({detail})" if detail else "not checked")
        else:
            text = f"measured {measure_text(v.get('measured'), unit)} (bound {measure_text(v.get('bound'), unit)})"
            text += f" {detail}" if detail.startswith("over ") else (f"; {detail}" if detail else "")
        lines.append(f"    [{mark}] {v.get('name')}: {text}")
    return lines


def _by_kind(counts: Any) -> str:
    if not isinstance(counts, dict):
        return ""
    return ", ".join(f"{k} {int(n):,}" for k, n in counts.items() if isinstance(n, (int, float)) and n)


def conformance_lines(summary: dict[str, Any], shown: int = 5) -> list[str]:
    """Throttle conformance with true counts (the findings list may be truncated; its length is
    never a count), undecided calls, and "not tested" when nothing came near a limit."""
    conf = summary.get("conformance")
    if not isinstance(conf, dict) or not conf:
        return []
    findings = [f for f in conf.get("findings") or [] if isinstance(f, dict)]
    total = _count(conf.get("findings_total"), findings)
    undecided = _count(conf.get("undecided_total"), None)
    if conf.get("tested") is False and not total:
        from harness.analysis.criteria import not_tested

        head = f"  throttle conformance: {not_tested(conf)}"
    elif total:
        kinds = _by_kind(conf.get("findings_by_kind"))
        head = (f"  throttle conformance: {total:,} finding{'s' if total != 1 else ''}"
                + (f" ({kinds})" if kinds else ""))
    else:
        head = "  throttle conformance: no findings"
    if undecided:
        kinds = _by_kind(conf.get("undecided_by_kind"))
        head += (f"; {undecided:,} undecided" + (f" ({kinds})" if kinds else "")
                 + ": the calls' timing cannot decide them, so they are not findings")
    lines = [head]
    rows = conf.get("rows_summary")
    if isinstance(rows, dict) and rows.get("rows"):  # the documented table: how much of it this run drove
        lines.append(f"    documented limits: {rows.get('driven', 0)} of {rows['rows']} rows driven; "
                     + ", ".join(f"{n} {v}" for v, n in (rows.get("by_verdict") or {}).items()))
    if total and findings:
        lines.append(f"    first {min(shown, len(findings), total):,} of {total:,}:")
        for f in findings[:shown]:
            lines.append(f"    - {f.get('kind')} {f.get('limit')} key {f.get('key')}: {f.get('detail', '')}")
    return lines


def mqtt_lines(summary: dict[str, Any]) -> list[str]:
    """MQTT devices (summary.json ``mqtt``): connections, the mass disconnect's recovery, disconnects by
    reason, refusals, and the broker judge's true counts (its findings are also in the conformance total)."""
    block = summary.get("mqtt")
    if not isinstance(block, dict) or not block:
        return []
    conn = block.get("connected") or {}
    full = conn.get("full_connection_s")
    head = (f"  mqtt: {int(block.get('devices') or 0):,} devices, peak {int(conn.get('peak') or 0):,} connected, "
            + (f"fully connected after {full:,.1f} s" if isinstance(full, (int, float))
               else str(conn.get("full_connection_note") or "")))
    lines = [head]
    for st in block.get("storms") or []:
        if isinstance(st, dict):
            rec = st.get("recovery_s")
            lines.append(f"    mass disconnect: {int(st.get('dropped') or 0):,} dropped, "
                         + (f"all back after {rec:,.1f} s" if isinstance(rec, (int, float))
                            else f"{int(st.get('reconnected') or 0):,} back by the end")
                         + f" (the limit allows no less than {float(st.get('least_by_limit_s') or 0):,.0f} s)")
    d = block.get("disconnects") or {}
    reasons = _by_kind(d.get("by_reason"))
    b = block.get("bans") or {}
    lines.append(f"    disconnects {int(d.get('total') or 0):,}" + (f" ({reasons})" if reasons else "")
                 + f"; reconnects {int((block.get('connects') or {}).get('reconnects') or 0):,}; "
                 f"refused connects {int(b.get('refusals') or 0):,}; bans {int(b.get('episodes') or 0):,}")
    probe = block.get("probe")
    if isinstance(probe, dict):
        from harness.analysis.mqtt import probe_statement

        lines.append(f"    probe {probe_statement(probe)}")
    total, und = int(block.get("findings_total") or 0), int(block.get("undecided_total") or 0)
    kinds = _by_kind(block.get("findings_by_kind"))
    lines.append(f"    broker judge: {total:,} finding{'s' if total != 1 else ''}" + (f" ({kinds})" if kinds else "")
                 + (f"; {und:,} undecided (the timing cannot decide them)" if und else ""))
    return lines


def integrity_lines(summary: dict[str, Any]) -> list[str]:
    """The read-back: the integrity block's own statement (coverage and true counts) when it has
    one, else the true counts it carries (``lost_writes``, never the truncated list's length)."""
    integrity = summary.get("integrity")
    if not isinstance(integrity, dict) or not integrity:
        return []
    if not integrity.get("checked"):
        return [f"  integrity: not checked ({integrity.get('reason', '')})"]
    statement = integrity.get("statement")
    if isinstance(statement, str) and statement:
        return [f"  integrity: {statement}"]
    accepted = _count(integrity.get("accepted_checked"), integrity.get("accepted"))
    devices = _count(integrity.get("devices_checked"), integrity.get("devices"))
    lost = _count(integrity.get("lost_writes"), integrity.get("lost"))
    text = f"  integrity: {accepted:,} accepted states of {devices:,} devices checked"
    if isinstance(integrity.get("read_back"), int):
        text += f", {integrity['read_back']:,} states read back"
    return [f"{text}, {lost:,} lost"]


def regression_lines(summary: dict[str, Any]) -> list[str]:
    """The judgement against ``--baseline`` (summary.json's ``regression`` block): its verdict
    (``FAILED: regression`` on a regression, as the verdict word says), the top changes and
    how many statistics had not enough samples to be judged. Empty without a baseline."""
    reg = summary.get("regression")
    if not isinstance(reg, dict):
        return []
    base = reg.get("baseline", "?")
    verdict = reg.get("verdict")
    short = reg.get("not_enough_samples", 0)
    if verdict == "not compared":
        return [f"  regression against baseline {base}: NOT COMPARED ({reg.get('error', '')})"]
    if verdict != "regression":
        judged = reg.get("judged")
        what = f"{judged} statistics judged, " if isinstance(judged, int) else ""
        late = reg.get("generator_late") or 0
        word = "no regression"
        if verdict == "undecided":
            word = (f"undecided ({late} latency statistics rose only where the generator was late by as much)"
                    if late else "undecided (nothing had enough samples)")
        return [f"  regression against baseline {base}: {word} ({what}{short} with not enough samples)"]
    total = reg.get("regressions_total", 0)
    lines = [(f"  FAILED: regression against baseline {base}: {total} change{'s' if total != 1 else ''} beyond "
              f"noise and the floors ({short} statistics with not enough samples)")]
    for item in reg.get("top") or []:
        if isinstance(item, dict):
            lines.append(f"    - {item.get('text') or item.get('op')}")
    if isinstance(total, int) and total > len(reg.get("top") or []):
        lines.append(f"    ... and {total - len(reg.get('top') or [])} more (losant-load compare prints them all)")
    return lines


def harness_call_lines(summary: dict[str, Any]) -> list[str]:
    """The harness's own calls, by phase, only when some failed: they are not the target's errors
    (harness/harness_calls.py), but a failed set-up or tear-down should still be seen.

    >>> harness_call_lines({"harness_calls": {"stop": {"calls": 200, "failed": 14, "outcomes": {"200": 186,
    ...     "connection": 14}}, "read-back": {"calls": 2, "failed": 0}}})
    ['  harness calls (not judged): stop 200, 14 failed (connection 14); read-back 2']
    """
    phases = summary.get("harness_calls")
    if not isinstance(phases, dict) or not any(isinstance(p, dict) and p.get("failed") for p in phases.values()):
        return []
    parts = []
    for name, p in phases.items():
        if not isinstance(p, dict):
            continue
        text = f"{name} {p.get('calls', 0):,}"
        if p.get("failed"):
            bad = ", ".join(f"{k} {n:,}" for k, n in (p.get("outcomes") or {}).items()
                            if not (k.isdigit() and 200 <= int(k) < 400))
            text += f", {p['failed']:,} failed" + (f" ({bad})" if bad else "")
        parts.append(text)
    return ["  harness calls (not judged): " + "; ".join(parts)]


def format_summary(summary: dict[str, Any], run_dir: Path | str) -> str:
    """The end-of-run verdict: the word, the overall figures, one line per criterion with its
    measured value, conformance and integrity with true counts, then where the files are.

    Vocabulary, as in the progress line and the report: errors = failed requests other
    than 429; throttled = requests answered 429."""
    lines = ["", f"losant-load: {summary.get('scenario', {}).get('name', '?')} - {verdict_word(summary)}"]
    lines += overall_lines(summary)
    lines += criteria_lines(summary)
    lines += conformance_lines(summary)
    lines += mqtt_lines(summary)
    lines += integrity_lines(summary)
    lines += regression_lines(summary)
    lines += harness_call_lines(summary)
    run_dir = Path(run_dir)
    lines.append(f"  run folder: {run_dir}")
    report = run_dir / "index.html"
    if report.exists():
        lines.append(f"  report: {report.resolve()}")
    return "\n".join(lines)
