"""junit.xml says what summary.json says: one case per criterion, regressions, an incomplete run."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from harness.report.junit import junit_xml, write_junit


def _summary(**extra: Any) -> dict[str, Any]:
    verdicts = [
        {"name": "corrected latency p99 of device.sendState", "bound": 1000.0, "measured": 4.8, "passed": True,
         "status": "pass", "unit": "ms", "detail": ""},
        {"name": "throughput", "bound": 10.0, "measured": 2.5, "passed": False, "status": "fail",
         "unit": "requests/s", "detail": "over the steady window 4.0 s .. 60.0 s"},
        {"name": "throttle conformance findings", "bound": 0, "measured": 0, "passed": None,
         "status": "not checked", "unit": "", "detail": "not tested: no key came within 10% of a limit"},
    ]
    return {"scenario": {"name": "smoke", "run_id": "r1", "target": "http://127.0.0.1:1"},
            "run": {"duration_s": 60.0, "start": "2026-12-02T00:00:00Z"}, "verdicts": verdicts,
            "passed": False, **extra}


def _suite(text: str) -> ET.Element:
    suite = ET.fromstring(text).find("testsuite")
    assert suite is not None
    return suite


def test_one_case_per_criterion_with_its_outcome() -> None:
    suite = _suite(junit_xml(_summary()))
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert list(cases) == [v["name"] for v in _summary()["verdicts"]]
    assert cases["throughput"].find("failure") is not None
    assert "2.5" in (cases["throughput"].find("failure").get("message") or "")  # type: ignore[union-attr]
    skipped = cases["throttle conformance findings"].find("skipped")
    assert skipped is not None and "not tested" in (skipped.get("message") or "")
    assert cases["corrected latency p99 of device.sendState"].find("failure") is None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("3", "1", "0", "1")


def test_a_regression_fails_in_junit_too_with_one_case_per_listed_change() -> None:
    top = [{"op": "device.sendState", "text": "device.sendState corrected p50 50 -> 61 ms"},
           {"op": "device.sendState", "text": "device.sendState response p90 52 -> 64 ms"}]
    summary = _summary(regression={"baseline": "reports/old", "verdict": "regression", "regressions_total": 9,
                                   "top": top})
    suite = _suite(junit_xml(summary))
    regression = [c for c in suite.iter("testcase") if (c.get("classname") or "").endswith(".regression")]
    assert len(regression) == 3  # the judgement, then each listed change
    assert regression[0].find("failure").get("message") == "9 regressions"  # type: ignore[union-attr]
    assert all(c.find("failure") is not None for c in regression)
    assert suite.get("failures") == "4"


def test_no_regression_and_an_incomplete_run() -> None:
    summary = _summary(regression={"baseline": "b", "verdict": "no regression", "regressions_total": 0, "top": []},
                       complete=False, incomplete_reason="interrupted before the planned end")
    suite = _suite(junit_xml(summary))
    names = [c.get("name") for c in suite.iter("testcase")]
    assert names[-2:] == ["against baseline b", "run complete"]
    run_case = list(suite.iter("testcase"))[-1]
    assert run_case.find("error").get("message") == "interrupted before the planned end"  # type: ignore[union-attr]
    assert suite.get("errors") == "1" and suite.get("failures") == "1"


def test_write_junit_writes_the_run_copy_and_the_requested_one(tmp_path: Path) -> None:
    extra = tmp_path / "ci.xml"
    out = write_junit(tmp_path, _summary(), extra)
    assert out == tmp_path / "junit.xml"
    assert out.read_text() == extra.read_text()
    assert not list(tmp_path.glob("*.tmp"))


def test_junit_validates_against_the_ci_schema(tmp_path: Path) -> None:
    """Jenkins' xunit plugin validates against junit-10.xsd; GitLab and GitHub Actions read the same shape."""
    import xmlschema

    schema = xmlschema.XMLSchema(Path(__file__).resolve().parents[1] / "data" / "junit-10.xsd")
    regression = {"compared": True, "regressions": [{"op": "device.sendState", "metric": "p99", "baseline": 4.0,
                                                      "current": 9.0, "change": 1.25, "detail": "worse in 10/10 blocks"}]}
    for summary in (_summary(), _summary(complete=False, incomplete_reason="interrupted"),
                    _summary(regression=regression), _summary(verdicts=[])):
        text = junit_xml(summary, tmp_path)
        errors = [str(e.reason) for e in schema.iter_errors(text)]
        assert errors == [], errors
        assert len(ET.fromstring(text).findall("testsuite/testcase")) >= len(summary["verdicts"])
