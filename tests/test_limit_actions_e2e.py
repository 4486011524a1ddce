"""The limited endpoints driven end to end: probe rounds, respect pacing, and what a wrong target draws.

Each test starts its own emulator (loopback) with a limits file and points the harness at
it as a live target, so the harness knows only the table it is given (``--limits``).
Windows, job lengths and caps are shortened so a run takes seconds.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml
from runs import Run, run_cli, write_scenario

from harness.emulator.process import EmulatorProcess
from harness.limits import LimitsTable
from harness.record import read_samples
from harness.scenario import ACTION_OPERATIONS

EMAIL, PASSWORD = "limits@example.com", "limits-password-1"
ENV = {"LOSANT_EMAIL": EMAIL, "LOSANT_PASSWORD": PASSWORD}
HEX = "0123456789abcdef01234567"
OBJECTS = {"flow": HEX, "button": f"{HEX}-probe", "dashboard": HEX, "data_table": HEX, "notebook": HEX,
           "instance": HEX, "email": "probe@example.com"}
JOB_SECONDS = 1.0
#: Shortened rows: every rate row 2 s windows (small counts), size caps in bytes (a time-series
#: cap of 300 kB needs only a few long states); concurrency rows as documented (1 job).
SHORT: dict[str, dict[str, Any]] = {
    "device.sendState": {"count": 4, "window": 2.0},
    "device.sendCommand": {"count": 4, "window": 2.0},
    "device.setConnectionStatus": {"count": 4, "window": 2.0},
    "application.mqttPublishMessage": {"count": 4, "window": 2.0},
    "events.post": {"count": 3, "window": 2.0},
    "flow.pressVirtualButton": {"count": 6, "window": 2.0},
    "embeddedDeployments.export": {"count": 1, "window": 2.0},
    "notebook.requestInputDataExport": {"count": 1, "window": 2.0},
    "data.timeSeriesQuery": {"count": 300_000},
    "dataTableRows.get": {"count": 200_000},
    "files.post": {"count": 200_000},
}
_TABLE = LimitsTable()
#: action -> the limit (row of harness/limits.py) it drives, for every limited action.
DRIVES = {a: _TABLE.for_operation(op)[0].name for a, op in ACTION_OPERATIONS.items() if _TABLE.for_operation(op)
          and a not in ("time_series",)} | {"time_series": "data.timeSeriesQuery"}
RATE_ACTIONS = {a: lim for a, lim in DRIVES.items() if _TABLE.by_name(lim).kind == "rate"}
JOB_ACTIONS = {a: lim for a, lim in DRIVES.items() if _TABLE.by_name(lim).kind == "concurrency"}
SIZE_ACTIONS = {a: lim for a, lim in DRIVES.items() if _TABLE.by_name(lim).kind == "size"}
#: The respect test's subset: a job of each key kind, and two rate rows.
RESPECT_JOBS = ("export_device_data", "export_application", "clone_application", "send_dashboard_report",
                "generate_instance_report", "count_payloads")


def limits(folder: Path, name: str, changes: dict[str, dict[str, Any]] | None = None) -> Path:
    rows = {k: dict(v) for k, v in SHORT.items()}
    for row, fields in (changes or {}).items():
        rows.setdefault(row, {}).update(fields)
    path = folder / name
    path.write_text(yaml.safe_dump({"job_seconds": JOB_SECONDS, "limits": rows}))
    return path


def scenario(url: str, throttle: str, actions: dict[str, str], duration: str = "6s") -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": f"limits-{throttle}",
        "target": {"kind": "live", "url": url, "auth": "user", "job_seconds": JOB_SECONDS},
        "duration": duration,
        "ramp_up": 100,
        "fleet": {"classes": [{"name": "d", "count": 1, "report_interval": "1h",
                               "attributes": {"blob": {"type": "string", "values": ["x"]}}}]},
        "operators": {"count": 6, "auth": "user", "think_time": "20ms", "objects": OBJECTS,
                      "actions": {a: 1 for a in actions}},
        "integrity": {"sample": "none"},
        "criteria": {"max_error_rate": None, "max_throttled_rate": None, "lost_writes": None},
        "pacing": {"throttle": throttle},
    }
    if throttle == "probe":
        data["pacing"]["probe"] = {"limits": sorted(set(actions.values()))}
    return data


def run_against(tmp_path: Path, data: dict[str, Any], documented: Path, enforced: Path) -> Run:
    with EmulatorProcess(email=EMAIL, password=PASSWORD, limits=str(enforced)) as emu:
        data["target"]["url"] = emu.url
        path = write_scenario(tmp_path, data)
        run = run_cli(["run", str(path), "--headless", "--yes", "--allow-exceeding-live-limits",
                       "--limits", str(documented)], tmp_path / "reports", env=ENV)
    assert run.code in (0, 1), run.output[-3000:]
    assert "Traceback" not in run.output, run.output[-3000:]
    return run


def calls(run: Run) -> dict[str, list[tuple[float, float, int, str]]]:
    """op -> [(sent, end, status, key)] in send order."""
    s = read_samples(run.run_dir)
    out: dict[str, list[tuple[float, float, int, str]]] = defaultdict(list)
    for i in range(len(s)):
        out[s.op_names[s.op[i]]].append((float(s.sent[i]), float(s.sent[i] + s.latency[i]), int(s.status[i]),
                                         s.key_names[s.key[i]]))
    for rows in out.values():
        rows.sort()
    return out


def rounds_of(rows: list[tuple[float, float, int, str]], gap: float) -> list[list[int]]:
    """Statuses grouped into rounds: calls less than ``gap`` apart belong to one round."""
    out: list[list[int]] = []
    last = -1e18
    for sent, _, status, _ in rows:
        if sent - last > gap:
            out.append([])
        out[-1].append(status)
        last = sent
    return out


ALL = {**RATE_ACTIONS, **JOB_ACTIONS, **SIZE_ACTIONS}


def test_probe_rounds_at_documented_limits_draw_exactly_the_expected_refusals(tmp_path: Path) -> None:
    table = limits(tmp_path, "table.yaml")
    run = run_against(tmp_path, scenario("", "probe", ALL), table, table)
    got = calls(run)
    for action, op in RATE_ACTIONS.items():
        if op == "device.sendState":
            continue  # the device's own (rare) report may share a round with the operator's states
        count = SHORT[op]["count"]
        rounds = rounds_of(got[op], 1.0)
        assert rounds, (op, run.output[-2000:])
        for statuses in rounds:  # count accepted, then the (count+1)-th refused; a cut-off last round is shorter
            assert all(200 <= s < 300 for s in statuses[:count]), (op, statuses)
            assert statuses[count:] in ([], [429]), (op, statuses)
        assert any(len(r) == count + 1 for r in rounds), (op, rounds)
    jobs = {ACTION_OPERATIONS[a] for a in JOB_ACTIONS}
    assert len(jobs) == 16
    for op in jobs:
        rounds = rounds_of(got[op], 0.5)
        assert rounds and all(r[0] == 202 and r[1:] in ([], [429]) for r in rounds), (op, rounds)
        assert any(r == [202, 429] for r in rounds), (op, rounds)
    keys = {op: {k for *_, k in rows} for op, rows in got.items()}
    assert keys["flow.pressVirtualButton"] == {f"{HEX}:{HEX}-probe"}
    assert keys["dashboard.sendReport"] == keys["instance.generateReport"] == {HEX}
    files = {k: st for _, _, st, k in got["files.post"]}
    assert files == {"file-under@198976": 201, "file-over@201024": 413}, files
    tsq = {k.split("@")[0]: (st, k) for _, _, st, k in got["data.timeSeriesQuery"]}
    assert tsq["tsq-under"][0] == 200 and tsq["tsq-over"][0] == 400, tsq
    assert int(tsq["tsq-under"][1].split("@")[1]) <= 300_000 < int(tsq["tsq-over"][1].split("@")[1])
    assert_rows_probed(run, {"rows-under": 200, "rows-over": 400})
    conformance = run.summary()["conformance"]
    assert conformance["findings_total"] == 0, conformance["findings"][:5]
    rows = {r["row"]: r for r in conformance["documented_rows"]}
    assert all(r["driven"] == "yes" for r in rows.values()), [r["name"] for r in rows.values() if r["driven"] != "yes"]


def assert_rows_probed(run: Run, expected: dict[str, int]) -> None:
    """Both data table row operations asked one page under the cap and one over it, sized exactly
    (an answered page's declared size is its measured size), after filling the table."""
    s = read_samples(run.run_dir)
    pages: dict[str, dict[str, tuple[int, int, int]]] = defaultdict(dict)
    inserts = []
    for i in range(len(s)):
        op, key, status = s.op_names[s.op[i]], s.key_names[s.key[i]], int(s.status[i])
        if op == "dataTableRows.post":
            inserts.append(status)
        elif op.startswith("dataTableRows.") and "@" in key:
            label, declared = key.split("@")
            pages[op][label] = (status, int(declared), int(s.nbytes[i]))
    assert inserts and all(st == 201 for st in inserts), inserts
    cap = SHORT["dataTableRows.get"]["count"]
    for op in ("dataTableRows.get", "dataTableRows.query"):
        assert {label: st for label, (st, _, _) in pages[op].items()} == expected, (op, pages[op])
        assert pages[op]["rows-under"][1] <= cap < pages[op]["rows-over"][1], pages[op]
        assert all(n == declared for st, declared, n in pages[op].values() if st == 200), pages[op]


#: For every row a deliberately wrong enforced limit: stricter rate rows draw false throttles,
#: looser ones and two-job slots missed throttles, a smaller upload cap refuses an upload under
#: the documented one, a larger answer cap (time series, data table rows) sends an answer over it.
WRONG: dict[str, dict[str, Any]] = {
    "device.sendState": {"count": 2}, "device.sendCommand": {"count": 7},
    "device.setConnectionStatus": {"count": 2}, "application.mqttPublishMessage": {"count": 7},
    "events.post": {"count": 1}, "flow.pressVirtualButton": {"count": 9},
    "embeddedDeployments.export": {"count": 2}, "notebook.requestInputDataExport": {"count": 2},
    **{lim: {"count": 2} for lim in set(JOB_ACTIONS.values())},
    "files.post": {"count": 150_000}, "data.timeSeriesQuery": {"count": 600_000},
    "dataTableRows.get": {"count": 300_000},
}


def test_a_wrong_target_draws_the_finding_of_each_wrong_row(tmp_path: Path) -> None:
    documented = limits(tmp_path, "documented.yaml")
    enforced = limits(tmp_path, "enforced.yaml", WRONG)
    data = scenario("", "probe", ALL)
    data["operators"]["count"] = 8
    run = run_against(tmp_path, data, documented, enforced)
    got = calls(run)
    assert [s for *_, s, _ in got["flow.pressVirtualButton"]][:7].count(429) == 0  # looser: the 7th accepted
    assert [s for *_, s, _ in got["events.post"]][:4].count(429) >= 2  # stricter: refused from the 2nd
    assert [s for *_, s, _ in got["device.export"]][:2] == [202, 202]  # two jobs at once
    conformance = run.summary()["conformance"]
    kinds: dict[str, set[str]] = defaultdict(set)
    for f in conformance["findings"]:
        kinds[f.get("limit")].add(f.get("kind"))
    missing = set(WRONG) - set(kinds)
    assert not missing, (missing, dict(kinds), conformance["findings_total"])
    for lim in ("device.sendState", "device.setConnectionStatus", "events.post"):
        assert "false_throttle" in kinds[lim], (lim, kinds[lim])
    for lim in ("device.sendCommand", "flow.pressVirtualButton", "device.export", "application.clone"):
        assert "missed_throttle" in kinds[lim], (lim, kinds[lim])
    assert kinds["dataTableRows.get"] == {"answer_over_cap"}, kinds["dataTableRows.get"]
    rows = {r["limits"][0]: r for r in conformance["documented_rows"] if r["limits"]}
    assert rows["dataTableRows.get"]["verdict"] == "findings" and rows["dataTableRows.get"]["findings"] == 2


def test_a_data_table_answer_cap_below_the_documented_one_draws_refused_under_cap(tmp_path: Path) -> None:
    """The row's other wrong side: the target refuses the page sized just under the documented cap."""
    documented = limits(tmp_path, "documented.yaml")
    enforced = limits(tmp_path, "enforced.yaml", {"dataTableRows.get": {"count": 150_000}})
    run = run_against(tmp_path, scenario("", "probe", {a: ALL[a] for a in ("get_data_table_rows", "query_data_table_rows")}),
                      documented, enforced)
    assert_rows_probed(run, {"rows-under": 400, "rows-over": 400})
    conformance = run.summary()["conformance"]
    found = Counter((f.get("limit"), f.get("kind")) for f in conformance["findings"])
    assert found == {("dataTableRows.get", "refused_under_cap"): 2}, (found, conformance["findings"][:4])
    row = next(r for r in conformance["documented_rows"] if r["limits"] == ["dataTableRows.get"])
    assert row["driven"] == "yes" and row["verdict"] == "findings", row


def test_respect_mode_keeps_every_limited_call_within_its_limit(tmp_path: Path) -> None:
    table = limits(tmp_path, "table.yaml")
    actions = {a: ALL[a] for a in (*RESPECT_JOBS, "press_virtual_button", "mqtt_publish")}
    data = scenario("", "respect", actions, duration="10s")
    # an operator waits for a busy slot; the others keep every action going (about 100 picks: each
    # action is picked at least once but with probability ~(7/8)^100)
    data["operators"]["count"] = 12
    run = run_against(tmp_path, data, table, table)
    got = calls(run)
    statuses = Counter(s for rows in got.values() for *_, s, _ in rows)
    assert statuses[429] == 0, {op: Counter(s for *_, s, _ in rows) for op, rows in got.items()}
    ops = [ACTION_OPERATIONS[a] for a in actions]
    for op in ops:
        assert got[op], (op, sorted(got))
    jobs = [ACTION_OPERATIONS[a] for a in RESPECT_JOBS]
    assert sum(len(got[op]) >= 2 for op in jobs) >= 3, {op: len(got[op]) for op in jobs}
    for op in jobs:
        rows = got[op]
        for (_, end, _, key), (sent, _, _, key2) in zip(rows, rows[1:]):
            assert key != key2 or sent > end + JOB_SECONDS, (op, rows)  # never two jobs of a key at once
    for op in ("flow.pressVirtualButton", "application.mqttPublishMessage"):  # at most count per window
        count, window = SHORT[op]["count"], SHORT[op]["window"]
        sent = [row[0] for row in got[op]]
        assert all(b - a > window for a, b in zip(sent, sent[count:])), op


# -- no traffic: the pacing rule for jobs, and the plan a live tenant is shown -----------------------
def test_ledger_starts_no_second_job_of_a_key_before_the_first_can_have_ended() -> None:
    from harness.limits import LimitsTable
    from harness.schedule import Ledger

    ledger = Ledger(LimitsTable(job_seconds=2.0), "respect")
    app = {"application": "a"}
    first = ledger.admit("application.export", app, 10.0)
    assert isinstance(first, tuple) and first
    assert ledger.admit("application.export", app, 10.5) == 12.5001  # in flight: not before a job length on
    assert isinstance(ledger.admit("devices.export", app, 10.5), tuple)  # another limit: its own slot
    assert isinstance(ledger.admit("application.export", {"application": "b"}, 10.5), tuple)  # another key
    ledger.done(first, 10.1)  # answered: the job may run until 12.1
    assert ledger.admit("application.export", app, 11.0) == 12.1001
    assert isinstance(ledger.admit("application.export", app, 12.1001), tuple)


def test_live_plan_lists_the_work_each_probe_starts_and_needs_the_flag(tmp_path: Path) -> None:
    import pytest

    from harness.errors import ConfigError
    from harness.limits import LimitsTable
    from harness.safety import RISK_FLAG, check_live_run, plan_budget
    from harness.scenario import load_scenario, parse_scenario

    root = Path(__file__).resolve().parents[1] / "scenarios"
    data = load_scenario(root / "probe-concurrency.yaml").to_dict()
    data["target"] = {"kind": "live", "url": "https://api.example.com", "auth": "user", "job_seconds": "30s"}
    data["operators"]["objects"] = OBJECTS
    budget = plan_budget(parse_scenario(data, "live.yaml"), LimitsTable())
    work = dict(budget.work)
    assert len(work) == 16 and work["application.clone"] == 2 and work["dashboard.sendReport"] == 2  # one round of 2
    text = budget.describe()
    assert "application.clone: starts up to 2 jobs" in text
    with pytest.raises(ConfigError) as err:
        check_live_run(budget, allow_risk=False, assume_yes=True, interactive=False)
    assert RISK_FLAG in str(err.value) and "application.export: starts up to 2 jobs" in str(err.value)
    check_live_run(budget, allow_risk=True, assume_yes=True, interactive=False)
    size = load_scenario(root / "probe-size.yaml").to_dict()
    size["target"] = data["target"]
    size["operators"]["objects"] = OBJECTS
    text = plan_budget(parse_scenario(size, "live.yaml"), LimitsTable()).describe()
    assert "files.post: uploads about 20,971,520 bytes" in text and "stores about 32,040,000 bytes" in text
    assert "dataTableRows.post: the data table rows size probe inserts about 21,223,158 bytes" in text
