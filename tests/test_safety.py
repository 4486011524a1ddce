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
