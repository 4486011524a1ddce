"""``junit.xml``: the run's verdict in the form CI systems already render.

GitLab, Jenkins and GitHub Actions show JUnit XML as a test report, so a load test that
gates a build reads there like any other test. It is written from ``summary.json``
alone, the same document the terminal, the report's badge and the exit code come
from, so the four never disagree:

- one test case per criterion (a failed criterion is a ``<failure>``, one that could
  not be measured is ``<skipped>`` with the reason);
- with ``--baseline``: one case for the judgement against the baseline, and one per
  regression listed in ``summary.regression.top`` (the total is in the message);
- one case per row of the documented limits table the run drove
  (``conformance.documented_rows``; rows not driven are listed by summary.json and the
  report, not as skipped tests on every CI run): a row with findings fails when the
  conformance criterion failed (so the cases, the criterion and the exit code agree
  even when the criteria allow some findings); a row not tested, undecided or not
  judged is ``<skipped>`` with that word;
- with MQTT devices (summary.json ``mqtt``): one case per broker row, one for broker-side
  disconnects and one for bans, failing like the documented rows; an MQTT probe adds one
  case with its verdict (``mqtt.probe``);
- an interrupted run adds a case that errs ("the run ended before its planned end"),
  because its figures cover only part of the plan.

The layout follows the schema most CI tools accept (the Ant/Jenkins ``testsuites`` >
``testsuite`` > ``testcase`` with ``failure``/``error``/``skipped``).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from harness.analysis.criteria import measure_text
from harness.analysis.mqtt import probe_statement


def _case(suite: ET.Element, classname: str, name: str) -> ET.Element:
    return ET.SubElement(suite, "testcase", {"classname": classname, "name": name, "time": "0"})


def junit_xml(summary: dict[str, Any], run_dir: Path | str | None = None) -> str:
    """The JUnit XML document for a run's summary (see the module docstring)."""
    scenario = summary.get("scenario") or {}
    name = str(scenario.get("name") or "run")
    run = summary.get("run") or {}
    duration = float(run.get("duration_s") or 0.0)
    cls = f"losant-load.{name}"
    root = ET.Element("testsuites", {"name": "losant-load"})
    suite = ET.SubElement(root, "testsuite", {"name": f"losant-load: {name}",
                                              "timestamp": str(run.get("start") or ""),
                                              "time": f"{duration:.3f}"})
    props = ET.SubElement(suite, "properties")
    for key, value in (("run_id", scenario.get("run_id")), ("target", scenario.get("target")),
                       ("passed", summary.get("passed")), ("run_folder", str(run_dir) if run_dir else None)):
        if value is not None:
            ET.SubElement(props, "property", {"name": key, "value": str(value)})
    failures = errors = skipped = 0
    for v in summary.get("verdicts") or []:
        case = _case(suite, f"{cls}.criteria", str(v.get("name")))
        unit = str(v.get("unit") or "")
        what = f"measured {measure_text(v.get('measured'), unit)} (bound {measure_text(v.get('bound'), unit)})"
        detail = str(v.get("detail") or "")
        if v.get("passed") is False:
            failures += 1
            ET.SubElement(case, "failure", {"message": what, "type": "criterion"}).text = detail or what
        elif v.get("passed") is None:
            skipped += 1
            ET.SubElement(case, "skipped", {"message": f"not checked: {detail}" if detail else "not checked"})
        else:
            ET.SubElement(case, "system-out").text = f"{what}{'; ' + detail if detail else ''}"
    raw_conf = summary.get("conformance")
    conf: dict[str, Any] = raw_conf if isinstance(raw_conf, dict) else {}
    criterion_failed = any(v.get("name") == "throttle conformance findings" and v.get("passed") is False
                           for v in summary.get("verdicts") or [] if isinstance(v, dict))
    for row in conf.get("documented_rows") or []:
        if not isinstance(row, dict) or row.get("driven") == "no":
            continue
        case = _case(suite, f"{cls}.limits", f"row {row.get('row')}: {row.get('name')}")
        verdict = str(row.get("verdict") or "")
        observed = (f"driven: {row.get('driven')}; {int(row.get('calls') or 0):,} calls, "
                    f"{int(row.get('accepted') or 0):,} accepted, {int(row.get('refused') or 0):,} refused")
        findings = int(row.get("findings") or 0)
        if verdict == "findings" and criterion_failed:
            failures += 1
            kinds = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in (row.get("findings_by_kind") or {}).items())
            ET.SubElement(case, "failure", {"message": f"{findings} finding{'s' if findings != 1 else ''} ({kinds})",
                                            "type": "limit"}).text = f"{observed}; {row.get('judged', '')}"
        elif verdict in ("conforms", "findings"):
            ET.SubElement(case, "system-out").text = (f"{verdict}{f' ({findings} allowed by the criteria)' if findings else ''}"
                                                      f"; {observed}")
        else:
            skipped += 1
            note = str(row.get("note") or "")
            ET.SubElement(case, "skipped", {"message": f"{verdict}{': ' + note if note else ''}; {observed}"})
    for name, found, state, text in mqtt_cases(summary):
        case = _case(suite, f"{cls}.mqtt", name)
        if found and criterion_failed:
            failures += 1
            ET.SubElement(case, "failure", {"message": f"{found} finding{'s' if found != 1 else ''}",
                                            "type": "limit"}).text = text
        elif state == "not tested":
            skipped += 1
            ET.SubElement(case, "skipped", {"message": f"not tested; {text}"})
        else:
            ET.SubElement(case, "system-out").text = (f"{state}{f' ({found} allowed by the criteria)' if found else ''}"
                                                      f"; {text}")
    reg = summary.get("regression")
    if isinstance(reg, dict):
        verdict = str(reg.get("verdict") or "")
        case = _case(suite, f"{cls}.regression", f"against baseline {reg.get('baseline', '?')}")
        total = int(reg.get("regressions_total") or 0)
        if verdict == "regression":
            failures += 1
            ET.SubElement(case, "failure", {"message": f"{total} regression{'s' if total != 1 else ''}",
                                            "type": "regression"}).text = "\n".join(
                str(t.get("text") or t.get("op")) for t in reg.get("top") or [] if isinstance(t, dict))
            for i, item in enumerate(reg.get("top") or []):
                if not isinstance(item, dict):
                    continue
                text = str(item.get("text") or item.get("op"))
                sub = _case(suite, f"{cls}.regression", f"regression {i + 1} of {total}: {text}")
                failures += 1
                ET.SubElement(sub, "failure", {"message": text, "type": "regression"})
        elif verdict == "not compared":
            errors += 1
            ET.SubElement(case, "error", {"message": f"not compared: {reg.get('error', '')}",
                                          "type": "baseline"})
        else:
            ET.SubElement(case, "system-out").text = verdict
    if summary.get("complete") is False:
        errors += 1
        case = _case(suite, f"{cls}.run", "run complete")
        ET.SubElement(case, "error", {"message": str(summary.get("incomplete_reason") or "interrupted"),
                                      "type": "incomplete"})
    tests = len(suite.findall("testcase"))
    counts = {"tests": str(tests), "failures": str(failures), "errors": str(errors), "skipped": str(skipped)}
    suite.attrib.update(counts)
    # the Jenkins xunit schema (junit-10.xsd) admits no skipped count on <testsuites>, only on <testsuite>
    root.attrib.update({k: v for k, v in counts.items() if k != "skipped"} | {"time": f"{duration:.3f}"})
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def mqtt_cases(summary: dict[str, Any]) -> list[tuple[str, int, str, str]]:
    """(case name, findings, "conforms" | "findings" | "undecided" | "not tested", what was seen) per
    judgement of summary.json's ``mqtt`` block: each broker row, broker-side disconnects, bans."""
    block = summary.get("mqtt")
    if not isinstance(block, dict) or not block:
        return []
    out = []
    b = block.get("bans") or {}
    for r in block.get("rules") or []:
        if not isinstance(r, dict):
            continue
        found = int(r.get("missed") or 0) + int(r.get("false_refusals") or 0)
        if r.get("limit") == "mqtt.newConnections":  # refusals the pacer should have avoided (respect mode)
            found += int(b.get("refusals_while_respecting") or 0)
        und = int(r.get("undecided") or 0) + int(r.get("undecided_refusals") or 0)
        state = "findings" if found else ("undecided" if und else ("conforms" if r.get("tested") else "not tested"))
        out.append((f"{r.get('limit')}", found, state,
                    f"{int(r.get('messages') or 0):,} judged, {int(r.get('refused') or 0):,} refused, {und:,} undecided"))
    d = block.get("disconnects") or {}
    found = int(d.get("unexplained") or 0) + int(d.get("limited_while_respecting") or 0)
    und = int(d.get("undecided") or 0)
    judged = int(d.get("broker_closed_judged") or 0)
    out.append(("broker-side disconnects", found, "findings" if found else ("undecided" if und else (
        "conforms" if judged else "not tested")), f"{judged:,} judged, {int(d.get('explained') or 0):,} explained, "
        f"{und:,} undecided"))
    found = int(b.get("accepted_during_ban") or 0)
    out.append(("bans", found, "findings" if found else ("conforms" if b.get("episodes") else "not tested"),
                f"{int(b.get('episodes') or 0):,} bans seen, {int(b.get('refusals') or 0):,} refused connects"))
    probe = block.get("probe")
    if isinstance(probe, dict):  # the probe's own verdict: a view of the findings above, counted once in the total
        verdict = str(probe.get("verdict") or "not tested")
        out.append((f"probe {probe.get('limit')}", int(probe.get("findings") or 0), verdict,
                    probe_statement(probe)))
    return out


def write_junit(run_dir: Path, summary: dict[str, Any], also: Path | None = None) -> Path:
    """Write ``run_dir/junit.xml`` (and a copy at ``also``, ``--junit FILE``); returns the run's copy."""
    text = junit_xml(summary, run_dir)
    out = Path(run_dir) / "junit.xml"
    for path in (out, also):
        if path is None:
            continue
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return out
