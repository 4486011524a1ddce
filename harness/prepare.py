"""What Locust's ``init`` makes ready before any user starts: the scenario, the target, the fleet.

``prepare`` loads the scenario (with the command line's overrides), the limits table, opens
the target (starts the embedded emulator, or reads a live tenant's credentials and prints the
plan, asking for confirmation) and provisions the fleet. Its result is one typed
``Prepared``, kept for the life of the Locust process (the web UI may start several runs on
it, or prepare again when its form names another scenario or target).

``sized_classes`` turns the scenario's user counts into Locust user classes: subclasses made
for this environment, so the shared classes of ``harness.users`` are never changed at run
time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from geventhttpclient.client import HTTPClientPool
from locust import User, between

from harness import users
from harness.errors import ConfigError
from harness.fleet import Fleet, plan_devices
from harness.harness_calls import HarnessCalls
from harness.limits import LimitsTable, load_limits
from harness.provision import provision
from harness.report.compare import identity_problem, run_identity, scenario_identity
from harness.rundir import make_run_id
from harness.safety import check_live_run, pacing_warnings, plan_budget
from harness.scenario import Scenario, check_distributable, load_scenario
from harness.target import Target, open_target

PreparedKey = tuple[str, str, str]


@dataclass(eq=False)
class Prepared:
    """What init made ready, for every run of this Locust process."""

    scenario: Scenario
    scenario_path: Path
    target: Target
    fleet: Fleet
    limits: LimitsTable
    key: PreparedKey  # the options it was prepared for: the web UI's form may ask for others


def prepared_key(options: argparse.Namespace) -> PreparedKey:
    return (str(options.scenario), str(options.target_url or ""), str(options.limits or ""))


def load_run_scenario(options: argparse.Namespace) -> Scenario:
    """The scenario file with the command line's overrides (``--target-url``, ``--users``, ``--duration``)."""
    scenario = load_scenario(Path(options.scenario))
    if options.target_url or options.scale_users or options.run_time:
        scenario = scenario.with_overrides(target_url=options.target_url or None, users=options.scale_users or None,
                                           duration=options.run_time or None)
    return scenario


def check_baseline_identity(options: argparse.Namespace, scenario: Scenario) -> None:
    """``--baseline`` (already a readable run folder, ``options.check_options``) holds a run of the same
    scenario and target: a regression between other runs would mean nothing."""
    problem = identity_problem(run_identity(Path(options.baseline)), scenario_identity(scenario.to_dict()),
                               f"baseline {options.baseline}", "this run")
    if problem:
        raise ConfigError(f"--baseline: cannot judge a regression between runs of {problem}; use a baseline of "
                          "the same scenario and target (or compare afterwards with losant-load compare --force)")


def prepare(options: argparse.Namespace, calls: HarnessCalls,
            opened: Callable[[Target], None] = lambda target: None) -> Prepared:
    """Scenario, limits, target and fleet. ``opened`` hears of the target as soon as it runs, so a
    failure or a Ctrl-C during provisioning still stops the emulator; ``calls`` counts the
    provisioning calls (the harness's own, never judged)."""
    path = Path(options.scenario)
    scenario = load_run_scenario(options)
    if workers_of(options):
        check_distributable(scenario)
    if options.headless and not options.run_time:
        options.run_time = max(1, round(scenario.duration))  # a headless run ends by itself
    if options.baseline:
        check_baseline_identity(options, scenario)  # before anything starts: a wrong baseline is exit 2, no run
    limits_file = options.limits or (scenario.target.limits if scenario.target.kind == "emulator" else None)
    limits = load_limits(limits_file)
    for warning in pacing_warnings(scenario, limits):
        print(f"losant-load: note: {warning}", file=sys.stderr)
    # a live tenant: credentials first (nothing is started), so no question for a run that cannot sign in
    target = open_target(scenario, path, options.target_url or None, limits_file, auth=options.auth or None)
    opened(target)
    if target.live:
        budget = plan_budget(scenario, limits)
        check_live_run(budget, options.allow_exceeding_live_limits, options.yes, interactive=sys.stdin.isatty())
        if options.yes:  # the question shows the plan; with --yes it is printed all the same
            print(budget.describe(), file=sys.stderr)
    run_id = options.run_id or make_run_id(scenario.name)
    fleet = provision(target.url, target.login, scenario.run_tag, run_id, plan_devices(scenario),
                      application_id=target.application_id, operator_token=scenario.operators.count > 0,
                      log=calls.log("provision"))
    return Prepared(scenario, path, target, fleet, limits, prepared_key(options))


def workers_of(options: argparse.Namespace) -> int:
    """Expected workers in a distributed run (0 for a single process)."""
    return int(getattr(options, "expect_workers", 1) or 1) if getattr(options, "master", False) else 0


def sized_classes(scenario: Scenario, counts: dict[str, int], workers: int = 0) -> dict[str, type[User]]:
    """Every user class of ``harness.users``, as a subclass of the same name configured for this
    scenario: fixed count, pool size (fleet users), think time (operators). Locust finds classes
    by name (a worker spawns what the master names), so the subclasses keep their parents' names.

    One connection pool serves every fleet user of the process: tens of thousands of devices share
    ``fleet.connections`` sockets instead of opening one each."""
    out: dict[str, type[User]] = {}
    connections = max(1, int(scenario.fleet.connections))
    for kind, cls in users.CLASSES.items():
        attrs: dict[str, object] = {"__module__": cls.__module__, "__doc__": cls.__doc__,
                                    "fixed_count": counts.get(kind, 0)}
        if kind == "multiplexed" and counts.get(kind):
            attrs.update(concurrency=connections, client_pool=HTTPClientPool(concurrency=connections))
        if kind == "operator":
            if scenario.operators.count:
                attrs["wait_time"] = between(scenario.operators.think_min, scenario.operators.think_max)
            if workers:
                # Locust dispatches fixed users first, round robin over workers: with only the fleet
                # users fixed, each worker gets exactly one; operators fill the remaining places.
                attrs["fixed_count"] = 0
        out[kind] = type(cls.__name__, (cls,), attrs)
    return out
