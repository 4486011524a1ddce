"""The report of a synthetic run folder: every section present, every figure equal to summary.json."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from harness.analysis.percentiles import LABELS
from harness.report import write_report
from harness.report.figures import active_keys, busiest_keys, label_supported, window_counts
from harness.report.synthetic import Shape, write_run
from harness.report.tables import ms

SECTIONS = {"verdict", "load", "latency", "operations", "throttles", "scheduler", "errors", "integrity"}


class Page(HTMLParser):
    """Collects section ids, chart images, and table rows keyed by their data- attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[dict[str, str]] = []
        self.rows: list[tuple[dict[str, str], list[str]]] = []
        self.ids: set[str] = set()
        self.text: list[str] = []
        self._row: tuple[dict[str, str], list[str]] | None = None
        self._cell: list[str] | None = None
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "section":
            self.sections.append(a.get("id", ""))
        elif tag == "img":
            self.images.append(a)
        elif tag == "tr":
            self._row = (a, [])
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row[1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def op_rows(self, kind: str) -> dict[str, list[str]]:
        return {a["data-op"]: cells for a, cells in self.rows if a.get("data-kind") == kind}


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Page, dict]:
    folder = write_run(tmp_path_factory.mktemp("report") / "run", Shape(devices=40, duration=60, seed=3))
    out = write_report(folder)
    return folder, parse(out), json.loads((folder / "summary.json").read_text())


def test_every_section_and_chart_is_there(run) -> None:
    folder, page, _ = run
    assert SECTIONS <= set(page.sections)
    charts = [i for i in page.images if "chart" in i.get("class", "")]
    # load, percentiles over time, distribution, one per touched limit (2), lateness
    assert len(charts) >= 6
    assert all(i["src"].startswith("data:image/svg+xml;base64,") for i in charts)
    assert page.scripts == 0
    html = (folder / "index.html").read_text()
    for needle in ("<link", "src=\"http", "href=\"http", "@import", "url(http"):
        assert needle not in html, f"the report must not load {needle}"


def test_header_has_verdict_and_run_facts_without_secrets(run) -> None:
    folder, page, summary = run
    text = " ".join(page.text)
    html = (folder / "index.html").read_text()
    word = "PASS" if summary["passed"] else "FAIL"
    assert "verdict-word" in page.ids and f">{word}<" in html
    for v in summary["verdicts"]:
        assert v["name"] in text
    assert "http://127.0.0.1:8765/" in text
    assert "hunter2" not in html and "token" not in html.lower().replace("tokens", "")
    assert "losant-load 0.1.0" in text and "40 devices" in text and "UTC" in text


@pytest.mark.parametrize("kind, figure", [("corrected", "corrected_latency_ms"), ("response", "response_time_ms")])
def test_operation_table_matches_summary(run, kind: str, figure: str) -> None:
    _, page, summary = run
    rows = page.op_rows(kind)
    assert set(summary["operations"]) <= set(rows)
    for op, block in summary["operations"].items():
        cells = rows[op]
        assert cells[0] == op
        assert cells[1] == f"{block['count']:,}"
        assert cells[2] == f"{block['throughput_rps']:,.2f}"
        assert cells[3] == f"{block['errors']:,}"
        assert cells[4] == f"{block['throttled']:,}"
        for i, label in enumerate(LABELS):
            if not label_supported(label, block["count"]):
                # too few calls to resolve this percentile: the report says so instead of repeating the max
                assert cells[5 + i] == "–", (op, kind, label)
            else:
                assert cells[5 + i] == ms(block[figure][label] / 1000.0), (op, kind, label)
    total = rows["all"]
    assert total[1] == f"{summary['overall']['count']:,}"
    assert total[5 + LABELS.index("p99")] == ms(summary["overall"][figure]["p99"] / 1000.0)


def test_operations_csv_matches(run) -> None:
    folder, _, summary = run
    with open(folder / "operations.csv", encoding="utf-8") as fh:
        rows = {r["operation"]: r for r in csv.DictReader(fh)}
    for op, block in summary["operations"].items():
        assert int(rows[op]["count"]) == block["count"]
        assert float(rows[op]["corrected_p99_ms"]) == pytest.approx(block["corrected_latency_ms"]["p99"], rel=1e-5)


def test_throttles_scheduler_errors_integrity(run) -> None:
    folder, page, summary = run
    limits = {a["data-limit"]: cells for a, cells in page.rows if "data-limit" in a}
    for rep in summary["conformance"]["limits"]:
        cells = limits[rep["limit"]]
        assert cells[1].startswith(f"{rep['count']} per ")
        assert cells[2] == str(rep["max_accepted_in_window"])
        assert cells[4] == str(rep["throttled"])
    text = " ".join(page.text)
    for f in summary["conformance"]["findings"]:
        assert f["key"] in text
    assert f"{ms(summary['lateness']['p99'] / 1000)} ms" in text
    assert "saturated" not in page.ids
    errors = [cells for a, cells in page.rows if cells and cells[0] in ("http", "throttled", "connection")]
    assert sum(int(c[3].replace(",", "")) for c in errors) == summary["overall"]["errors"] + summary["overall"]["throttled"]
    accepted = json.loads((folder / "integrity.json").read_text())["accepted"]
    assert f"All {accepted} accepted states were read back." in text


def test_saturated_generator_is_flagged(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "sat", Shape(devices=10, duration=20, stall_fraction=0.05, seed=4), summary=False)
    page = parse(write_report(folder))
    assert "saturated" in page.ids
    assert "NOT JUDGED" in " ".join(page.text)  # no summary.json: still a report, without verdicts


