"""MQTT devices: connections over time, recovery after a mass disconnect, and the broker's limits judged.

Samples (the contract of ``harness/record.py`` and the MQTT users): ``mqtt.connect`` (key =
device id; 200 = CONNACK 0, 1000 + rc for a refused CONNACK, 0 = no CONNACK),
``mqtt.publishState`` (key = ``<connecting device>:<topic>``; 200 = PUBACK, 0 = connection
lost first; latency until the PUBACK or the loss; nbytes = payload bytes),
``mqtt.commandDelivery`` (key = the receiving device, or for a peripheral's command received
on its gateway's connection ``<gatewayId>:losant/<peripheralId>/command``; sent = the REST
Send Command's send; 200 = received, 0 = never), ``mqtt.disconnect`` (key = device id; sent = when the loss was
seen; status = reason code, ``REASONS``) and ``mqtt.drop`` (the operator's
``DELETE /_emulator/mqtt``, a reconnect storm on purpose; key = application id).

A **connection** is the span from an accepted connect to the device's next disconnect (or
the end of the run). Every message of the broker's rows (``LimitsTable.mqtt``) is placed
on the same bounds as a REST call (``windows.py``): the broker decided it no earlier than
it was sent and no later than its acknowledgement, receipt, or the loss of its connection.
The rules, with the same soundness as the REST judge (docs/LIMITS.md, "MQTT judge"):

- **unexplained disconnect** (finding): the broker closed a connection (reason 1) and,
  under every arrival order the bounds allow, no message of that connection can have been
  over ``mqtt.publishIn`` / ``mqtt.publishOut`` (per device and topic, across reconnects)
  or ``mqtt.connectionMessages`` (per connection), none was over ``mqtt.messageSize``, and
  no innocent cause fits: a drop on purpose in flight, a second connection of the device,
  a keepalive timeout (the device's last acknowledged message more than 1.5 keepalives
  before the loss), a message on a topic the key may not allow, the run's stop. A
  disconnect some explanation surely covers is explained; any other is undecided;
- **missed disconnect** (finding): a message acknowledged (PUBACK) or delivered although
  ``count`` accepted messages of its key were surely in its window already, or a payload
  over ``mqtt.messageSize`` acknowledged;
- **false refusal** (finding): a connect refused with CONNACK 3 (status 1003) although
  fewer than ``mqtt.newConnections`` accepted connects of the application can have been in
  its window and no ban can cover it (no earlier disconnect of the device that a rate
  limit may explain, or the longest ban it could have drawn, ``MqttPolicy.ban_for``, had
  surely ended);
- **missed refusal** (finding): a connect accepted although the application's window
  surely held ``count`` accepted connects, or although the device was surely banned (a
  disconnect a rate limit surely explains, less than ``ban_seconds`` after the earliest
  instant its offence can have happened);
- everything the bounds leave open is **undecided**: counted, shown, never a finding.
  Counts are true counts; the findings list is cut for display.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.limits import Limit, LimitsTable
from harness.record import Samples

from .conformance import Finding
from .judgement import judge
from .windows import (
    SLACK,
    KeyedCalls,
    arrange,
    could_fixed,
    could_sliding,
    sure_fixed,
    sure_sliding,
    tokens_hi,
    tokens_lo,
)

CONNECT, PUBLISH, COMMAND, VISIBLE, DISCONNECT, DROP = (
    "mqtt.connect", "mqtt.publishState", "mqtt.commandDelivery", "mqtt.stateVisible", "mqtt.disconnect", "mqtt.drop")
MQTT_OPS = (CONNECT, PUBLISH, COMMAND, VISIBLE, DISCONNECT, DROP)
#: ``mqtt.disconnect`` status codes
REASONS = {1: "closed by the broker", 2: "closed by the client", 3: "keepalive timeout (client)",
           4: "replaced by a second connection", 5: "dropped on purpose (storm)"}
BROKER_CLOSED, CLIENT_CLOSED, KEEPALIVE, REPLACED, DROPPED = 1, 2, 3, 4, 5
REFUSED_UNAVAILABLE = 1003  # CONNACK 3: over the new-connection limit, or banned
FINDING_KINDS = ("mqtt_unexplained_disconnect", "mqtt_missed_disconnect", "mqtt_false_refusal",
                 "mqtt_missed_refusal", "mqtt_limited_while_respecting")
RATE_ROWS = ("mqtt.publishIn", "mqtt.publishOut", "mqtt.connectionMessages")
DEFAULT_KEEPALIVE_S = 60.0  # paho-mqtt's default
NEAR = 0.9
MAX_POINTS = 1200  # series buckets at most
RULE = ("A broker-side disconnect is a finding only when, under every arrival order the messages' own send, "
        "acknowledgement and connection-loss times allow, no documented MQTT limit and no innocent cause can "
        "explain it; a message acknowledged although its window surely held the count already, a connect refused "
        "that neither the new-connection limit nor a possible ban can explain, and a connect accepted over the "
        "limit or during a certain ban are findings. Everything these bounds leave open is undecided.")
_EPS = 1e-6
_BIG = 1e12  # (device, time) composites: device * _BIG + seconds, one sorted line for every device


@dataclass
class Spans:
    """Connections: per accepted connect, its device, CONNECT send, CONNACK and loss (NaN: open at the end)."""

    device: np.ndarray  # device code
    sent: np.ndarray
    acked: np.ndarray
    end: np.ndarray  # when the loss was seen (run end when still open)
    reason: np.ndarray  # disconnect status, 0 when still open at the end
    closed: np.ndarray  # bool: a disconnect sample ended it
    disconnect_index: np.ndarray  # sample index of the disconnect (-1: none)
    connect_index: np.ndarray

    def __len__(self) -> int:
        return len(self.device)


@dataclass
class RuleReport:
    """One broker row as the run exercised it."""

    limit: str
    count: int
    window: float | None
    key: str
    messages: int = 0
    acknowledged: int = 0
    unanswered: int = 0
    keys: int = 0
    max_surely_in_window: int = 0
    max_possibly_in_window: int = 0
    tested: bool = False
    missed: int = 0  # findings: acknowledged although surely over
    undecided: int = 0
    refused: int = 0  # newConnections: 1003 refusals
    justified: int = 0
    false_refusals: int = 0
    undecided_refusals: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Pick:
    """The samples of one op as plain arrays."""

    index: np.ndarray
    dev: np.ndarray  # device code per sample
    key: np.ndarray  # the sample's own key code
    sent: np.ndarray
    latency: np.ndarray
    status: np.ndarray
    nbytes: np.ndarray


def has_mqtt(samples: Samples) -> bool:
    """Whether the run recorded any MQTT sample (the ``mqtt`` block of summary.json exists only then)."""
    if not len(samples):
        return False
    codes = [i for i, name in enumerate(samples.op_names) if name in (CONNECT, PUBLISH, DISCONNECT)]
    return bool(codes) and bool(np.isin(samples.op, codes).any())


def _device_of(key_name: str) -> str:
    """``<deviceId>:<topic>`` → the device; a bare id is its own device."""
    return key_name.split(":", 1)[0]


def _topic_allowed(key_name: str) -> bool:
    """A publish on the connecting device's own state topic cannot be refused for its topic."""
    dev, _, topic = key_name.partition(":")
    return not topic or topic == f"losant/{dev}/state"


