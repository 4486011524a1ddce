"""Charts: matplotlib figures rendered to self-contained SVG data URIs.

Why SVG in an ``<img src="data:image/svg+xml;base64,...">``: it stays sharp at any
zoom, needs no network or font download (text is drawn as paths), and an ``<img>``
keeps each chart's ids and styles apart from the page and from the other charts.
Why downsample first: the SVG grows with the points drawn, and a person cannot see
more than a few hundred per line; series arrive per time bucket (``figures``), and
anything longer goes through ``lttb`` (largest triangle three buckets, as vegeta's
``lib/lttb``), which keeps peaks that plain striding would drop.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from harness.report.figures import CURVE_QUANTILES, PALETTE  # noqa: E402

MAX_POINTS = 800
P = ParamSpec("P")
#: Legends sit outside the plotting area (right of it), so they never cover a curve.
OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0}
INK, GRID, MUTED = "#1f2937", "#e5e7eb", "#6b7280"
_RC: dict[str, Any] = {
    "font.family": "DejaVu Sans", "font.size": 9, "axes.edgecolor": "#d1d5db", "axes.labelcolor": INK,
    "axes.titlesize": 10, "axes.titleweight": "bold", "axes.titlelocation": "left", "axes.grid": True,
    "grid.color": GRID, "grid.linewidth": 0.6, "axes.spines.top": False, "axes.spines.right": False,
    "xtick.color": MUTED, "ytick.color": MUTED, "legend.frameon": False, "legend.fontsize": 8,
    "svg.fonttype": "path", "lines.linewidth": 1.4,
}


def lttb(x: np.ndarray, y: np.ndarray, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Largest-Triangle-Three-Buckets downsampling to ``n_out`` points (first and last kept).

    Each bucket keeps the point that makes the largest triangle with the point kept
    in the previous bucket and the mean of the next bucket. Vectorised per bucket
    (a Python loop over ``n_out`` buckets, numpy inside each). NaNs are dropped first.

    >>> xs, ys = lttb(np.arange(10.0), np.array([0, 0, 0, 9, 0, 0, 0, 0, 0, 0.0]), 4)
    >>> 9.0 in ys.tolist(), len(xs)
    (True, 4)
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    n = len(x)
    if n_out >= n or n_out < 3:
        return x, y
    edges = np.floor(np.linspace(1, n - 1, n_out - 1)).astype(np.int64)  # n_out - 2 inner buckets
    keep = np.empty(n_out, np.int64)
    keep[0], keep[-1] = 0, n - 1
    a = 0
    for i in range(n_out - 2):
        lo, hi = edges[i], max(edges[i + 1], edges[i] + 1)
        nlo, nhi = hi, (edges[i + 2] if i + 2 < len(edges) else n)
        if nlo >= nhi:
            nlo, nhi = n - 1, n
        cx, cy = x[nlo:nhi].mean(), y[nlo:nhi].mean()
        area = np.abs((x[a] - cx) * (y[lo:hi] - y[a]) - (x[a] - x[lo:hi]) * (cy - y[a]))
        a = lo + int(np.argmax(area))
        keep[i + 1] = a
    return x[keep], y[keep]


def styled(fn: Callable[P, str]) -> Callable[P, str]:
    """Draw and save under the report's rc style (the style must cover drawing, not just creation)."""
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> str:
        with plt.rc_context(_RC):  # type: ignore[arg-type]
            return fn(*args, **kwargs)
    return wrapper


