"""What a reader needs from every chart: numbers on every log axis, a visible point for a lone bucket,
a curve that stops where the sample count stops, one colour per operation."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.report import charts  # noqa: E402
from harness.report.figures import CURVE_QUANTILES, _curve, op_colors, supported  # noqa: E402


def _labels(lo: float, hi: float) -> list[str]:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [lo, hi])
    charts._log_ms(ax)
    ax.set_ylim(lo, hi)
    fig.canvas.draw()
    shown = [t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True)
             if t.get_text() and lo <= t.get_position()[1] <= hi]
    plt.close(fig)
    return shown


def test_log_axis_has_numbers_even_within_one_decade() -> None:
    assert len(_labels(3.0, 4.5)) >= 1  # no 1-2-5 tick in view: minor ticks are labelled
    assert _labels(1.0, 1000.0)[:3] == ["1", "2", "5"]  # wide: 1-2-5 majors only, in plain ms


def test_isolated_buckets_are_marked() -> None:
    nan = np.nan
    assert charts._isolated(np.array([nan, 5.0, nan, 2.0, 3.0, nan, 7.0])) == [1, 6]
    assert charts._isolated(np.array([nan, nan])) == []


def test_curve_stops_where_the_sample_stops() -> None:
    values = np.sort(np.arange(1, 16, dtype=float))  # 15 calls: p90 is resolved, p99 is not
    curve = _curve(values)
    x = 1.0 / (1.0 - CURVE_QUANTILES)
    assert np.all(np.isfinite(curve[x <= 15.0 + 1e-9])) and np.all(np.isnan(curve[x > 15.0 + 1e-9]))
    assert supported(0.99, 100) and not supported(0.99, 99) and supported(0.999, 1000)


def test_one_colour_per_operation() -> None:
    colors = op_colors(["device.sendState", "data.lastValueQuery", "auth.device"])
    assert len(set(colors.values())) == 3
