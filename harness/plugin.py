"""Locust wiring: custom options, and the run's life cycle on Locust's events.

``locust -f locustfile.py`` (web UI) and ``losant-load run`` (headless) both come
through here, so a run behaves the same either way:

- init: load the scenario, start the embedded emulator (or check the live target's
  credentials), provision the fleet, and size the user classes from the scenario;
- test_start: a fresh run folder, recorder and throttle ledger;
- test_stop: close the samples, read states back, analyse, write summary and report;
- quitting: delete the run's credentials, tear down if asked, stop the emulator.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import gevent.event
from locust import events

from harness import distributed
from harness.console import format_summary
from harness.errors import ConfigError, HarnessError
from harness.harness_calls import HarnessCalls
from harness.rundir import check_output_file, finish_run, make_run_id, new_run_dir, write_run_info
from harness.scenario import user_counts
from harness.session import RunContext

log = logging.getLogger("losant-load")
DEFAULT_SCENARIO = "scenarios/smoke.yaml"
AUTH_CHOICES = ("", "user", "token")  # "": the scenario's target.auth
GC_EVERY = 10.0  # seconds between the run's garbage collections (automatic collection is off)
GC_FULL_EVERY = 6  # every 6th is a full collection, followed by a freeze


class Prepared:
    """What init made ready, kept for the life of the Locust process."""

    def __init__(self) -> None:
        self.scenario: Any = None
        self.scenario_path: Path | None = None
        self.target: Any = None
        self.fleet: Any = None
        self.limits: Any = None
        self.exit_code: int | None = None
        self.master: Any = None
        self.collector: Any = None
        self.interrupts = 0  # Ctrl-C (SIGINT) received: 1 stops and judges, 2 hurries, 3 quits at once
        self.prepared_key: tuple[Any, ...] = ()
        self.summary_text = ""
        self.run_dirs: list[Path] = []
        self.setup_calls = HarnessCalls()  # provisioning: the harness's own calls before any run folder
        self.judging: set[Path | None] = set()  # run folders whose test_stop has begun judging them
        self.device_names: tuple[Any, dict[str, str]] = (None, {})  # (fleet, id -> name) for the Throttles tab
        self.last_verdict: dict[str, str] = {}  # the web UI shows the last run's verdict and report link
        self.last_run: Any = None  # the RunContext of the last run started (quitting records its tear-down)
        # set while no run is being stopped and judged: quitting waits for it, so a second stop
        # (Locust's run-time limit, SIGTERM) never tears the target down under a read-back
        self.judged = gevent.event.Event()
        self.judged.set()


state = Prepared()


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any, **_: Any) -> None:
    group = parser  # Locust's own parser: only it knows include_in_web_ui
    group.add_argument("--scenario", default=DEFAULT_SCENARIO, help=f"scenario YAML file (default: {DEFAULT_SCENARIO})")  # literal: the web UI shows help as it is
    group.add_argument("--target-url", default="", help="live Losant API base URL; empty = the embedded emulator "
                       "(credentials come only from LOSANT_* environment variables)")
    group.add_argument("--limits", default="", include_in_web_ui=False,
                       help="limits YAML the target enforces (overrides the documented table for pacing and judging, "
                            "and is passed to the embedded emulator)")
    group.add_argument("--reports-dir", default="reports", help="where run folders are written (default: reports)")
    group.add_argument("--run-id", default="", include_in_web_ui=False, help="run folder name (default: UTC start time and scenario name)")
    group.add_argument("--scale-users", type=int, default=0, include_in_web_ui=False,
                       help="rescale the fleet to this many device users (standalone devices + gateways)")
    group.add_argument("--auth", default="", choices=AUTH_CHOICES, include_in_web_ui=False,
                       help="live tenant: sign in as a user (LOSANT_EMAIL, LOSANT_PASSWORD) or with an API token "
                            "(LOSANT_API_TOKEN); overrides the scenario's target.auth")
    group.add_argument("--yes", action="store_true", include_in_web_ui=False,
                       help="confirm a run against a live tenant without asking")
    group.add_argument("--allow-exceeding-live-limits", action="store_true", include_in_web_ui=False,
                       help="allow probe mode or rates above documented limits against a live tenant")
    group.add_argument("--baseline", default="", include_in_web_ui=False,
                       help="a previous run folder: the report compares against it; a regression fails the run")
    group.add_argument("--regression-threshold", type=float, default=None, include_in_web_ui=False,
                       help="with --baseline: relative floor of a regression (default: compare's, 0.1)")
    group.add_argument("--regression-min-change-ms", type=float, default=None, include_in_web_ui=False,
                       help="with --baseline: absolute floor of a latency regression in ms (default: compare's)")
    group.add_argument("--junit", default="", include_in_web_ui=False,
                       help="also write the verdict as JUnit XML to this file (the run folder always has junit.xml)")
    group.add_argument("--no-record", action="store_true", include_in_web_ui=False,
                       help="benchmarks only: keep no samples (no analysis, no report), to measure the recorder's cost")
    group.add_argument("--teardown", action="store_true", include_in_web_ui=False,
                       help="after the run, delete the devices (and application) carrying the run tag")


def _load(options: Any) -> None:
    from harness.limits import load_limits
    from harness.provision import provision
    from harness.scenario import load_scenario
    from harness.target import open_target

    path = Path(options.scenario)
    scenario = load_scenario(path)
    if options.target_url or options.scale_users or options.run_time:
        scenario = scenario.with_overrides(target_url=options.target_url or None, users=options.scale_users or None,
                                           duration=options.run_time or None)
    if options.headless and not options.run_time:
        options.run_time = max(1, round(scenario.duration))  # a headless run ends by itself
    state.scenario, state.scenario_path = scenario, path
    if getattr(options, "junit", ""):
        check_output_file(Path(options.junit), "--junit")
    if getattr(options, "baseline", ""):
        _check_baseline(options, scenario)  # before anything starts: a wrong baseline is exit 2, no run
    limits_file = options.limits or (scenario.target.limits if scenario.target.kind == "emulator" else None)
    state.limits = load_limits(limits_file)
    from harness.safety import pacing_warnings

    for warning in pacing_warnings(scenario, state.limits):
        print(f"losant-load: note: {warning}", file=sys.stderr)
    auth = getattr(options, "auth", "") or None
    if scenario.target.kind == "live":
        from harness.safety import check_live_run, plan_budget

        # credentials first (nothing is started for a live tenant): no question for a run that cannot sign in
        state.target = open_target(scenario, path, options.target_url or None, limits_file, auth=auth)
        budget = plan_budget(scenario, state.limits)
        check_live_run(budget, options.allow_exceeding_live_limits, options.yes, interactive=sys.stdin.isatty())
        if options.yes:  # the question shows the plan; with --yes it is printed all the same
            print(budget.describe(), file=sys.stderr)
    else:
        state.target = open_target(scenario, path, options.target_url or None, limits_file, auth=auth)
    from harness.fleet import plan_devices

    run_id = options.run_id or make_run_id(scenario.name)
    state.fleet = provision(state.target.url, state.target.login, scenario.run_tag, run_id,
                            plan_devices(scenario), application_id=state.target.application_id,
                            operator_token=scenario.operators.count > 0, log=state.setup_calls.log("provision"))
    state.prepared_key = _prepared_key(options)


def _check_baseline(options: Any, scenario: Any) -> None:
    """``--baseline``: a run folder with samples, of the same scenario and target as this run."""
    from harness.report.compare import (
        check_run_folder,
        identity_problem,
        run_identity,
        scenario_identity,
        validate_options,
    )

    try:
        check_run_folder(Path(options.baseline), "--baseline")
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from None
    problem = identity_problem(run_identity(Path(options.baseline)), scenario_identity(scenario.to_dict()),
                               f"baseline {options.baseline}", "this run")
    if problem:
        raise ConfigError(f"--baseline: cannot judge a regression between runs of {problem}; use a baseline of "
                          "the same scenario and target (or compare afterwards with losant-load compare --force)")
    opts = _compare_options(options)
    bad = validate_options(opts.get("threshold", 0.1), opts.get("min_change_ms", 2.0))
    if bad:
        raise ConfigError(bad.replace("--threshold", "--regression-threshold").replace(
            "--min-change-ms", "--regression-min-change-ms"))


def _compare_options(options: Any) -> dict[str, Any]:
    out = {}
    if getattr(options, "regression_threshold", None) is not None:
        out["threshold"] = options.regression_threshold
    if getattr(options, "regression_min_change_ms", None) is not None:
        out["min_change_ms"] = options.regression_min_change_ms
    return out


def _workers(options: Any) -> int:
    """Expected workers in a distributed run (0 for a single process)."""
    return int(getattr(options, "expect_workers", 1) or 1) if getattr(options, "master", False) else 0


def _configure_classes(scenario: Any, counts: dict[str, int]) -> None:
    """Pool size and think time come from the scenario (workers do this on the master's setup)."""
    from harness import users

    if counts.get("multiplexed"):
        from geventhttpclient.client import HTTPClientPool

        # one pool for every fleet user of the process: tens of thousands of devices share
        # ``fleet.connections`` sockets instead of opening one each
        connections = max(1, int(scenario.fleet.connections))
        users.CLASSES["multiplexed"].concurrency = connections
        users.CLASSES["multiplexed"].client_pool = HTTPClientPool(concurrency=connections)
    if scenario.operators.count:
        users.CLASSES["operator"].wait_time = _between(scenario.operators.think_min, scenario.operators.think_max)


def _prepared_key(options: Any) -> tuple[Any, ...]:
    return (options.scenario, options.target_url, options.limits)


def _switch(environment: Any) -> None:
    from harness.provision import release_access

    release_access(state.fleet)
    state.target.stop()
    state.fleet = state.target = None
    _load(environment.parsed_options)
    _size_user_classes(environment)


def _size_user_classes(environment: Any) -> None:
    from harness import users

    workers = _workers(environment.parsed_options)
    counts = user_counts(state.scenario, workers)
    _configure_classes(state.scenario, counts)
    chosen = []
    for kind, cls in users.CLASSES.items():
        cls.fixed_count = counts.get(kind, 0)
        if cls.fixed_count:
            chosen.append(cls)
    if workers and counts["operator"]:
        # Locust dispatches fixed users first, round robin over workers: with only the fleet
        # users fixed, each worker gets exactly one; operators fill the remaining places.
        users.CLASSES["operator"].fixed_count = 0
    environment.user_classes[:] = chosen
    environment.host = state.target.url
    opts = environment.parsed_options
    if opts is not None:
        total = sum(counts.values())
        if not getattr(opts, "num_users", None):
            opts.num_users = total
        if not getattr(opts, "spawn_rate", None):
            opts.spawn_rate = state.scenario.ramp_up


def _between(lo: float, hi: float) -> Any:
    from locust import between

    return between(lo, hi)


@events.init.add_listener
def on_init(environment: Any, runner: Any = None, **_: Any) -> None:
    _ENV["env"] = environment
    if getattr(environment.parsed_options, "worker", False):
        _register_worker(environment, runner)
        return
    if getattr(environment.parsed_options, "master", False):
        runner.register_message(distributed.FINAL, lambda environment, msg, **kw: _master_ingest(msg.data))
    # one INFO line per provisioning request (httpx's default) would flood the terminal and the web
    # UI's Logs tab; provisioning prints its own progress line, failures are raised with their cause
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        _check_web_port(environment)
        _load(environment.parsed_options)
        _size_user_classes(environment)
        if environment.web_ui is not None:
            from harness import webui

            webui.install(environment, lambda: _live_snapshot(environment))
            opts = environment.parsed_options
            if not opts.run_time:  # the form's run time starts as the scenario's duration
                opts.run_time = max(1, round(state.scenario.duration))
            webui.install_run_rules(environment, lambda form: _check_swarm(environment, form),
                                    lambda: _stopped_early(environment), lambda: Path(opts.reports_dir))
    except (ConfigError, HarnessError, KeyboardInterrupt) as exc:
        if isinstance(exc, KeyboardInterrupt):
            print("\nlosant-load: interrupted while preparing the run: nothing was run", file=sys.stderr)
        else:
            print(f"losant-load: {exc}", file=sys.stderr)
        _release_and_stop()
        sys.exit(2)
    _install_interrupt(environment)
    _hide_locust_tables(environment.parsed_options)
    print(f"losant-load: target {state.target.url} ({'live tenant' if state.target.live else 'embedded emulator'}), "
          f"{len(state.fleet.devices)} devices provisioned in application {state.fleet.application_id}", file=sys.stderr)


def _hide_locust_tables(options: Any) -> None:
    """Headless: Locust's own statistics tables are not printed (``--print-stats`` brings them back).

    They are approximate (rounded percentiles) and count every 429 as a failure, which is not
    this harness's vocabulary (errors = failures other than 429; throttled = 429). The exact
    figures are in the verdict printed at the end, summary.json and the report; Locust's
    table stays in the run folder as ``locust_stats.csv`` for those who know its format."""
    if getattr(options, "headless", False) and not getattr(options, "print_stats", False):
        logging.getLogger("locust.stats_logger").disabled = True


def _freeze_heap() -> None:
    """Take the garbage collector off the per-request path for the run.

    Everything set up so far (modules, scenario, fleet, schemas) is frozen out of the
    collector's reach, and automatic collection is off while the run lasts: measured in
    bench/generator.py, the collector's bookkeeping cost ~15% of the generator's CPU per
    request at the default thresholds (bare Locust allocates less per request). A
    greenlet collects every ``GC_EVERY`` seconds instead, so cycles are still freed and
    memory stays bounded; on the small heap left after freezing that takes a few ms.
    """
    import gc

    import gevent

    gc.collect()
    gc.freeze()
    gc.disable()

    def collect() -> None:
        # young generations often (short-lived cycles); a full collection once a minute, then
        # freeze what survived, so the next full one walks only what is new (with a 100,000-device
        # fleet a full walk of every reporter took ~0.5 s, which showed as lateness)
        n = 0
        while True:
            gevent.sleep(GC_EVERY)
            n += 1
            if n % GC_FULL_EVERY:
                gc.collect(1)
            else:
                gc.collect()
                gc.freeze()

    if state.collector is None:
        state.collector = gevent.spawn(collect)


def _freeze_new() -> None:
    """A user's long-lived setup (reporters, tokens, timeline) joins the frozen heap without a
    walk (``gc.freeze`` moves what is tracked, in constant time). With a 100,000-device fleet
    the first young collection after the users set up walked it for ~350 ms, and the first
    full one ~490 ms (bench/fleet.py); garbage made during setup stays until the run ends."""
    import gc

    gc.freeze()


def _thaw_heap() -> None:
    import gc

    if state.collector is not None:
        state.collector.kill(block=False)
        state.collector = None
    gc.unfreeze()  # what the run froze is collectable again (the web UI may start another run)
    gc.enable()


def _live_snapshot(environment: Any) -> dict[str, Any]:
    ctx = getattr(environment, "losant", None)
    snap: dict[str, Any] = ctx.live_snapshot() if ctx is not None else {
        "limits": [], "corrected_p99_ms": {}, "throttled_total": 0}
    if ctx is not None:  # device names next to their ids (built once per fleet)
        if state.device_names[0] is not ctx.fleet:
            state.device_names = (ctx.fleet, {d.id: d.name for d in ctx.fleet.devices})
        names = state.device_names[1]
        for lim in snap.get("limits") or []:
            for entry in lim.get("busiest") or []:
                if entry.get("key") in names:
                    entry["name"] = names[entry["key"]]
    if state.last_verdict:
        snap["last_run"] = state.last_verdict
    return snap


def _check_swarm(environment: Any, form: dict[str, str]) -> str | None:
    """A start request from the web UI's form: the user count is the scenario's (its fleet and
    operators are provisioned for it), so another count is refused with the one to use."""
    from harness.scenario import load_scenario

    opts = environment.parsed_options
    path = form.get("scenario") or opts.scenario
    try:
        scenario = state.scenario
        if Path(path) != state.scenario_path:  # the form names another scenario: as _load will size it
            scenario = load_scenario(Path(path))
            if opts.scale_users:
                scenario = scenario.with_overrides(users=opts.scale_users)
    except (ConfigError, HarnessError) as exc:
        return f"scenario: {exc}"
    counts = user_counts(scenario, _workers(opts))
    total = sum(counts.values())
    asked = form.get("user_count")
    if asked is not None and asked.strip() != str(total):
        return (f"Number of users {asked}: the scenario {scenario.name} runs {total} users ("
                + ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
                + f"), one per device, gateway or fleet chunk it provisioned; enter {total}, or change the fleet "
                "in the scenario (or with losant-load run --users N)")
    return None


def _stopped_early(environment: Any) -> None:
    ctx = getattr(environment, "losant", None)
    if ctx is not None and ctx.incomplete is None:
        ctx.incomplete = "stopped from the web UI before its run time"


def _install_interrupt(environment: Any) -> None:
    """Ctrl-C as a person expects it (a terminal sends SIGINT to its foreground process group:
    the harness only, as the embedded emulator runs in a session of its own).

    First: the load stops, accepted states are read back, what was gathered is judged
    (marked incomplete) and the report written; then the run's credentials are deleted and
    the emulator stopped (quitting); exit 2. Second: the same without the disconnect
    announcements and the read-back (integrity "not checked"). Third: stop the emulator and
    quit at once, without a report. (Left to Python, the KeyboardInterrupt lands in whichever
    greenlet happens to run.)

    A plain ``signal.signal`` handler, not gevent's: gevent runs its handlers from the event
    loop, which a CPU-bound analysis holds for tens of seconds, while Python runs this one
    between two bytecodes. So it only sets flags, spawns, or exits; it never blocks."""

    def say(text: str) -> None:  # os.write: the handler may interrupt a print to the same stream
        os.write(sys.stderr.fileno(), (text + "\n").encode())

    def interrupt(signum: int = signal.SIGINT, frame: Any = None) -> None:
        state.interrupts += 1
        ctx = getattr(environment, "losant", None)
        runner = environment.runner
        if state.interrupts == 1:
            say("\nlosant-load: interrupted: stopping the load, reading back and judging what was gathered "
                "(Ctrl-C again to skip the read-back)")
            if ctx is not None and runner is not None and runner.state in ("spawning", "running"):
                ctx.incomplete = "interrupted before the planned end (SIGINT or SIGTERM)"

            def stop() -> None:
                if runner is not None:
                    runner.quit()
                if environment.web_ui is not None:  # the web UI's greenlet is Locust's main one then
                    environment.web_ui.stop()

            gevent.spawn(stop)
        elif state.interrupts == 2:
            say("losant-load: interrupted again: skipping the read-back; the report is still written and the "
                "emulator stopped (Ctrl-C once more to quit at once, without a report)")
            if ctx is not None:
                ctx.hurried = True
        else:
            say("losant-load: quitting at once, without a report")
            if state.target is not None and state.target.emulator is not None and state.target.emulator.proc:
                state.target.emulator.proc.terminate()  # in a session of its own: nobody else stops it
            os._exit(2)

    signal.signal(signal.SIGINT, interrupt)


def _check_web_port(environment: Any) -> None:
    """The web UI's port is checked before anything is provisioned (Locust binds it only later)."""
    from harness.preflight import check_web_port

    opts = environment.parsed_options
    if environment.web_ui is not None and opts is not None and not getattr(opts, "headless", False):
        check_web_port(getattr(opts, "web_host", "") or "", int(getattr(opts, "web_port", 8089)))


def _release_and_stop(ctx: RunContext | None = None, teardown: bool = False) -> None:
    """Delete the run's credentials, tear down if asked (the harness's own calls, added to the last
    run's ``harness_calls.json``), then stop the emulator."""
    from harness.provision import release_access
    from harness.provision import teardown as remove_tagged

    calls = ctx.own_calls if ctx is not None else state.setup_calls
    try:
        if state.fleet is not None:
            release_access(state.fleet, log=calls.log("release"))
            if teardown:
                removed = remove_tagged(state.target.url, state.target.login, state.scenario.run_tag,
                                        state.target.application_id, log=calls.log("teardown"))
                print(f"losant-load: teardown removed {removed} devices tagged {state.scenario.run_tag}", file=sys.stderr)
    except HarnessError as exc:
        print(f"losant-load: {exc}", file=sys.stderr)
    finally:
        if ctx is not None and ctx.run_dir is not None and ctx.run_dir.is_dir():
            calls.write(ctx.run_dir)
        if state.target is not None:
            state.target.stop()


def _master_ingest(data: Any) -> None:
    if state.master is not None:
        state.master.ingest(data)


@events.worker_report.add_listener
def on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    _master_ingest(data.get("losant"))


def _register_worker(environment: Any, runner: Any) -> None:
    """A worker gets its context from the master's setup message, not from files."""

    def on_setup(environment: Any, msg: Any, **_: Any) -> None:
        ctx = distributed.worker_context(msg.data, runner.client_id)
        _configure_classes(ctx.scenario, user_counts(ctx.scenario, len(msg.data["workers"])))
        environment.host = ctx.fleet.base_url
        environment.losant = ctx
        _freeze_heap()

    def on_owners(environment: Any, msg: Any, **_: Any) -> None:
        ctx = getattr(environment, "losant", None)
        if ctx is not None:
            distributed.apply_owners(ctx, runner.client_id, msg.data)

    if getattr(environment.parsed_options, "processes", None):
        # forked by ``--workers N`` (Locust's --processes): a terminal's Ctrl-C reaches this process
        # too, but the master stops the run and asks for the last samples; dying first would lose them
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    runner.register_message(distributed.SETUP, on_setup)
    runner.register_message(distributed.OWNERS, on_owners)
    runner.register_message(distributed.STOP, lambda environment, msg, **kw: environment.runner.stop())


@events.report_to_master.add_listener
def on_report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
    ctx = getattr(_ENV.get("env"), "losant", None)
    if ctx is not None and ctx.run_dir is None and ctx.owned is not None:
        data["losant"] = distributed.worker_payload(ctx, ctx.sent_counters)


_ENV: dict[str, Any] = {}


@events.test_start.add_listener
def on_test_start(environment: Any, **_: Any) -> None:
    _ENV["env"] = environment
    if state.fleet is None:
        return
    opts = environment.parsed_options
    if _prepared_key(opts) != state.prepared_key:
        # the web UI's form changed the scenario or target: prepare again before users start
        try:
            _switch(environment)
        except (ConfigError, HarnessError) as exc:
            print(f"losant-load: {exc}", file=sys.stderr)
            environment.losant = None
            return
    run_dir = new_run_dir(Path(opts.reports_dir), state.scenario, opts.run_id if not state.run_dirs else "")
    write_run_info(run_dir, state.scenario, state.limits, getattr(opts, "run_time", None))
    state.run_dirs.append(run_dir)
    ctx = RunContext(state.scenario, state.fleet, state.target.login, state.limits, run_dir,
                     record=not opts.no_record)
    ctx.own_calls = HarnessCalls(state.setup_calls.phases)  # the set-up this run stands on, then its own
    state.last_run = ctx
    _freeze_heap()
    ctx.on_user_ready = _freeze_new
    environment.losant = ctx
    if getattr(opts, "master", False):
        state.master = distributed.Master(environment, ctx)
        state.master.start()
    if getattr(opts, "headless", False):
        import gevent

        from harness.console import progress_loop

        ctx.progress = gevent.spawn(progress_loop, environment, ctx, getattr(opts, "run_time", None))


@events.spawning_complete.add_listener
def on_spawning_complete(**_: Any) -> None:
    """Every user has claimed its devices: freeze those long-lived objects out of the collector's walks.

    The moment is also the end of the ramp-up: the steady window for throughput starts here."""
    import gc
    import time

    ctx = getattr(_ENV.get("env"), "losant", None)
    if ctx is not None and getattr(ctx, "spawned_at", None) is None:
        ctx.spawned_at = time.time()
    if not gc.isenabled():
        gc.freeze()


@events.test_stopping.add_listener
def on_test_stopping(environment: Any, **_: Any) -> None:
    """Users are about to be told to stop: the steady window for throughput ends here."""
    import time

    ctx = getattr(environment, "losant", None)
    if ctx is not None and ctx.stopping_at is None:
        ctx.stopping_at = time.time()
        if ctx.run_dir is not None:
            state.judged.clear()  # until test_stop has written the report


@events.test_stop.add_listener
def on_test_stop(environment: Any, **_: Any) -> None:
    ctx = getattr(environment, "losant", None)
    if ctx is None:
        return
    _thaw_heap()
    if ctx.run_dir is None:  # a worker: what is left goes to the master before it judges
        environment.runner.send_message(distributed.FINAL, distributed.worker_payload(
            ctx, ctx.sent_counters, environment.runner.client_id, final=True))
        return
    if ctx.run_dir in state.judging:  # a second stop (the run-time limit during Ctrl-C's): one judgement
        state.judged.wait()
        return
    state.judging.add(ctx.run_dir)
    try:
        _judge(environment, ctx)
    finally:
        state.judged.set()


def _judge(environment: Any, ctx: RunContext) -> None:
    assert ctx.run_dir is not None  # workers (no run folder) send their samples to the master instead
    if state.master is not None:
        state.master.stop()
        ctx.worker_events = state.master.events
    if ctx.progress is not None:
        ctx.progress.kill(block=False)
    try:
        baseline = Path(environment.parsed_options.baseline) if environment.parsed_options.baseline else None
        summary = finish_run(environment, ctx, state.target, baseline, _compare_options(environment.parsed_options),
                             ctx.own_calls, lambda: ctx.hurried)
        regression = (summary.get("regression") or {}).get("verdict")
        code = 0 if summary.get("passed") and regression != "regression" else 1
        if summary.get("complete") is False or regression == "not compared":
            code = 2
        state.summary_text = format_summary(summary, ctx.run_dir)
        if not getattr(environment.parsed_options, "headless", False):
            print(state.summary_text, file=sys.stderr)
            _show_verdict(environment, summary, ctx.run_dir)
    except Exception as exc:  # the run's samples are on disk; say what failed
        log.exception("analysis failed")
        print(f"losant-load: analysis of {ctx.run_dir} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 2
    state.exit_code = code
    environment.process_exit_code = code


def _show_verdict(environment: Any, summary: dict[str, Any], run_dir: Path) -> None:
    """The web UI: the verdict, the criteria and the report's link in the Throttles tab and the Logs tab."""
    from harness.console import verdict_word

    verdicts = [v for v in summary.get("verdicts") or [] if isinstance(v, dict)]
    failed = [str(v.get("name")) for v in verdicts if v.get("passed") is False]
    criteria = f"{len(verdicts) - len(failed)} of {len(verdicts)} criteria passed" + (
        f"; failed: {', '.join(failed)}" if failed else "")
    report = f"/reports/{run_dir.name}/index.html"
    state.last_verdict = {"verdict": verdict_word(summary), "run_id": run_dir.name, "criteria": criteria,
                          "report": report}
    # the Logs tab shows what the terminal printed (its reader only: the terminal has it already)
    readers = [h for h in logging.getLogger().handlers if type(h).__name__ == "LogReader"]
    for line in [*state.summary_text.splitlines(), f"  report in this web UI: {report}"]:
        if line.strip():
            record = log.makeRecord(log.name, logging.INFO, __file__, 0, line, (), None)
            for reader in readers:
                reader.handle(record)


@events.quitting.add_listener
def on_quitting(environment: Any, **_: Any) -> None:
    runner = environment.runner
    ctx = getattr(environment, "losant", None)
    if ctx is not None and runner is not None and runner.state in ("spawning", "running"):
        # SIGTERM mid-run (Locust's handler quits at once): stop the users and judge what was
        # gathered, marked incomplete, while the target is still up for the read-back
        ctx.incomplete = "interrupted before the planned end (SIGINT or SIGTERM)"
        runner.stop()
    state.judged.wait()  # a stop under way in another greenlet (Ctrl-C's) writes its report first
    _release_and_stop(state.last_run, teardown=bool(getattr(environment.parsed_options, "teardown", False)))
    if state.exit_code is not None:
        environment.process_exit_code = state.exit_code


@events.quit.add_listener
def on_quit(exit_code: int, **_: Any) -> None:
    """Headless: the verdict goes last, after Locust's own tables."""
    if state.summary_text and state.fleet is not None and getattr(_ENV.get("env"), "parsed_options", None) is not None \
            and _ENV["env"].parsed_options.headless:
        print(state.summary_text, file=sys.stderr)