def to_data_uri(fig: Figure) -> str:
    """Render a figure as a base64 SVG data URI and free it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float, h: float, nrows: int = 1, ncols: int = 1, **kw: object) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(nrows, ncols, figsize=(w, h), squeeze=False, **kw)  # type: ignore[call-overload]
    for ax in axes.flat:
        ax.set_axisbelow(True)
    return fig, axes


def _ms(v: np.ndarray) -> np.ndarray:
    return np.asarray(v, float) * 1000.0


def _time_axis(ax: plt.Axes, seconds: float) -> None:
    ax.set_xlabel("time since start (s)" if seconds <= 600 else "time since start (min)")
    if seconds > 600:
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 60:g}"))


@styled
def throughput(times: np.ndarray, rps: Mapping[str, np.ndarray], active: np.ndarray, bucket: float,
               colors: Mapping[str, str] | None = None, steady: tuple[float, float] | None = None) -> str:
    """Requests per second stacked by operation, and active devices below it (shows the ramp).

    ``steady`` (seconds from the start) shades the ramp-up and the stop; a start-up burst
    far above the steady rate is clipped (and its peak written on the chart) so the steady
    rate, what the run is judged on, stays readable.
    """
    fig, axes = _figure(10, 5.2, 2, 1, sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    ax, ax2 = axes[0, 0], axes[1, 0]
    names = list(rps)
    if names and len(times):
        cols = [(colors or {}).get(n) or PALETTE[i % len(PALETTE)] for i, n in enumerate(names)]
        ax.stackplot(times, *[rps[n] for n in names], labels=names, colors=cols, alpha=0.85, step="post")
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.08), ncols=min(len(names), 5))
        total = np.sum([rps[n] for n in names], axis=0)
        if steady is not None:
            inside = (times >= steady[0]) & (times + bucket <= steady[1])
            calm = float(total[inside].max()) if inside.any() else 0.0
            peak = float(total.max())
            if calm > 0 and peak > 2.0 * calm:
                ax.set_ylim(0, calm * 1.6)
                at = float(times[int(np.argmax(total))])
                ax.annotate(f"start-up peak {peak:,.0f} req/s (clipped)", xy=(at, calm * 1.6), xytext=(4, -12),
                            textcoords="offset points", fontsize=7, color=MUTED)
    for a in (ax, ax2):
        if steady is not None and len(times):
            end = float(times[-1]) + bucket
            a.axvspan(0, steady[0], color=MUTED, alpha=0.12, lw=0)
            if steady[1] < end:
                a.axvspan(steady[1], end, color=MUTED, alpha=0.12, lw=0)
    if steady is not None and len(times) and steady[0] > 0:
        ax.text(steady[0] / 2, 1.0, "ramp-up", transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                fontsize=7, color=MUTED)
    ax.set_ylabel("requests / s")
    ax.set_title(f"Throughput by operation (per {bucket:g} s, by actual send time)"
                 + ("; grey: ramp-up and stop, outside the steady window" if steady is not None else ""))
    ax2.step(times, active, where="post", color=INK)
    ax2.fill_between(times, active, step="post", color=INK, alpha=0.08)
    ax2.set_ylabel("active devices")
    ax2.set_title("Simulated devices active (distinct keys with a request in the bucket)")
    _time_axis(ax2, float(times[-1]) if len(times) else 0.0)
    return to_data_uri(fig)


@styled
def errors_over_time(times: np.ndarray, series: Mapping[str, np.ndarray], bucket: float) -> str:
    """Failed calls per bucket, stacked by kind (http, throttled, connection, timeout, other)."""
    fig, axes = _figure(10, 2.8)
    ax = axes[0, 0]
    names = list(series)
    ax.stackplot(times, *[series[n] / bucket for n in names], labels=names,
                 colors=[PALETTE[i % len(PALETTE)] for i in range(len(names))], alpha=0.85, step="post")
    ax.legend(**OUTSIDE)
    ax.set_ylabel("failed calls / s")
    ax.set_title(f"Errors over time by kind (per {bucket:g} s): fault periods show as bands")
    _time_axis(ax, float(times[-1]) if len(times) else 0.0)
    return to_data_uri(fig)


@styled
def percentile_series(times: np.ndarray, series: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
                      ops: Sequence[str], bucket: float) -> str:
    """Small multiples, one per operation: p50/p95/p99 corrected (solid) and response time (dashed)."""
    ops = list(ops)
    ncols = 2 if len(ops) > 1 else 1
    nrows = max((len(ops) + ncols - 1) // ncols, 1)
    fig, axes = _figure(10, 2.6 * nrows + 0.4, nrows, ncols, sharex=True)
    for ax in axes.flat[len(ops):]:
        ax.set_visible(False)
    colors = {"p50": PALETTE[2], "p95": PALETTE[1], "p99": PALETTE[3]}
    for ax, op in zip(axes.flat, ops):
        for label, color in colors.items():
            cor, resp = _ms(series[op]["corrected"][label]), _ms(series[op]["response"][label])
            # a bucket with no neighbour draws no line segment: mark it, or a rare operation's panel is empty
            ax.plot(times, cor, color=color, label=f"{label} corrected", marker="o", ms=3,
                    markevery=_isolated(cor))
            ax.plot(times, resp, color=color, ls="--", lw=1.0, label=f"{label} response time", marker="o",
                    ms=3, mfc="none", markevery=_isolated(resp))
        _log_ms(ax)
        ax.set_title(op)
        ax.set_ylabel("ms")
    for ax in axes[-1]:
        _time_axis(ax, float(times[-1]) if len(times) else 0.0)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncols=3, bbox_to_anchor=(0.5, 1.0 + 0.12 / nrows))
    fig.suptitle(f"Response-time percentiles per {bucket:g} s: corrected = from planned send (solid), "
                 f"response time = from actual send (dashed)", y=1.0 + 0.22 / nrows, fontsize=9, color=MUTED)
    return to_data_uri(fig)


def _isolated(values: np.ndarray) -> list[int]:
    """Indices of finite values whose neighbours are both missing (a line draws nothing there)."""
    ok = np.isfinite(values)
    prev = np.concatenate(([False], ok[:-1]))
    nxt = np.concatenate((ok[1:], [False]))
    return np.flatnonzero(ok & ~prev & ~nxt).tolist()


class _MinorWhenSparse(matplotlib.ticker.Formatter):
    """Labels minor ticks only when the view holds fewer than two labelled major ticks.

    A log axis spanning 3-9 ms has no 1-2-5 tick inside it and would show no number at all.
    """

    def __call__(self, x: float, pos: int | None = None) -> str:
        lo, hi = sorted(self.axis.get_view_interval()) if self.axis is not None else (1.0, 10.0)
        if lo <= 0 or not np.isfinite(lo) or not np.isfinite(hi):
            return ""
        majors = [m * 10.0 ** k for k in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
                  for m in (1, 2, 5) if lo <= m * 10.0 ** k <= hi]
        return "" if len(majors) >= 2 else f"{x:.2g}"


def _log_ms(ax: plt.Axes) -> None:
    """Log y axis labelled in plain milliseconds (0.5, 1, 2, 5, 10, 200), never left without numbers."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_locator(matplotlib.ticker.LogLocator(base=10.0, subs=(3.0, 4.0, 6.0, 7.0, 8.0, 9.0)))
    ax.yaxis.set_minor_formatter(_MinorWhenSparse())