class _Devices:
    """Device ids interned from the sample keys of every MQTT op."""

    def __init__(self, samples: Samples) -> None:
        self.samples = samples
        self.names: list[str] = []
        self.code: dict[str, int] = {}
        self._of_key = np.full(len(samples.key_names) + 1, -1, np.int64)

    def intern(self, name: str) -> int:
        c = self.code.get(name)
        if c is None:
            c = self.code[name] = len(self.names)
            self.names.append(name)
        return c

    def pick(self, op: str) -> _Pick:
        s = self.samples
        i = s.op_index(op)
        idx = np.flatnonzero(s.op == i) if i is not None else np.zeros(0, np.int64)
        keys = s.key[idx].astype(np.int64)
        for k in np.unique(keys).tolist():
            if self._of_key[k] < 0:
                name = s.key_names[k] if k < len(s.key_names) else str(k)
                self._of_key[k] = self.intern(_device_of(name))
        return _Pick(idx, self._of_key[keys], keys, s.sent[idx].astype(float), s.latency[idx].astype(float),
                     s.status[idx].astype(np.int64), s.nbytes[idx].astype(np.int64))


def build_spans(conn: _Pick, disc: _Pick, t_end: float) -> Spans:
    """Pair accepted connects with the device's disconnects, oldest open connection first.

    A device holds one connection at a time, so a disconnect seen while two are open (a
    second CONNECT of the same client id replaces the first) ends the older one. A third
    accepted connect closes the oldest still open without a disconnect sample ("replaced").
    """
    ok = conn.status == 200
    c_dev, c_sent, c_ack, c_idx = conn.dev[ok], conn.sent[ok], conn.sent[ok] + conn.latency[ok], conn.index[ok]
    order = np.lexsort((c_sent, c_dev))
    c_dev, c_sent, c_ack, c_idx = c_dev[order], c_sent[order], c_ack[order], c_idx[order]
    n = len(c_dev)
    end = np.full(n, t_end)
    reason = np.zeros(n, np.int64)
    closed = np.zeros(n, bool)
    didx = np.full(n, -1, np.int64)
    # one time-ordered event list: (device, time, 0 = connect span i / 1 = disconnect j)
    dev = np.concatenate((c_dev, disc.dev))
    t = np.concatenate((c_sent, disc.sent))
    what = np.concatenate((np.zeros(n, np.int64), np.ones(len(disc.dev), np.int64)))
    ref = np.concatenate((np.arange(n), np.arange(len(disc.dev))))
    events = np.lexsort((what, t, dev))
    open_: list[int] = []
    current = -1
    for e in events.tolist():
        d = int(dev[e])
        if d != current:
            current, open_ = d, []
        i = int(ref[e])
        if what[e] == 0:
            if len(open_) >= 2:
                old = open_.pop(0)
                end[old], reason[old] = c_sent[i], REPLACED
            open_.append(i)
        elif open_:
            old = open_.pop(0)
            end[old], reason[old], closed[old], didx[old] = disc.sent[i], disc.status[i], True, disc.index[i]
    return Spans(c_dev, c_sent, c_ack, end, reason, closed, didx, c_idx)


