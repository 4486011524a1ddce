"""The report's MQTT section, drawn from summary.json's ``mqtt`` block only (so page and file agree).

What a reader of an MQTT run asks, in order: how many devices were connected over time and
how fast the fleet connected; after a mass disconnect, how long until it was back and how
much of that the new-connection limit (300 per 15 s per application) imposes; why
connections were lost (by reason, true counts); and whether the broker kept its documented
limits (findings, undecided, per row). Absent when the run had no MQTT samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.analysis.mqtt import probe_statement
from harness.report import tables
from harness.report.charts import INK, MUTED, OUTSIDE, _figure, _time_axis, styled, to_data_uri
from harness.report.figures import PALETTE
from harness.report.tables import cell, esc, num, rel, value

LIMIT_COLOR = PALETTE[3]


def _seconds(v: Any) -> str:
    return "–" if not isinstance(v, (int, float)) else f"{v:,.1f} s"


@styled
def connections_chart(series: Mapping[str, Any], storms: Sequence[Mapping[str, Any]],
                      colors: Mapping[str, str]) -> str:
    """Connected devices over time (top) and accepted new connections per window against the limit (below)."""
    fig, axes = _figure(10, 5.0, 2, 1, sharex=True, gridspec_kw={"height_ratios": [1.6, 1]})
    ax, ax2 = axes[0, 0], axes[1, 0]
    t0 = float(series.get("t0") or 0.0)
    bucket = float(series.get("bucket_s") or 1.0)
    # the most open within each bucket, drawn across it; older runs: the count at each bucket's end
    peak = series.get("connected_peak")
    connected = np.asarray(peak or series.get("connected") or [], float)
    times = bucket * np.arange(0 if peak else 1, len(connected) + (0 if peak else 1))
    if peak and len(connected):  # the last bucket drawn across its width too
        times, connected = np.append(times, times[-1] + bucket), np.append(connected, connected[-1])
    conn_color = colors.get("mqtt.connect") or PALETTE[0]
    if len(connected):
        ax.step(times, connected, where="post", color=conn_color, label="connected devices (most at once)")
        ax.fill_between(times, connected, step="post", color=conn_color, alpha=0.10)
    for i, st in enumerate(storms):
        at = float(st.get("at") or t0) - t0
        label = "mass disconnect" if i == 0 else None
        ax.axvline(at, color=INK, ls=":", lw=1.0, label=label)
        ax2.axvline(at, color=INK, ls=":", lw=1.0)
        rec = st.get("recovery_s")
        if isinstance(rec, (int, float)):
            ax.axvspan(at, at + rec, color=MUTED, alpha=0.12, lw=0,
                       label="until every dropped device was back" if i == 0 else None)
            least = float(st.get("least_by_limit_s") or 0)
            ax.annotate(f"recovered in {rec:,.1f} s (the limit allows no less than {least:,.0f} s)",
                        xy=(at + rec, float(st.get("connected_before") or 0)), xytext=(4, 6),
                        textcoords="offset points", fontsize=7, color=MUTED)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("devices")
    ax.set_title(f"Connected MQTT devices (most at once in each {bucket:g} s)")
    ax.legend(**OUTSIDE)
    window = float(series.get("new_connection_window_s") or 15.0)
    new = np.asarray(series.get("new_connections") or [], float)
    limit = series.get("new_connection_limit")
    sliding = np.asarray(series.get("new_connections_last_window") or [], float)
    if len(new):
        starts = window * np.arange(len(new))
        ax2.bar(starts, new, width=window * 0.95, align="edge", color=conn_color, alpha=0.18,
                label=f"accepted connects per fixed {window:g} s window")
    if len(sliding):
        ax2.step(bucket * np.arange(1, len(sliding) + 1), sliding, where="post", color=conn_color,
                 label=f"accepted connects in the last {window:g} s (the limit's window)")
        new = np.concatenate((new, sliding))
    if isinstance(limit, (int, float)):
        ax2.axhline(float(limit), color=LIMIT_COLOR, ls="--", lw=1.2,
                    label=f"documented: {int(limit):,} new connections per {window:g} s")
        ax2.set_ylim(0, max(float(limit) * 1.25, float(new.max()) * 1.1 if len(new) else 1.0))
    ax2.set_ylabel(f"connects / {window:g} s")
    ax2.set_title(f"New connections per {window:g} s, against the documented limit")
    ax2.legend(**OUTSIDE)
    end = float(times[-1]) if len(times) else window
    ax2.set_xlim(0, end)
    _time_axis(ax2, end)
    return to_data_uri(fig)


def _rules(rules: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for r in rules:
        window = r.get("window")
        doc = (f"{num(r.get('count'))} per {window:g} s per {r.get('key')}" if isinstance(window, (int, float))
               else f"{num(r.get('count'))} bytes per message")
        refused = (f"{num(r.get('refused') or 0)} ({num(r.get('justified') or 0)} justified, "
                   f"{num(r.get('false_refusals') or 0)} false, {num(r.get('undecided_refusals') or 0)} undecided)"
                   if r.get("limit") == "mqtt.newConnections" else "–")
        missed, und = int(r.get("missed") or 0), int(r.get("undecided") or 0)
        rows.append(f'<tr>{cell(r.get("limit"), "op")}{cell(doc)}{cell(num(r.get("messages")), "n")}'
                    f'{cell(num(r.get("acknowledged")), "n")}{cell(num(r.get("unanswered")), "n")}'
                    f'{cell(num(r.get("max_surely_in_window")), "n")}{cell(num(r.get("max_possibly_in_window")), "n")}'
                    f'{cell(value(bool(r.get("tested"))))}{cell(num(missed), "n bad" if missed else "n")}'
                    f'{cell(num(und), "n warn" if und else "n")}{cell(refused)}</tr>')
    return (tables.table(("row", "documented", "sent", "acked", "unanswered", "surely in a window", "possibly",
                          "tested", "acked over", "undecided", "refused"), rows, cls="mqtt-rules", numeric_from=2)
            + '<p class="legend-note">Sent: messages (connects for the new-connection row). Surely / possibly in a '
              "window: the most messages that every / some arrival order the timing allows puts in one window of the "
              "limit. Acked over: acknowledged although its window surely held the count already (findings). "
              "Refused: connects answered CONNACK 3 (justified by the limit, false, undecided).</p>")


def _storms(storms: Sequence[Mapping[str, Any]], t0: float) -> str:
    rows = [f'<tr>{cell(rel(float(s.get("at") or t0), t0))}{cell(num(s.get("connected_before")), "n")}'
            f'{cell(num(s.get("dropped")), "n")}{cell(num(s.get("reconnected")), "n")}'
            f'{cell(_seconds(s.get("half_recovery_s")), "n")}{cell(_seconds(s.get("recovery_s")), "n")}'
            f'{cell(_seconds(s.get("least_by_limit_s")), "n")}{cell(s.get("limit"))}</tr>' for s in storms]
    return tables.table(("when", "connected before", "dropped", "back", "half back after", "all back after (recovery)",
                         "least the limit allows", "limit"), rows, cls="mqtt-storms", numeric_from=1)


def _probe(probe: Mapping[str, Any], t0: float) -> str:
    """The probe of the per-topic limit: its verdict in words, then each disconnect it drew."""
    verdict = str(probe.get("verdict") or "")
    cls = {"conforms": "ok", "findings": "fail"}.get(verdict, "warn")
    out = (f'<h3>Probe: {esc(probe.get("limit"))} pushed past its count</h3>'
           f'<div class="alert {cls}" id="mqtt-probe">{esc(probe_statement(probe))}</div>')
    rows = []
    for e in probe.get("episodes") or []:
        if not isinstance(e, dict):
            continue
        onset = e.get("onset") or {}
        sure, could = onset.get("sure"), onset.get("could")
        at = "–" if not isinstance(sure, int) or sure < 0 else (f"{sure}" if sure == could else f"{sure}–{could}")
        ban = e.get("ban_s") or {}
        state = str(e.get("state") or "")
        rows.append(f'<tr>{cell(rel(float(e.get("at") or t0), t0))}{cell(e.get("device"))}{cell(at, "n")}'
                    f'{cell(num(e.get("refused_during_ban")), "n")}{cell(_seconds(e.get("reconnected_after_s")), "n")}'
                    f'{cell(_seconds(ban.get("least")) + " – " + _seconds(ban.get("most")))}'
                    f'{cell(state, "bad" if state == "finding" else ("warn" if state == "undecided" else ""))}</tr>')
    total = int(probe.get("episodes_total") or 0)
    if rows:
        out += tables.table(("disconnected", "device", "accepted before it", "refused in the ban", "back after",
                             "ban allowed", "judged"), rows,
                            cls="mqtt-probe", numeric_from=2)
        note = ("Accepted before it: the accepted messages of its topic in the window before the one dropped, one "
                "number when every arrival order the timing allows gives the same count, else the fewest–most. "
                "Refused in the ban: reconnects refused while the device was surely banned. Back after: from the "
                "disconnect to the next accepted connect. Ban allowed: the shortest and longest ban the policy "
                "allows for this offence. \"Ban not checked\": the run ended before the reconnect during the ban.")
        if total > len(rows):
            note += f" First {len(rows):,} of {total:,} disconnects."
        out += f'<p class="legend-note">{esc(note)}</p>'
    return out


def section(summary: Mapping[str, Any], colors: Mapping[str, str]) -> str:
    """The ``<section id="mqtt">`` (empty string when the summary has no ``mqtt`` block)."""
    block = summary.get("mqtt")
    if not isinstance(block, dict) or not block:
        return ""
    raw = block.get("series")
    series: dict[str, Any] = raw if isinstance(raw, dict) else {}
    t0 = float(series.get("t0") or 0.0)
    storms = [s for s in block.get("storms") or [] if isinstance(s, dict)]
    connected = block.get("connected") or {}
    connects = block.get("connects") or {}
    disc = block.get("disconnects") or {}
    bans = block.get("bans") or {}
    total = int(block.get("findings_total") or 0)
    und = int(block.get("undecided_total") or 0)
    recovery = next((s.get("recovery_s") for s in storms if isinstance(s.get("recovery_s"), (int, float))), None)
    meta = [("MQTT devices", num(block.get("devices"))), ("peak connected", num(connected.get("peak"))),
            ("time to full connection", _seconds(connected.get("full_connection_s"))
             if connected.get("full_connection_s") is not None else str(connected.get("full_connection_note") or "–")),
            ("recovery after the mass disconnect", _seconds(recovery) if storms else "no mass disconnect"),
            ("reconnects", num(connects.get("reconnects"))), ("disconnects", num(disc.get("total"))),
            ("bans (refused after a rate disconnect)", num(bans.get("episodes"))),
            ("MQTT findings / undecided", f"{total:,} / {und:,}")]
    status = (f'<div class="alert fail" id="mqtt-status">{total:,} MQTT finding{"s" if total != 1 else ""}: '
              + esc(", ".join(f"{int(n):,} {k.replace('_', ' ')}" for k, n in (block.get("findings_by_kind") or {}).items()))
              + "</div>") if total else ('<div class="alert ok" id="mqtt-status">No MQTT finding: no disconnect, refusal '
                                         "or acknowledged message proves the broker departed from its documented "
                                         "limits.</div>")
    if und:
        by = block.get("undecided_by_kind") or {}
        status += ('<div class="alert warn">Undecided (not findings): '
                   + esc(", ".join(f"{int(n):,} {k}" for k, n in by.items() if n))
                   + ": the bounds of the messages' own times allow both a conforming and a departing broker.</div>")
    body = "".join(f"<div><b>{esc(k)}</b><span>{esc(v)}</span></div>" for k, v in meta)
    body = f'<p class="legend-note">{esc(block.get("rule") or "")}</p>{status}<div class="meta">{body}</div>'
    if series:
        body += f'<img class="chart" src="{connections_chart(series, storms, colors)}" alt="MQTT connections over time">'
    if storms:
        body += "<h3>Mass disconnects and recovery</h3>" + _storms(storms, t0)
    by_reason = disc.get("by_reason") or {}
    rows = [f"<tr>{cell(k)}{cell(num(int(n)), 'n')}</tr>" for k, n in by_reason.items()]
    body += "<h3>Disconnects by reason</h3>" + tables.table(("reason", "disconnects"), rows, cls="mqtt-reasons",
                                                              numeric_from=1)
    body += (f'<p class="legend-note">Closed by the broker, judged: {num(disc.get("broker_closed_judged") or 0)} '
             f'({num(disc.get("explained") or 0)} explained, of which {num(disc.get("explained_by_limit") or 0)} by a '
             f'limit and {num(disc.get("explained_by_drop") or 0)} by the drop on purpose; '
             f'{num(disc.get("unexplained") or 0)} unexplained; {num(disc.get("undecided") or 0)} undecided); '
             f'after the run began stopping, not judged: {num(disc.get("broker_closed_after_stop") or 0)}. '
             f'Refused connects (CONNACK 3): {num(bans.get("refusals") or 0)}, of which '
             f'{num(bans.get("refusals_the_connection_limit_explains") or 0)} the new-connection limit explains and '
             f'{num(bans.get("refusals_only_a_ban_explains") or 0)} only a ban can.</p>')
    probe = block.get("probe")
    if isinstance(probe, dict):
        body += _probe(probe, t0)
    body += "<h3>The broker's limits</h3>" + _rules([r for r in block.get("rules") or [] if isinstance(r, dict)])
    found = [f for f in block.get("findings") or [] if isinstance(f, dict)]
    body += "<h3>MQTT findings</h3>" + (tables.findings(found, total, t0) if total else
                                         '<p class="ok">No MQTT findings.</p>')
    return f'<section id="mqtt"><h2>MQTT devices and the broker</h2>{body}</section>'

