"""A live tenant is protected: probe and over-limit plans are refused without the risk flag, and a run is confirmed."""

import pytest

from harness.errors import ConfigError
from harness.limits import LimitsTable
from harness.safety import RISK_FLAG, check_live_run, plan_budget
from harness.scenario import parse_scenario

BASE = {
    "name": "live-check",
    "target": {"kind": "live", "url": "https://api.example.invalid", "auth": "user"},
    "duration": "60s",
    "fleet": {"classes": [{"name": "s", "count": 10, "report_interval": "10s"}]},
}


def scenario(**pacing):
    data = dict(BASE)
    if pacing:
        data["pacing"] = pacing
    return parse_scenario(data, "test.yaml")


def test_budget_counts_payloads_and_peak_rate() -> None:
    budget = plan_budget(scenario(), LimitsTable())
    # 10 devices x 60 s / 10 s = 60 state payloads
    assert budget.payloads == 60
    (state,) = [p for p in budget.limits if p.limit == "device.sendState"]
    assert state.planned_peak_per_s == pytest.approx(0.1)
    assert state.documented_per_s == pytest.approx(2.0)
    assert not budget.exceeds


def test_probe_is_refused_without_the_risk_flag() -> None:
    budget = plan_budget(scenario(throttle="probe", probe={"limits": ["device.sendState"], "factor": 1.5}), LimitsTable())
    assert budget.exceeds
    with pytest.raises(ConfigError) as err:
        check_live_run(budget, allow_risk=False, assume_yes=True, interactive=False)
    assert RISK_FLAG in str(err.value)
    check_live_run(budget, allow_risk=True, assume_yes=True, interactive=False)


def test_off_mode_faster_than_the_limit_is_refused() -> None:
    data = dict(BASE, fleet={"classes": [{"name": "s", "count": 2, "report_interval": "100ms"}]}, pacing={"throttle": "off"})
    budget = plan_budget(parse_scenario(data, "t.yaml"), LimitsTable())
    assert any(p.over for p in budget.limits)
    with pytest.raises(ConfigError):
        check_live_run(budget, allow_risk=False, assume_yes=True, interactive=False)


def test_headless_needs_yes_and_interactive_asks() -> None:
    budget = plan_budget(scenario(), LimitsTable())
    with pytest.raises(ConfigError, match="--yes"):
        check_live_run(budget, allow_risk=False, assume_yes=False, interactive=False)
    asked = []
    check_live_run(budget, False, False, True, ask=lambda q: asked.append(q) or "y")
    assert "payloads" in asked[0]
    with pytest.raises(ConfigError, match="not confirmed"):
        check_live_run(budget, False, False, True, ask=lambda q: "n")


def test_respect_mode_warns_when_a_class_asks_for_more_than_the_limit() -> None:
    from harness.safety import pacing_warnings

    fast = parse_scenario(dict(BASE, target={"kind": "emulator"},
                               fleet={"classes": [{"name": "s", "count": 1, "report_interval": "250ms"}]}), "t.yaml")
    (warning,) = pacing_warnings(fast, LimitsTable())
    assert "4 states/s" in warning and "dropped" in warning
    assert pacing_warnings(scenario(), LimitsTable()) == []


def test_the_plan_is_what_the_ledger_lets_through() -> None:
    """Probe: a probed limit at factor x its rate, not the operators' think-time ceiling (4 operators with
    100 ms think time once showed "events.post: planned peak 40/s" for a run that paced events at 1.5/s)."""
    data = dict(BASE, fleet={"classes": [{"name": "p", "count": 2, "report_interval": "100ms"}]},
                operators={"count": 4, "think_time": {"min": "100ms", "max": "300ms"},
                           "actions": {"create_event": {"weight": 1, "level": "info"}, "get_device": 1}},
                pacing={"throttle": "probe", "probe": {"limits": ["events.post"], "factor": 1.5}})
    budget = plan_budget(parse_scenario(data, "t.yaml"), LimitsTable())
    peaks = {p.limit: p.planned_peak_per_s for p in budget.limits}
    assert peaks["events.post"] == pytest.approx(1.5)  # 15 per 15 s x 1.5
    assert peaks["device.sendState"] == pytest.approx(2.0), "a limit the probe leaves alone is respected"
    # respect drops state sends beyond the limit: 2 devices x 60 s x 2/s, not x 10/s
    assert budget.payloads == 2 * 60 * 2


def test_yes_prints_the_plan_and_auth_token_comes_from_the_command_line(tmp_path) -> None:
    import httpx
    from runs import run_cli, write_scenario

    from harness.emulator.process import EmulatorProcess

    with EmulatorProcess(email="live@example.com", password="live-password-1") as emu:
        token = httpx.post(emu.url + "/auth/user", json={"email": "live@example.com",
                                                         "password": "live-password-1"}).json()["token"]
        path = write_scenario(tmp_path, {
            "name": "live-plan", "duration": "2s", "ramp_up": 100, "target": {"kind": "live", "url": emu.url},
            "fleet": {"classes": [{"name": "s", "count": 2, "report_interval": "1s",
                                   "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]}})
        env = {"LOSANT_API_TOKEN": token, "LOSANT_EMAIL": "", "LOSANT_PASSWORD": ""}
        refused = run_cli(["run", str(path), "--headless", "--yes"], tmp_path / "r1", env=env, timeout=60)
        assert refused.code == 2 and "--auth token" in refused.output, refused.output[-2000:]
        assert token not in refused.output
        run = run_cli(["run", str(path), "--headless", "--yes", "--auth", "token"], tmp_path / "r2", env=env)
    assert run.code == 0, run.output[-3000:]
    assert "device.sendState: planned peak 1/s per key, documented 2/s" in run.output
    assert "payloads this run will consume" in run.output
    assert token not in run.output


def test_an_mqtt_probe_is_refused_without_the_risk_flag_and_names_the_bans() -> None:
    data = dict(BASE, fleet={"classes": [{"name": "m", "count": 3, "transport": "mqtt", "report_interval": "1m"}]},
                pacing={"throttle": "probe", "probe": {"limits": ["mqtt.publishIn"]}})
    budget = plan_budget(parse_scenario(data, "t.yaml"), LimitsTable())
    assert budget.exceeds and budget.banned_devices == 3
    (row,) = [p for p in budget.limits if p.limit == "mqtt.publishIn"]
    assert row.over and row.planned_peak_per_s == pytest.approx(31 / 15)
    with pytest.raises(ConfigError) as err:
        check_live_run(budget, allow_risk=False, assume_yes=True, interactive=False)
    assert RISK_FLAG in str(err.value) and "3 MQTT devices disconnected and banned" in str(err.value)
    assert "30 s for a first offence" in str(err.value)