def _quantile_axis(ax: plt.Axes) -> None:
    ax.set_xscale("log")
    ticks = [2, 10, 100, 1000, 10000, 100000]
    ax.set_xticks(ticks, ["50%", "90%", "99%", "99.9%", "99.99%", "99.999%"])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlim(1, 100000)
    ax.set_xlabel("percentile")


def _curve_x() -> np.ndarray:
    return 1.0 / (1.0 - CURVE_QUANTILES)


@styled
def distribution(curves: Mapping[str, Mapping[str, np.ndarray]], ops: Sequence[str],
                 baseline: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                 colors: Mapping[str, str] | None = None) -> str:
    """HDR-style percentile curves per operation: corrected and response time side by side.

    With ``baseline``, its curves are overlaid dashed (the comparison view). A curve stops
    at the highest percentile its sample count resolves (``figures.supported``).
    """
    fig, axes = _figure(10, 3.8, 1, 2, sharey=True)
    x = _curve_x()
    for ax, kind, title in ((axes[0, 0], "corrected", "Corrected latency (from planned send)"),
                            (axes[0, 1], "response", "Response time (from actual send)")):
        for i, op in enumerate(ops):
            color = (colors or {}).get(op) or PALETTE[i % len(PALETTE)]
            ax.plot(x, _ms(curves[op][kind]), color=color, label=op if baseline is None else f"{op} (current)")
            if baseline is not None and op in baseline:
                ax.plot(x, _ms(baseline[op][kind]), color=color, ls="--", lw=1.0, label=f"{op} (baseline)")
        _quantile_axis(ax)
        _log_ms(ax)
        ax.set_title(title)
    axes[0, 0].set_ylabel("ms")
    if ops:
        axes[0, 1].legend(fontsize=7, **OUTSIDE)
    return to_data_uri(fig)


