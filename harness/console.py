"""What a person sees on the terminal: a progress line during a run, the verdict after it."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO


def progress_line(elapsed: float, duration: float | None, users: int, requests: int, failures: int,
                  throttled: int, rps: float, p99_ms: float | None) -> str:
    total = f"/{duration:.0f}s" if duration else "s"
    p99 = f"{p99_ms:.0f} ms" if p99_ms is not None else "-"
    return (f"[{elapsed:5.0f}{total}] users {users:>5}  requests {requests:>8,}  {rps:7.1f} req/s  "
            f"errors {failures:>5,}  throttled {throttled:>5,}  p99 (last 10 s) {p99}")


def progress_loop(environment: Any, ctx: Any, duration: float | None, every: float = 5.0,
                  out: TextIO | None = None) -> None:
    """Print a progress line every few seconds until the greenlet is killed at test stop."""
    import gevent

    out = out or sys.stderr
    start = time.time()
    while True:
        gevent.sleep(every)
        total = environment.runner.stats.total
        try:
            p99 = total.get_current_response_time_percentile(0.99)
        except (ValueError, KeyError, IndexError):
            p99 = None
        print(progress_line(time.time() - start, duration, environment.runner.user_count, total.num_requests,
                            total.num_failures, ctx.throttled_count, total.current_rps, p99), file=out, flush=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


def format_summary(summary: dict[str, Any], run_dir: Path | str) -> str:
    """The end-of-run verdict: one line per criterion with its measured value, then where the files are."""
    word = "PASSED" if summary.get("passed") else "FAILED"
    if summary.get("complete") is False:
        word = f"INCOMPLETE ({summary.get('incomplete_reason', 'interrupted')})"
    lines = ["", f"losant-load: {summary.get('scenario', {}).get('name', '?')} - {word}"]
    overall = summary.get("overall", {})
    if overall:
        rt = overall.get("response_time_ms", {})
        co = overall.get("corrected_latency_ms", {})
        lines.append(f"  requests {overall.get('count', 0):,}  {overall.get('throughput_rps', 0):.1f} req/s  "
                     f"errors {overall.get('error_rate', 0):.2%}  throttled {overall.get('throttled_rate', 0):.2%}")
        lines.append(f"  response time (from actual send) p50 {_fmt(rt.get('p50'))} ms  p99 {_fmt(rt.get('p99'))} ms;  "
                     f"corrected latency (from planned send) p50 {_fmt(co.get('p50'))} ms  p99 {_fmt(co.get('p99'))} ms")
    verdicts = summary.get("verdicts", [])
    if verdicts:
        lines.append("  criteria:")
        for v in verdicts:
            mark = "PASS" if v.get("passed") else ("n/a " if v.get("status") == "not checked" else "FAIL")
            lines.append(f"    [{mark}] {v.get('name')}: measured {_fmt(v.get('measured'))} (bound {_fmt(v.get('bound'))})")
    findings = summary.get("conformance", {}).get("findings", [])
    if findings:
        lines.append(f"  throttle conformance findings: {len(findings)}")
        for f in findings[:5]:
            lines.append(f"    - {f.get('kind')} {f.get('limit')} key {f.get('key')}: {f.get('detail', '')}")
    integrity = summary.get("integrity") or {}
    if integrity:
        if integrity.get("checked"):
            lines.append(f"  integrity: {integrity.get('accepted', 0):,} accepted states read back, "
                         f"{len(integrity.get('lost', [])):,} lost")
        else:
            lines.append(f"  integrity: not checked ({integrity.get('reason', '')})")
    run_dir = Path(run_dir)
    lines.append(f"  run folder: {run_dir}")
    report = run_dir / "index.html"
    if report.exists():
        lines.append(f"  report: {report.resolve()}")
    return "\n".join(lines)