def test_names_are_escaped(tmp_path: Path) -> None:
    from harness.record import Recorder

    rec = Recorder(tmp_path / "x")
    op = rec.op_code("<script>alert('op')</script>")
    for i in range(50):
        key = rec.key_code(f"<img src=x onerror=alert({i % 3})>")
        rec.record(op, key, 100.0 + i, 100.0 + i, 0.01, 500 if i == 3 else 200, 10, 1 if i == 3 else 0)
    rec.close()
    html = write_report(tmp_path / "x").read_text()
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#x27;op&#x27;)&lt;/script&gt;" in html


# -- pure helpers against slow references -------------------------------------------------

def test_window_counts_against_brute_force() -> None:
    t = np.sort(np.random.default_rng(5).uniform(0, 100, 400))
    slow = [sum(1 for u in t if x - 15 < u <= x) for x in t]
    assert window_counts(t, 15.0).tolist() == slow


def test_busiest_keys_peaks_against_brute_force(tmp_path: Path) -> None:
    from harness.record import read_samples

    folder = write_run(tmp_path / "b", Shape(devices=8, duration=40, seed=6), summary=False)
    s = read_samples(folder)
    top = busiest_keys(s, [0], 15.0, top=3)
    arrival = s.sent + s.latency / 2
    peaks = {}
    for k in range(8):
        t = np.sort(arrival[(s.op == 0) & (s.key == k)])
        peaks[s.key_names[k]] = max(sum(1 for u in t if x - 15 < u <= x) for x in t)
    assert [int(c.max()) for _, _, c in top] == sorted(peaks.values(), reverse=True)[:3]
    assert all(peaks[name] == int(c.max()) for name, _, c in top)


def test_active_keys_against_sets() -> None:
    rng = np.random.default_rng(7)
    b, k = rng.integers(0, 20, 2000), rng.integers(0, 50, 2000).astype(np.int32)
    slow = [len({int(kk) for bb, kk in zip(b, k) if bb == i}) for i in range(20)]
    assert active_keys(b, k, 20).tolist() == slow


def lttb_reference(data: list[tuple[float, float]], threshold: int) -> list[tuple[float, float]]:
    """Sveinn Steinarsson's LTTB as published (plain Python), the slow reference."""
    n = len(data)
    if threshold >= n or threshold < 3:
        return data
    every = (n - 2) / (threshold - 2)
    a, out = 0, [data[0]]
    for i in range(threshold - 2):
        avg_start, avg_end = int((i + 1) * every) + 1, min(int((i + 2) * every) + 1, n)
        avg_x = sum(p[0] for p in data[avg_start:avg_end]) / (avg_end - avg_start)
        avg_y = sum(p[1] for p in data[avg_start:avg_end]) / (avg_end - avg_start)
        start, end = int(i * every) + 1, int((i + 1) * every) + 1
        ax, ay = data[a]
        best, best_area = start, -1.0
        for j in range(start, end):
            area = abs((ax - avg_x) * (data[j][1] - ay) - (ax - data[j][0]) * (avg_y - ay)) * 0.5
            if area > best_area:
                best, best_area = j, area
        out.append(data[best])
        a = best
    out.append(data[-1])
    return out


@pytest.mark.parametrize("n, k", [(1000, 100), (997, 37), (50, 49), (10, 3)])
def test_lttb_against_reference(n: int, k: int) -> None:
    from harness.report.charts import lttb

    rng = np.random.default_rng(n + k)
    x = np.cumsum(rng.uniform(0.1, 1.0, n))
    y = np.cumsum(rng.normal(0, 1, n))
    xs, ys = lttb(x, y, k)
    assert list(zip(xs.tolist(), ys.tolist())) == lttb_reference(list(zip(x.tolist(), y.tolist())), k)


@pytest.mark.parametrize("module", ["figures", "charts", "compare", "rundata", "webui"])
def test_docstring_examples(module: str) -> None:
    import doctest
    import importlib

    mod = importlib.import_module("harness.webui" if module == "webui" else f"harness.report.{module}")
    assert doctest.testmod(mod).failed == 0


def test_report_words_and_steady_throughput(tmp_path: Path) -> None:
    """The report's vocabulary is the terminal's, its throughput is the criterion's (steady window),
    and its integrity line is the summary's statement (coverage and true counts)."""
    folder = write_run(tmp_path / "w", Shape(devices=8, duration=30, seed=8))
    summary = json.loads((folder / "summary.json").read_text())
    summary["overall"]["steady_throughput_rps"] = 12.345
    summary["overall"]["steady_window"] = {"start": 0.0, "end": 1.0, "start_offset_s": 4.5, "end_offset_s": 28.0,
                                           "duration_s": 23.5, "how": "all users started .. users told to stop",
                                           "whole_run": False, "requests": 290}
    (folder / "summary.json").write_text(json.dumps(summary))
    integ = json.loads((folder / "integrity.json").read_text())
    integ["statement"] = "a sample of 8 of 8 devices (all 40 states) read back: 0 lost"
    (folder / "integrity.json").write_text(json.dumps(integ))
    page = parse(write_report(folder))
    text = " ".join(page.text)
    assert "throughput (steady window)" in text and "12.3 req/s over 4.5 s .. 28.0 s" in text
    assert "steady-window" in page.ids
    assert "Steady window: 4.5 s .. 28.0 s (all users started .. users told to stop)" in text
    assert "errors / throttled (429)" in text and "errors / 429s" not in text
    assert "Errors are failed requests other than 429; throttled are requests answered 429" in text
    assert "a sample of 8 of 8 devices (all 40 states) read back: 0 lost" in text
    # the badge reads the same field as the terminal's top word
    from harness.console import verdict_word

    assert ("PASS" if summary["passed"] else "FAIL") in text and verdict_word(summary).startswith(
        "PASSED" if summary["passed"] else "FAILED")