@styled
def lateness(curve: np.ndarray, times: np.ndarray, p99: np.ndarray, threshold_ms: float = 50.0) -> str:
    """Scheduler lateness (sent - planned): its distribution, and its p99 over time against the threshold."""
    fig, axes = _figure(10, 3.2, 1, 2)
    ax, ax2 = axes[0, 0], axes[0, 1]
    ax.plot(_curve_x(), np.maximum(_ms(curve), 0.01), color=PALETTE[0])
    _quantile_axis(ax)
    _log_ms(ax)
    ax.set_ylim(bottom=0.01)
    ax.set_ylabel("ms late")
    ax.set_title("Lateness distribution (sent - planned)")
    ax2.plot(times, _ms(p99), color=PALETTE[0], label="p99 lateness")
    ax2.axhline(threshold_ms, color=PALETTE[3], ls="--", lw=1, label=f"{threshold_ms:g} ms: generator saturated")
    ax2.set_ylabel("ms")
    ax2.set_title("Lateness p99 over time")
    ax2.legend(fontsize=7, **OUTSIDE)
    _time_axis(ax2, float(times[-1]) if len(times) else 0.0)
    return to_data_uri(fig)


@styled
def accepted_per_window(limit: str, count: int, window: float,
                        series: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> str:
    """Accepted calls per sliding window for the busiest keys, against the documented limit line;
    429s drawn apart, as crosses at the accepted count the target had when it refused."""
    fig, axes = _figure(10, 3.2)
    ax = axes[0, 0]
    span, top = 0.0, 0.0
    refused_drawn = False
    for i, (key, t, c, tr, cr) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        if len(t):
            xs, ys = lttb(t, c.astype(float), MAX_POINTS)
            ax.step(xs, ys, where="post", color=color, label=key, lw=1.0)
            span, top = max(span, float(t[-1])), max(top, float(c.max()))
        if len(tr):
            keep = np.linspace(0, len(tr) - 1, min(len(tr), MAX_POINTS)).astype(int)
            ax.scatter(tr[keep], cr[keep], marker="x", s=14, lw=0.8, color=color,
                       label=None if refused_drawn else "429 (refused), at the accepted count then")
            refused_drawn = True
            span, top = max(span, float(tr[-1])), max(top, float(cr.max()))
    ax.axhline(count, color=PALETTE[3], ls="--", lw=1.2, label=f"documented: {count} per {window:g} s")
    ax.set_ylim(0, max(count * 1.25, top * 1.1))
    ax.set_ylabel(f"accepted in {window:g} s window")
    ax.set_title(f"{limit}: accepted calls per window, busiest keys (429s apart, as crosses)")
    ax.legend(fontsize=7, **OUTSIDE)
    _time_axis(ax, span)
    return to_data_uri(fig)


@styled
def overlay_throughput(base: tuple[np.ndarray, np.ndarray], cur: tuple[np.ndarray, np.ndarray]) -> str:
    """Total requests per second, baseline vs current, each from its own start."""
    fig, axes = _figure(10, 3.0)
    ax = axes[0, 0]
    ax.step(*base, where="post", color=MUTED, ls="--", label="baseline")
    ax.step(*cur, where="post", color=PALETTE[0], label="current")
    ax.set_ylabel("requests / s")
    ax.set_title("Throughput: baseline vs current")
    ax.legend(**OUTSIDE)
    _time_axis(ax, max(float(base[0][-1]) if len(base[0]) else 0.0, float(cur[0][-1]) if len(cur[0]) else 0.0))
    return to_data_uri(fig)