def _span_of(spans: Spans, dev: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Index of the span of ``dev`` open at ``t`` (CONNECT sent <= t <= loss), else -1."""
    if not len(spans) or not len(dev):
        return np.full(len(dev), -1, np.int64)
    base = float(min(spans.sent.min(), t.min()))
    big = 1e12
    s_comp = spans.device * big + (spans.sent - base)
    q = dev * big + (t - base)
    i = np.searchsorted(s_comp, q, "right") - 1
    ok = i >= 0
    ii = np.maximum(i, 0)
    ok &= (spans.device[ii] == dev) & (t <= spans.end[ii] + SLACK)
    return np.where(ok, i, -1)


def _could_sure(calls: KeyedCalls, model: str, count: int, window: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For the messages without an answer: (sample positions, could be over, surely over, most and fewest
    accepted messages of the key in its window before it; -1 under the token bucket)."""
    maybe, acc = calls.maybe, calls.acc
    if maybe is acc or not len(maybe):
        e = np.zeros(0, np.int64)
        return e, e.astype(bool), e.astype(bool), e, e
    is_acc = np.zeros(len(maybe), bool)
    is_acc[calls.acc_in_maybe] = True
    pos = np.flatnonzero(~is_acc)
    xs, xe = maybe.s[pos], maybe.e[pos]
    if model == "token_bucket":
        rate = count / window
        lo = tokens_lo(calls, maybe, xs, xe, count, rate, 1)
        hi = tokens_hi(calls, acc, xs, xe, count, rate)
        return maybe.index_at(pos), lo < 1.0, hi < 1.0 - _EPS, np.full(len(pos), -1), np.full(len(pos), -1)
    if model == "fixed":
        could = could_fixed(calls, maybe, xs, xe, window, 0.0, 1)
        sure = sure_fixed(calls, acc, xs, xe, window, 0.0)
    else:
        could = could_sliding(maybe, xs, xe, window, 1)
        sure = sure_sliding(acc, xs, xe, window)
    return maybe.index_at(pos), could >= count, sure >= count, could, sure


def _peaks(calls: KeyedCalls, window: float) -> tuple[int, int]:
    """Sliding peaks (most surely / possibly in one window), exact, over the accepted messages."""
    acc, maybe = calls.acc, calls.maybe
    if not len(maybe):
        return 0, 0
    could = could_sliding(maybe, maybe.s, maybe.e, window, 0)
    sure = sure_sliding(acc, acc.s, acc.e, window) + 1 if len(acc) else np.zeros(1, np.int64)
    return int(sure.max()), int(could.max())


@dataclass
class _RateResult:
    report: RuleReport
    missed_index: np.ndarray  # sample indices of the acknowledged messages surely over
    missed_value: np.ndarray
    undecided: int
    cand_index: np.ndarray  # sample indices of unanswered messages, with could / sure over
    cand_could: np.ndarray
    cand_sure: np.ndarray
    cand_could_n: np.ndarray  # most accepted messages of the key in the window before it (-1: not counted)
    cand_sure_n: np.ndarray  # fewest


def _judge_rate(limit: Limit, model: str, index: np.ndarray, key: np.ndarray, sent: np.ndarray,
                latency: np.ndarray, status: np.ndarray) -> _RateResult:
    window = float(limit.window or 15.0)
    report = RuleReport(limit.name, limit.count, limit.window, limit.key)
    empty = np.zeros(0, np.int64)
    if not len(index):
        return _RateResult(report, empty, empty.astype(float), 0, empty, empty.astype(bool), empty.astype(bool),
                           empty, empty)
    _, kc = np.unique(key, return_inverse=True)
    calls = arrange(index, kc.astype(np.int64), sent, latency, np.where(status == 200, 200, 0).astype(np.int64),
                    window)
    j = judge(calls, model, limit.count, window)
    report.messages = len(calls)
    report.acknowledged = len(calls.acc)
    report.unanswered = calls.n_unk
    report.keys = int(kc.max()) + 1
    report.max_surely_in_window, report.max_possibly_in_window = _peaks(calls, window)
    report.missed = int(j.acc_missed.sum())
    report.undecided = int(j.acc_undecided.sum())
    missed = np.flatnonzero(j.acc_missed)
    value = j.acc_sure[missed]
    if np.isnan(value).any():
        value = sure_sliding(calls.acc, calls.acc.s[missed], calls.acc.e[missed], window).astype(float)
    cidx, ccould, csure, could_n, sure_n = _could_sure(calls, model, limit.count, window)
    report.tested = report.max_possibly_in_window >= math.ceil(NEAR * limit.count) or bool(ccould.any())
    return _RateResult(report, calls.acc.index_at(missed), value, report.undecided, cidx, ccould, csure,
                       np.asarray(could_n, np.int64), np.asarray(sure_n, np.int64))


def _sweep(spans: Spans) -> tuple[np.ndarray, np.ndarray]:
    """Times of every CONNACK and loss in order (a loss first at a tie) and the connections open after each."""
    ends = spans.end[spans.closed | (spans.reason == REPLACED)]
    t = np.concatenate((ends, spans.acked))
    step = np.concatenate((np.full(len(ends), -1), np.ones(len(spans.acked), np.int64)))
    order = np.lexsort((step, t))
    return t[order], np.cumsum(step[order])


def _peak(spans: Spans) -> int:
    """Most connections open at once (exact: a sweep over CONNACKs and losses)."""
    level = _sweep(spans)[1]
    return int(level.max()) if len(level) else 0


def _peak_per_bucket(t0: float, bucket: float, nb: int, spans: Spans) -> np.ndarray:
    """Most connections open at once within each bucket.

    Why: a connection shorter than a bucket (a probed device is closed by the broker within a
    second of its CONNACK) never shows in a count taken at the buckets' ends, so a chart of
    that count says 0 where the run held connections; the peak cannot hide them.
    """
    t, level = _sweep(spans)
    idx = np.searchsorted(t, t0 + bucket * np.arange(nb), "right")  # open at each bucket's start
    peak = np.where(idx > 0, level[np.maximum(idx - 1, 0)], 0).astype(np.int64)
    if len(t):
        np.maximum.at(peak, ((t - t0) // bucket).astype(np.int64).clip(0, nb - 1), level)
    return peak


def _series(t0: float, t_end: float, spans: Spans, conn_ok_t: np.ndarray, disc_t: np.ndarray,
            window: float) -> dict[str, Any]:
    span_s = max(t_end - t0, 1e-9)
    bucket = max(1.0, math.ceil(span_s / MAX_POINTS))
    nb = int(span_s // bucket) + 1
    edges = t0 + bucket * np.arange(1, nb + 1)
    starts = np.sort(spans.acked)
    ends = np.sort(np.where(spans.closed | (spans.reason == REPLACED), spans.end, np.inf))
    connected = np.searchsorted(starts, edges, "right") - np.searchsorted(ends, edges, "right")
    peak = _peak_per_bucket(t0, bucket, nb, spans)
    n_win = int(span_s // window) + 1
    new_conn = np.bincount(((conn_ok_t - t0) // window).astype(np.int64).clip(0, n_win - 1), minlength=n_win)
    disc = np.bincount(((disc_t - t0) // bucket).astype(np.int64).clip(0, nb - 1), minlength=nb)
    ok = np.sort(conn_ok_t)
    sliding = np.searchsorted(ok, edges, "right") - np.searchsorted(ok, edges - window, "right")
    return {"t0": t0, "bucket_s": bucket, "connected": connected.tolist(), "connected_peak": peak.tolist(),
            "disconnects": disc.tolist(),
            "new_connection_window_s": window, "new_connections": new_conn.tolist(),
            "new_connections_last_window": sliding.tolist()}


def _window(limit: Limit) -> float:
    return float(limit.window or 15.0)


def _storms(drop: _Pick, disc: _Pick, spans: Spans, t_end: float, new_limit: Limit) -> list[dict[str, Any]]:
    """Each drop on purpose (or burst of reason-5 disconnects): how many it dropped, how long until as many
    devices were connected again, and the least time the new-connection limit allows for that."""
    times = sorted(drop.sent.tolist())
    if not times:
        t5 = np.sort(disc.sent[disc.status == DROPPED])
        if len(t5):
            times = [float(t5[0])] + [float(b) for a, b in zip(t5[:-1], t5[1:]) if b - a > _window(new_limit)]
    out = []
    starts = spans.acked
    base = float(spans.sent.min()) if len(spans) else 0.0
    comp = spans.device * _BIG + (spans.sent - base)  # sorted: build_spans orders by device, then CONNECT
    for k, at in enumerate(times):
        nxt = times[k + 1] if k + 1 < len(times) else t_end
        before = int(np.count_nonzero((starts <= at) & (spans.end > at)))
        lost = ((spans.acked <= at) & (spans.end >= at - SLACK) & (spans.end <= nxt) & spans.closed
                & np.isin(spans.reason, (BROKER_CLOSED, DROPPED)))
        dropped = int(np.count_nonzero(lost))
        # when was each dropped device connected again (its next accepted connect after the drop)?
        devs = np.unique(spans.device[lost])
        nxt_i = np.searchsorted(comp, devs * _BIG + (at - base), "left")
        ok = nxt_i < len(spans)
        ok[ok] = spans.device[nxt_i[ok]] == devs[ok]
        back_arr = np.sort(np.where(ok, spans.acked[np.minimum(nxt_i, len(spans) - 1)], math.inf))
        recovered = int(np.count_nonzero(back_arr <= nxt))
        full = bool(dropped) and recovered == dropped
        count, window = new_limit.count, float(new_limit.window or 15.0)
        least = (math.ceil(dropped / count) - 1) * window if dropped else 0.0
        half = float(back_arr[(dropped - 1) // 2] - at) if dropped else math.inf
        out.append({"at": at, "connected_before": before, "dropped": dropped, "reconnected": recovered,
                    "recovered": full, "recovery_s": float(back_arr[-1] - at) if full else None,
                    "half_recovery_s": half if half < math.inf else None, "least_by_limit_s": least,
                    "limit": f"{count:,} new connections per {window:g} s per application"})
    return out


PROBE_ROW = "mqtt.publishIn"  # the broker row a probe pushes (harness/users/mqtt.py: rounds of count + 1)
PROBE_EPISODES_SHOWN = 100


@dataclass
class _SpanVerdicts:
    judged: np.ndarray  # broker-side disconnects judged
    unexplained: np.ndarray
    undecided: np.ndarray
    rate_sure: np.ndarray  # surely closed for a rate limit (a ban follows)
    offence_lo: np.ndarray  # the earliest instant the offence can have happened


@dataclass
class _ConnectVerdicts:
    dev: np.ndarray
    sent: np.ndarray
    refused_in_ban: np.ndarray  # refused (CONNACK 3) while surely banned: justified
    false_refusal: np.ndarray
    accepted_in_ban: np.ndarray  # a finding
    undecided_refusal: np.ndarray
    undecided_accept: np.ndarray


def _probe_block(limit: Limit, policy: Any, res: _RateResult, spans: Spans, cand_span: np.ndarray,
                 sv: _SpanVerdicts, names: list[str], cv: _ConnectVerdicts,
                 undecided: Mapping[str, int]) -> dict[str, Any]:
    """What the probe of ``mqtt.publishIn`` showed (docs/LIMITS.md, "MQTT probe"): each round of
    ``count + 1`` messages should end with a disconnect at the message over the count (onset
    bounds: the accepted messages of its key surely / possibly in its window), a reconnect refused
    during the ban and one accepted after it. A view of the judge's findings, never new ones."""
    count = limit.count
    n = len(spans)
    onset_could = np.full(n, -1, np.int64)
    onset_sure = np.full(n, -1, np.int64)
    over_sure = np.zeros(n, bool)
    ok = cand_span >= 0
    if ok.any():
        np.maximum.at(onset_could, cand_span[ok], res.cand_could_n[ok])
        np.maximum.at(onset_sure, cand_span[ok], res.cand_sure_n[ok])
        over_sure[cand_span[ok & res.cand_sure]] = True
    judged = sv.judged
    at_limit = judged & over_sure & ~sv.unexplained & ~sv.undecided  # disconnected for a message over the count
    exact = at_limit & (onset_sure == count) & (onset_could == count)
    missed = int(res.report.missed)
    episodes: list[dict[str, Any]] = []
    nxt_same = np.zeros(n, bool)
    if n > 1:
        nxt_same[:-1] = spans.device[1:] == spans.device[:-1]
    refused_in_ban = 0
    accepted_after = 0
    offences: dict[int, int] = {}
    for sp in np.flatnonzero(judged).tolist():  # spans are in device order, then time
        dev, end = int(spans.device[sp]), float(spans.end[sp])
        k = offences[dev] = offences.get(dev, 0) + 1
        back = float(spans.sent[sp + 1]) if nxt_same[sp] else math.inf
        mine = (cv.dev == dev) & (cv.sent >= end - SLACK) & (cv.sent < back)
        during = int(np.count_nonzero(mine & cv.refused_in_ban))
        refused_in_ban += during
        if sv.rate_sure[sp] and math.isfinite(back):
            accepted_after += 1
        state = ("finding" if sv.unexplained[sp] or (mine & (cv.false_refusal | cv.accepted_in_ban)).any()
                 else "undecided" if sv.undecided[sp] or (mine & (cv.undecided_refusal | cv.undecided_accept)).any()
                 else "conforms" if during or math.isfinite(back) else "conforms, ban not checked")
        episodes.append({"device": names[dev] if dev < len(names) else str(dev), "at": end,
                         "onset": {"sure": int(onset_sure[sp]), "could": int(onset_could[sp])},
                         "over_the_count": bool(over_sure[sp]), "refused_during_ban": during,
                         "reconnected_after_s": back - end if math.isfinite(back) else None,
                         "ban_s": {"least": policy.ban_seconds, "most": policy.ban_for(k)}, "state": state})
    episodes = sorted(episodes, key=lambda e: float(e["at"]))[:PROBE_EPISODES_SHOWN]
    false_ref = int(cv.false_refusal.sum())
    in_ban = int(cv.accepted_in_ban.sum())
    findings = missed + int(sv.unexplained.sum()) + false_ref + in_ban
    und = sum(int(v) for v in undecided.values())
    rounds = int(at_limit.sum()) + missed
    if findings:
        verdict = "findings"
    elif und:
        verdict = "undecided"
    elif not rounds:
        verdict = "not tested"
    else:
        verdict = "conforms"
    notes = []
    if not rounds:
        notes.append(f"no message went over the count ({count}) within a window")
    elif verdict != "findings":
        if not refused_in_ban:
            notes.append("the ban was not seen: no reconnect was refused during it")
        if not accepted_after:
            notes.append("no reconnect after a ban was seen")
    return {"limit": limit.name, "count": count, "window_s": limit.window, "verdict": verdict,
            "note": "; ".join(notes),
            "over_the_count": rounds, "disconnected_at_the_limit": int(at_limit.sum()),
            "onset_exact": int(exact.sum()),
            "onset": {"min": int(onset_sure[at_limit].min()) if at_limit.any() else None,
                      "max": int(onset_could[at_limit].max()) if at_limit.any() else None},
            "not_disconnected": missed, "disconnected_early": int(sv.unexplained.sum()),
            "disconnects_undecided": int(sv.undecided.sum()),
            "ban": {"seconds": policy.ban_seconds, "longest_s": policy.ban_max_seconds,
                    "refused_during": refused_in_ban, "accepted_during": in_ban, "refused_after": false_ref,
                    "reconnected_after": accepted_after},
            "findings": findings, "undecided": und,
            "episodes": episodes, "episodes_total": int(judged.sum())}


def analyze_mqtt(samples: Samples, table: LimitsTable, *, app_of: Mapping[str, str] | None = None,
                 keepalive_s: float | None = None, stop_at: float | None = None, pacing_mode: str = "off",
                 probe_limits: Collection[str] = (), max_findings: int = 1000) -> dict[str, Any]:
    """The ``mqtt`` block of summary.json (module docstring); empty dict when the run has no MQTT samples.

    ``app_of``: device id -> application id (default: one application). ``keepalive_s``: the
    devices' MQTT keepalive (default paho's 60 s). ``stop_at``: when the run began stopping;
    a broker-side disconnect seen after it is not judged (the harness and the broker close).
    ``pacing_mode`` "respect": a disconnect a rate limit may explain and a refusal no finding covers
    judge the pacer (``mqtt_limited_while_respecting``), as REST's throttled-while-respecting does.
    ``probe_limits``: the scenario's ``pacing.probe.limits``; naming ``mqtt.publishIn`` (pacing mode
    "probe") adds the ``probe`` block (``_probe_block``).
    """
    if not has_mqtt(samples):
        return {}
    model = table.window_model
    keepalive = float(keepalive_s or DEFAULT_KEEPALIVE_S)
    policy = table.mqtt_policy
    rows = {lim.name: lim for lim in table.mqtt}
    devs = _Devices(samples)
    conn, pub, cmd, disc, drop = (devs.pick(op) for op in (CONNECT, PUBLISH, COMMAND, DISCONNECT, DROP))
    t0 = float(min(samples.sent.min(), samples.planned.min()))
    t_end = float((samples.sent + samples.latency).max())
    spans = build_spans(conn, disc, t_end)
    n_dev = len(devs.names)
    # messages of each span; an unanswered one was decided before its connection was lost
    pub_span = _span_of(spans, pub.dev, pub.sent)
    in_span = pub_span >= 0
    pub_lat = pub.latency.copy()
    lost = in_span & (pub.status != 200)
    pub_lat[lost] = np.minimum(pub_lat[lost], np.maximum(spans.end[pub_span[lost]] - pub.sent[lost], 0.0))
    cmd_span = _span_of(spans, cmd.dev, cmd.sent)
    cmd_recv_span = _span_of(spans, cmd.dev, cmd.sent + cmd.latency)
    cmd_lat = cmd.latency.copy()
    cl = (cmd_span >= 0) & (cmd.status != 200)
    cmd_lat[cl] = np.minimum(cmd_lat[cl], np.maximum(spans.end[cmd_span[cl]] - cmd.sent[cl], 0.0))
    cmd_in = np.where(cmd.status == 200, cmd_recv_span, cmd_span)
    findings: list[tuple[int, int, str, float, str]] = []  # (kind, sample, limit, in_window, detail)
    reports: list[RuleReport] = []
    undecided = {"messages": 0, "disconnects": 0, "refusals": 0, "connects": 0}
    span_could = np.zeros(len(spans), bool)  # a message over a rate limit may have ended the connection
    span_sure = np.zeros(len(spans), bool)  # ... surely did (a rate offence: banned)
    span_size = np.zeros(len(spans), bool)  # an unanswered payload over the size cap: closed, not banned
    pos_of = {"pub": pub.index, "cmd": cmd.index}  # sample index -> position: both are ascending

    def mark(sp: np.ndarray, could: np.ndarray, sure: np.ndarray) -> None:
        """Connections whose loss an unanswered message over its count may (surely) explain."""
        span_could[sp[could & (sp >= 0)]] = True
        span_sure[sp[sure & (sp >= 0)]] = True

    def charge(res: _RateResult, spans_of: np.ndarray, which: str) -> None:
        reports.append(res.report)
        undecided["messages"] += res.undecided
        lim = rows[res.report.limit]
        for i, v in zip(res.missed_index.tolist(), res.missed_value.tolist()):
            findings.append((1, i, lim.name, v, f"acknowledged although at least {v:g} accepted messages of its key "
                             f"were surely in its window; documented {lim.count} per {_window(lim):g} s per {lim.key}"))
        sp = spans_of[np.searchsorted(pos_of[which], res.cand_index)]
        mark(sp, res.cand_could, res.cand_sure)

    lim_in = rows.get("mqtt.publishIn")
    in_res: _RateResult | None = None
    if lim_in is not None:
        in_res = _judge_rate(lim_in, model, pub.index, pub.key, pub.sent, pub_lat, pub.status)
        charge(in_res, pub_span, "pub")
    lim_out = rows.get("mqtt.publishOut")
    if lim_out is not None and len(cmd.index):
        # per (device, topic): a device's own commands are keyed by its id, a peripheral's (received on its
        # gateway's connection) by ``<gatewayId>:losant/<peripheralId>/command``
        charge(_judge_rate(lim_out, model, cmd.index, cmd.key, cmd.sent, cmd_lat, cmd.status), cmd_in, "cmd")
    lim_conn = rows.get("mqtt.connectionMessages")
    if lim_conn is not None:
        pk, ck = pub_span >= 0, cmd_in >= 0
        index = np.concatenate((pub.index[pk], cmd.index[ck]))
        res = _judge_rate(lim_conn, model, index, np.concatenate((pub_span[pk], cmd_in[ck])),
                          np.concatenate((pub.sent[pk], cmd.sent[ck])), np.concatenate((pub_lat[pk], cmd_lat[ck])),
                          np.concatenate((pub.status[pk], cmd.status[ck])))
        reports.append(res.report)
        undecided["messages"] += res.undecided
        for i, v in zip(res.missed_index.tolist(), res.missed_value.tolist()):
            findings.append((1, i, lim_conn.name, v, f"delivered although at least {v:g} messages of its connection "
                             f"were surely in its window; documented {lim_conn.count} per {_window(lim_conn):g} s "
                             "per connection"))
        span_all = np.concatenate((pub_span[pk], cmd_in[ck]))
        order = np.argsort(index, kind="stable")
        mark(span_all[order[np.searchsorted(index[order], res.cand_index)]], res.cand_could, res.cand_sure)
    # message size: over the cap and unanswered explains its connection's loss; acknowledged is a finding
    size = rows.get("mqtt.messageSize")
    if size is not None:
        srep = RuleReport(size.name, size.count, None, size.key, messages=len(pub.index))
        over = pub.nbytes > size.count
        srep.tested = bool(over.any())
        srep.acknowledged = int(np.count_nonzero(pub.status == 200))
        srep.unanswered = srep.messages - srep.acknowledged
        for k in np.flatnonzero(over & (pub.status == 200)).tolist():
            srep.missed += 1
            findings.append((1, int(pub.index[k]), size.name, float(pub.nbytes[k]),
                             f"a {int(pub.nbytes[k]):,}-byte payload acknowledged; documented cap {size.count:,} bytes"))
        hit = over & (pub.status != 200) & in_span
        span_size[pub_span[hit]] = True
        reports.append(srep)
    # innocent causes of a broker-side close
    key_names = samples.key_names
    topic_doubt = np.zeros(len(spans), bool)
    for k in np.flatnonzero(lost).tolist():
        name = key_names[pub.key[k]] if pub.key[k] < len(key_names) else ""
        if not _topic_allowed(name):
            topic_doubt[pub_span[k]] = True
    last_alive = spans.sent.copy()
    ackd = in_span & (pub.status == 200)
    np.maximum.at(last_alive, pub_span[ackd], pub.sent[ackd])
    recv = (cmd_in >= 0) & (cmd.status == 200)
    np.maximum.at(last_alive, cmd_in[recv], cmd.sent[recv])
    offence_lo = last_alive  # an offending message was processed after every acknowledged one was sent
    # publishes of a device that never connected itself (a gateway's peripheral keyed by its own id) went over
    # some other connection this judge cannot name: no connection's per-connection count is then complete
    orphans = bool(len(pub.index)) and not np.isin(pub.dev, spans.device).all()
    keep_doubt = spans.end - last_alive > 1.5 * keepalive - 1.0  # the broker sweeps once a second
    drop_sure = np.zeros(len(spans), bool)
    drop_could = np.zeros(len(spans), bool)
    for s, lat in zip(drop.sent.tolist(), drop.latency.tolist()):
        e = s + max(lat, 0.0) + SLACK
        after = spans.end >= s - SLACK
        drop_could |= after & (spans.sent <= e)
        drop_sure |= after & (spans.acked <= s + SLACK)
    others = np.zeros(len(spans), bool)  # a second accepted connect of the device sent during the span
    other_sure = np.zeros(len(spans), bool)
    nxt_same = np.zeros(len(spans), bool)
    if len(spans) > 1:
        nxt_same[:-1] = spans.device[1:] == spans.device[:-1]
        nxt_idx = np.minimum(np.arange(len(spans)) + 1, len(spans) - 1)
        others = nxt_same & (spans.sent[nxt_idx] <= spans.end + SLACK)
        other_sure = others & (spans.acked[nxt_idx] <= spans.end + SLACK)
    pending = conn.status == 0  # a CONNECT without CONNACK may still have replaced the open connection
    p_span = _span_of(spans, conn.dev[pending], conn.sent[pending])
    p_own = spans.connect_index[np.maximum(p_span, 0)] != conn.index[pending]
    others[p_span[(p_span >= 0) & p_own]] = True
    # judge each broker-side disconnect
    # reason 5: the broker's answer to the harness's drop named the device (harness.users.mqtt_hub), so the
    # drop closed it: not judged. A loss the answer could not attribute stays reason 1 and is judged here,
    # the drop's own bounds explaining it where they cover the connection
    broker_side = spans.closed & (spans.reason == BROKER_CLOSED)
    judged_d = broker_side.copy()
    not_judged = judged_d & (spans.end >= stop_at) if stop_at is not None else np.zeros(len(spans), bool)
    judged_d &= ~not_judged
    explained_sure = span_sure | span_size | drop_sure | other_sure
    explained_could = span_could | drop_could | others | keep_doubt | topic_doubt | explained_sure | orphans
    unexplained = judged_d & ~explained_could
    und_d = judged_d & explained_could & ~explained_sure
    respecting = pacing_mode == "respect"  # the pacer promised to keep every limit: a rate disconnect judges it
    paced_out = judged_d & span_could & ~span_size & ~drop_sure & ~other_sure & ~unexplained if respecting else \
        np.zeros(len(spans), bool)
    und_d &= ~paced_out
    undecided["disconnects"] = int(und_d.sum())
    for sp in np.flatnonzero(paced_out).tolist():
        findings.append((4, int(spans.disconnect_index[sp]), "", -1.0,
                         "the broker closed the connection for a message rate limit (one of its messages may have been "
                         "over its count) although the pacing mode (respect) promised to stay under the limits"))
    for sp in np.flatnonzero(unexplained).tolist():
        findings.append((0, int(spans.disconnect_index[sp]), "", -1.0,
                         "the broker closed the connection although no message of it can have been over a documented "
                         "MQTT limit under any arrival order its bounds allow, nothing was dropped on purpose, no "
                         "second connection of the device was opening, and it was not idle past its keepalive "
                         f"({keepalive:g} s)"))
    rate_possible = broker_side & span_could
    # a ban surely followed only when no other cause can have closed the connection before the offence
    rate_sure = (broker_side & span_sure
                 & ~(drop_could | others | keep_doubt | topic_doubt | span_size))
    # connects: the new-connection limit per application, and bans
    new_lim = rows.get("mqtt.newConnections")
    app = np.zeros(len(conn.index), np.int64)
    if app_of:
        apps: dict[str, int] = {}
        app = np.asarray([apps.setdefault(app_of.get(devs.names[d], ""), len(apps)) for d in conn.dev.tolist()],
                         np.int64)
    c_status = np.where(conn.status == 200, 200, np.where(conn.status == REFUSED_UNAVAILABLE, 429,
                                                          np.where(conn.status == 0, 0, -1)))
    judged_c = c_status >= 0
    refusal_could = np.zeros(len(conn.index), bool)
    refusal_sure = np.zeros(len(conn.index), bool)
    limit_missed = np.zeros(len(conn.index), bool)
    limit_missed_value = np.zeros(len(conn.index))
    acc_undecided = np.zeros(len(conn.index), bool)
    nrep = None
    if new_lim is not None and judged_c.any():
        nrep = RuleReport(new_lim.name, new_lim.count, new_lim.window, new_lim.key)
        sel = np.flatnonzero(judged_c)
        window = _window(new_lim)
        calls = arrange(sel, app[sel], conn.sent[sel], conn.latency[sel], c_status[sel].astype(np.int64), window)
        j = judge(calls, model, new_lim.count, window)
        thr_pos = calls.thr.index
        refusal_could[thr_pos] = ~j.thr_false
        refusal_sure[thr_pos] = ~j.thr_false & ~j.thr_undecided
        acc_pos = calls.acc.index
        limit_missed[acc_pos] = j.acc_missed
        vals = j.acc_sure.copy()
        if np.isnan(vals[j.acc_missed]).any():
            miss = np.flatnonzero(j.acc_missed)
            vals[miss] = sure_sliding(calls.acc, calls.acc.s[miss], calls.acc.e[miss], window)
        limit_missed_value[acc_pos] = vals
        acc_undecided[acc_pos] = j.acc_undecided
        nrep.messages, nrep.acknowledged, nrep.refused = len(calls), len(calls.acc), len(calls.thr)
        nrep.unanswered = calls.n_unk
        nrep.keys = int(app.max()) + 1 if len(app) else 0
        nrep.max_surely_in_window, nrep.max_possibly_in_window = _peaks(calls, window)
        nrep.tested = nrep.max_possibly_in_window >= math.ceil(NEAR * new_lim.count) or nrep.refused > 0
        reports.append(nrep)
    # bans: an earlier broker-side disconnect of the device that a rate limit may (surely) explain
    ban_could = np.zeros(len(conn.index), bool)
    ban_sure = np.zeros(len(conn.index), bool)
    by_dev: dict[int, list[int]] = {}
    for sp in np.flatnonzero(rate_possible).tolist():
        by_dev.setdefault(int(spans.device[sp]), []).append(sp)
    for k in np.flatnonzero(np.isin(conn.dev, list(by_dev)) & (c_status >= 0)).tolist():
        lst = by_dev[int(conn.dev[k])]
        s, e = conn.sent[k], conn.sent[k] + conn.latency[k]
        offences = 0
        for sp in sorted(lst, key=lambda x: spans.end[x]):
            if spans.end[sp] > e + SLACK:
                break
            offences += 1
            if s - SLACK < spans.end[sp] + policy.ban_for(offences):
                ban_could[k] = True
            if rate_sure[sp] and e + SLACK < offence_lo[sp] + policy.ban_seconds and s >= spans.end[sp] - SLACK:
                ban_sure[k] = True
    refused = c_status == 429
    false_ref = refused & ~refusal_could & ~ban_could
    just_ref = refused & (refusal_sure | ban_sure)
    und_ref = refused & ~false_ref & ~just_ref
    paced_ref = refused & ~false_ref if respecting else np.zeros(len(conn.index), bool)
    und_ref &= ~paced_ref
    undecided["refusals"] = int(und_ref.sum())
    accepted = c_status == 200
    missed_ban = accepted & ban_sure
    undecided["connects"] = int((accepted & (acc_undecided | (ban_could & ~ban_sure)) & ~limit_missed
                                 & ~missed_ban).sum())
    if nrep is not None:
        nrep.false_refusals = int(false_ref.sum())
        nrep.justified = int(just_ref.sum())
        nrep.undecided_refusals = int(und_ref.sum())
        nrep.missed = int((accepted & limit_missed).sum())
        nrep.undecided = undecided["connects"]
    for k in np.flatnonzero(paced_ref).tolist():
        findings.append((4, int(conn.index[k]), new_lim.name if new_lim else "", -1.0,
                         "refused (CONNACK 3) although the pacing mode (respect) promised to stay under the "
                         "new-connection limit and to wait out bans"))
    for k in np.flatnonzero(false_ref).tolist():
        findings.append((2, int(conn.index[k]), new_lim.name if new_lim else "", -1.0,
                         "refused (CONNACK 3) although fewer than the documented count of accepted connects of its "
                         "application can have been in its window, and no ban can cover it"))
    for k in np.flatnonzero(accepted & limit_missed).tolist():
        v = float(limit_missed_value[k])
        findings.append((3, int(conn.index[k]), new_lim.name if new_lim else "", v,
                         f"accepted although at least {v:g} accepted connects of its application were surely in its "
                         f"window; documented {new_lim.count if new_lim else 0} per "
                         f"{_window(new_lim) if new_lim else 15.0:g} s per application"))
    for k in np.flatnonzero(missed_ban & ~limit_missed).tolist():
        findings.append((3, int(conn.index[k]), "mqtt.ban", -1.0,
                         f"accepted although the device was surely banned (a disconnect a rate limit surely explains, "
                         f"less than {policy.ban_seconds:g} s before)"))
    # figures
    ok_dev = conn.dev[accepted]
    first_ack = np.full(n_dev, math.inf)  # each device's first CONNACK
    np.minimum.at(first_ack, ok_dev, (conn.sent + conn.latency)[accepted])
    connected_devs = int(np.isfinite(first_ack).sum())
    reconnects = int(accepted.sum()) - connected_devs
    fleet = len(np.unique(conn.dev))
    attempts_after_first = int(len(conn.index) - fleet)
    codes: dict[str, int] = {}
    for st, n in zip(*np.unique(conn.status, return_counts=True)):
        codes[str(int(st))] = int(n)
    by_reason: dict[str, int] = {}
    for st, n in zip(*np.unique(disc.status, return_counts=True)):
        by_reason[REASONS.get(int(st), f"code {int(st)}")] = int(n)
    ban_only = refused & ~refusal_could & ban_could  # refused where only a ban can explain it
    bans = 0  # broker-side disconnects followed by such a refusal (the device's latest one before it)
    bc = np.flatnonzero(broker_side)
    if ban_only.any() and len(bc):
        bc = bc[np.lexsort((spans.end[bc], spans.device[bc]))]
        base = float(min(spans.end[bc].min(), conn.sent.min()))
        line = spans.device[bc] * _BIG + (spans.end[bc] - base)
        j = np.searchsorted(line, conn.dev[ban_only] * _BIG + (conn.sent[ban_only] - base + SLACK), "right") - 1
        hit = j >= 0
        hit[hit] = spans.device[bc[j[hit]]] == conn.dev[ban_only][hit]
        bans = len(np.unique(j[hit]))
    full_t = None
    if connected_devs and connected_devs == fleet:
        full_t = float(first_ack[np.isfinite(first_ack)].max() - conn.sent.min())
    storms = _storms(drop, disc, spans, t_end, new_lim) if new_lim is not None else []
    series = _series(t0, t_end, spans, conn.sent[accepted] + conn.latency[accepted], disc.sent,
                     _window(new_lim) if new_lim else 15.0)
    series["new_connection_limit"] = new_lim.count if new_lim else None
    # findings, earliest first, as conformance.Finding dicts (one list, one total with the REST judge's)
    kinds = [FINDING_KINDS[f[0]] for f in findings]
    by_kind = {k: kinds.count(k) for k in FINDING_KINDS if k in kinds}
    shown = sorted(findings, key=lambda f: float(samples.sent[f[1]]))[:max_findings]
    listed = []
    for k, i, lim_name, value, detail in shown:
        lim = rows.get(lim_name)
        op = samples.op_names[samples.op[i]]
        key = samples.key_names[samples.key[i]] if samples.key[i] < len(samples.key_names) else str(samples.key[i])
        listed.append(Finding(FINDING_KINDS[k], lim_name, op, key, float(samples.sent[i] + samples.latency[i] / 2),
                              value, lim.count if lim else 0, lim.window if lim else None, detail).to_dict())
    und_total = sum(undecided.values())
    tested = any(r.tested for r in reports) or bool(judged_d.any()) or bool(refused.any())
    probe = None
    if pacing_mode == "probe" and PROBE_ROW in probe_limits and lim_in is not None and in_res is not None:
        probe = _probe_block(
            lim_in, policy, in_res, spans, pub_span[np.searchsorted(pub.index, in_res.cand_index)],
            _SpanVerdicts(judged_d, unexplained, und_d, rate_sure, offence_lo), devs.names,
            _ConnectVerdicts(conn.dev, conn.sent, refused & ban_sure, false_ref, missed_ban & ~limit_missed,
                             und_ref, accepted & ban_could & ~ban_sure & ~missed_ban), undecided)
    return {
        "devices": fleet,
        "connects": {"attempts": int(len(conn.index)), "accepted": int(accepted.sum()),
                     "by_status": codes, "refused_unavailable": int(refused.sum()),
                     "no_connack": int(np.count_nonzero(conn.status == 0)),
                     "reconnects": reconnects, "attempts_after_first": attempts_after_first},
        "connected": {"peak": _peak(spans),
                      "at_end": int(series["connected"][-1]) if series["connected"] else 0,
                      "devices_ever_connected": connected_devs,
                      "full_connection_s": full_t,
                      "full_connection_note": ("from the first CONNECT to the last device's first CONNACK" if full_t
                                               is not None else f"{connected_devs:,} of {fleet:,} devices ever "
                                               "connected")},
        "storms": storms,
        "disconnects": {"total": int(len(disc.index)), "by_reason": by_reason,
                        "broker_closed_judged": int(judged_d.sum()),
                        "broker_closed_after_stop": int(not_judged.sum()),
                        "explained": int((judged_d & explained_sure).sum()),
                        "explained_by_limit": int((judged_d & (span_sure | span_size)).sum()),
                        "explained_by_drop": int((judged_d & drop_sure).sum()),
                        "unexplained": int(unexplained.sum()), "undecided": int(und_d.sum()),
                        "limited_while_respecting": int(paced_out.sum())},
        "bans": {"episodes": bans, "refusals": int(refused.sum()), "refusals_only_a_ban_explains": int(ban_only.sum()),
                 "refusals_the_connection_limit_explains": int((refused & refusal_sure).sum()),
                 "refusals_justified": int(just_ref.sum()),
                 "accepted_during_ban": int((missed_ban & ~limit_missed).sum()), "refusals_false": int(false_ref.sum()),
                 "refusals_while_respecting": int(paced_ref.sum()),
                 "refusals_undecided": int(und_ref.sum()),
                 "policy": {"ban_seconds": policy.ban_seconds, "ban_factor": policy.ban_factor,
                            "ban_max_seconds": policy.ban_max_seconds}},
        "commands": {"sent": int(len(cmd.index)), "received": int(np.count_nonzero(cmd.status == 200))},
        "publishes": {"sent": int(len(pub.index)), "acknowledged": int(np.count_nonzero(pub.status == 200)),
                      "unanswered": int(np.count_nonzero(pub.status != 200))},
        "window_model": model, "keepalive_s": keepalive, "slack_s": SLACK,
        "rules": [r.to_dict() for r in reports],
        "findings_total": len(findings), "findings_by_kind": by_kind, "findings": listed,
        "undecided_total": und_total, "undecided_by_kind": undecided,
        "tested": tested, "rule": RULE, "series": series, "devices_seen": n_dev,
        **({"probe": probe} if probe is not None else {}),
    }


def merge_into_conformance(conf: dict[str, Any], block: Mapping[str, Any], max_findings: int = 1000) -> None:
    """Join the MQTT judge's findings and undecided counts to the conformance block, so one total
    (``findings_total``) drives the criterion, the terminal, junit.xml, the report and the exit code."""
    if not block:
        return
    total = int(block.get("findings_total") or 0)
    conf["findings_total"] = int(conf.get("findings_total") or 0) + total
    kinds = dict(conf.get("findings_by_kind") or {})
    for k, n in (block.get("findings_by_kind") or {}).items():
        kinds[k] = kinds.get(k, 0) + int(n)
    conf["findings_by_kind"] = kinds
    merged = list(conf.get("findings") or []) + list(block.get("findings") or [])
    conf["findings"] = sorted(merged, key=lambda f: float(f.get("time") or 0.0))[:max_findings]
    und = int(block.get("undecided_total") or 0)
    conf["undecided_total"] = int(conf.get("undecided_total") or 0) + und
    by = dict(conf.get("undecided_by_kind") or {})
    if und or "mqtt" in by:
        by["mqtt"] = by.get("mqtt", 0) + und
    conf["undecided_by_kind"] = by
    if block.get("tested"):
        conf["tested"] = True
        conf["not_tested_reason"] = ""


def probe_statement(probe: Mapping[str, Any]) -> str:
    """The probe block in one sentence (the terminal, the report and junit.xml print the same words)."""
    count, window = probe.get("count"), probe.get("window_s")
    ban = probe.get("ban") or {}
    onset = probe.get("onset") or {}
    lo, hi = onset.get("min"), onset.get("max")
    at = ("" if lo is None else f" after {lo} accepted messages in the window" if lo == hi
          else f" after {lo} to {hi} accepted messages in the window")
    text = (f"{probe.get('limit')} ({count} per {window:g} s per device and topic): {probe.get('verdict')}; "
            f"{int(probe.get('over_the_count') or 0):,} rounds went over the count, "
            f"{int(probe.get('disconnected_at_the_limit') or 0):,} disconnected at the message over it{at}, "
            f"{int(probe.get('not_disconnected') or 0):,} acknowledged over it, "
            f"{int(probe.get('disconnected_early') or 0):,} disconnected with no message over it; "
            f"reconnects refused during the ban {int(ban.get('refused_during') or 0):,}, accepted during it "
            f"{int(ban.get('accepted_during') or 0):,}, refused after it {int(ban.get('refused_after') or 0):,}, "
            f"accepted after it {int(ban.get('reconnected_after') or 0):,}")
    if probe.get("note"):
        text += f" ({probe['note']})"
    return text
