"""The run's life cycle on Locust's events, for one Locust process.

``locust -f locustfile.py`` (web UI) and ``losant-load run`` (headless) both come through
here (``harness.plugin`` registers it), so a run behaves the same either way:

- init (``Lifecycle.init``): check the options, prepare (scenario, target, fleet:
  ``harness.prepare``), size the user classes, install the web UI's tab and rules and the
  Ctrl-C handler;
- test_start: a fresh run folder, a ``RunContext`` (recorder, ledger) set on the environment,
  the GC policy on;
- spawning_complete / test_stopping: the steady window's bounds;
- test_stop: close the samples, read states back, analyse, write summary and report (once per
  run, however many stops are asked for);
- quitting: wait for that, delete the run's credentials, tear down if asked, stop the emulator.

Everything a process keeps between those events is declared on ``Lifecycle`` and lives on
Locust's ``Environment`` (``lifecycle_of``); nothing is module-global, so a test drives the
whole cycle on a fake environment with fake preparation and judging.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import gevent.event

from harness import distributed, webui
from harness.console import format_summary, progress_loop, verdict_word
from harness.errors import ConfigError, HarnessError
from harness.fleet import Fleet
from harness.gc_policy import GcPolicy
from harness.harness_calls import HarnessCalls
from harness.interrupt import INTERRUPTED, Interrupts
from harness.live import live_snapshot
from harness.options import check_options, compare_options
from harness.prepare import Prepared, load_run_scenario, prepare, prepared_key, sized_classes, workers_of
from harness.provision import release_access
from harness.provision import teardown as remove_tagged
from harness.rundir import finish_run, new_run_dir, write_run_info
from harness.scenario import user_counts
from harness.session import RunContext, make_recorder, run_of, set_run
from harness.target import Target

log = logging.getLogger("losant-load")

#: ``finish_run``'s shape: (environment, run, target, baseline, compare options, own calls, hurried) -> summary.
Finish = Callable[[Any, RunContext, Target, "Path | None", dict[str, float], HarnessCalls, Callable[[], bool]],
                  dict[str, Any]]
Prepare = Callable[[argparse.Namespace, HarnessCalls, Callable[[Target], None]], Prepared]

_ATTR = "losant_lifecycle"


def lifecycle_of(environment: Any) -> Lifecycle | None:
    """The environment's life cycle (set once, at init)."""
    life = getattr(environment, _ATTR, None)
    return life if isinstance(life, Lifecycle) else None


def exit_code_of(summary: dict[str, Any]) -> int:
    """0 pass, 1 a criterion failed or a regression, 2 incomplete or not compared."""
    regression = (summary.get("regression") or {}).get("verdict")
    code = 0 if summary.get("passed") and regression != "regression" else 1
    if summary.get("complete") is False or regression == "not compared":
        code = 2
    return code


class Lifecycle:
    """One Locust process's harness: what init prepared and the runs it started.

    ``prepare``, ``finish`` and ``clock`` are injectable (tests run the cycle without a target);
    ``signals=False`` leaves the process's SIGINT handler alone."""

    def __init__(self, environment: Any, prepare: Prepare = prepare, finish: Finish = finish_run,
                 clock: Callable[[], float] = time.time, gc_policy: GcPolicy | None = None) -> None:
        self.environment = environment
        self._prepare, self._finish, self.clock = prepare, finish, clock
        self.prepared: Prepared | None = None
        self.target: Target | None = None  # as soon as it runs (a failed preparation still stops it)
        self.setup_calls = HarnessCalls()  # provisioning: the harness's own calls before any run folder
        self.run_dirs: list[Path] = []
        self.last_run: RunContext | None = None  # the last run started (quitting records its tear-down)
        self.master: distributed.Master | None = None
        self.gc = gc_policy or GcPolicy()
        self.interrupts = Interrupts(environment, lambda: self.target)
        self.exit_code: int | None = None
        self.summary_text = ""
        self.judging: set[Path] = set()  # run folders whose test_stop has begun judging them
        # set while no run is being stopped and judged: quitting waits for it, so a second stop
        # (Locust's run-time limit, SIGTERM) never tears the target down under a read-back
        self.judged = gevent.event.Event()
        self.judged.set()
        self.last_verdict: dict[str, str] = {}  # the web UI shows the last run's verdict and report link
        self._names: tuple[Fleet | None, dict[str, str]] = (None, {})  # id -> name for the Throttles tab

    @property
    def options(self) -> argparse.Namespace:
        opts = self.environment.parsed_options
        return opts if opts is not None else argparse.Namespace()

    # -- init ----------------------------------------------------------------------------------
    def attach(self) -> None:
        """Set on the environment (once) and listen to its events."""
        setattr(self.environment, _ATTR, self)
        ev = self.environment.events
        ev.test_start.add_listener(self.on_test_start)
        ev.spawning_complete.add_listener(self.on_spawning_complete)
        ev.test_stopping.add_listener(self.on_test_stopping)
        ev.test_stop.add_listener(self.on_test_stop)
        ev.quitting.add_listener(self.on_quitting)
        ev.quit.add_listener(self.on_quit)
        ev.worker_report.add_listener(self.on_worker_report)
        ev.report_to_master.add_listener(self.on_report_to_master)

    def init(self, runner: Any, signals: bool = True) -> None:
        """Locust's ``init``: the master and a single process prepare; a worker waits for the master's setup.
        A configuration error or a Ctrl-C here prints one line and exits 2 (the target stopped)."""
        self.attach()
        opts = self.options
        if getattr(opts, "worker", False):
            self._register_worker(runner)
            return
        if getattr(opts, "master", False):
            runner.register_message(distributed.FINAL, lambda environment, msg, **kw: self._ingest(msg.data))
        # one INFO line per provisioning request (httpx's default) would flood the terminal and the web
        # UI's Logs tab; provisioning prints its own progress line, failures are raised with their cause
        logging.getLogger("httpx").setLevel(logging.WARNING)
        web_ui = self.environment.web_ui is not None and not getattr(opts, "headless", False)
        try:
            check_options(opts, web_ui=web_ui)
            self._prepare_run(opts)
            self._size_user_classes()
            if self.environment.web_ui is not None:
                self._install_web_ui(opts)
        except (ConfigError, HarnessError, KeyboardInterrupt) as exc:
            if isinstance(exc, KeyboardInterrupt):
                print("\nlosant-load: interrupted while preparing the run: nothing was run", file=sys.stderr)
            else:
                print(f"losant-load: {exc}", file=sys.stderr)
            self.release_and_stop()
            sys.exit(2)
        if signals:
            self.interrupts.install()
        _hide_locust_tables(opts)
        prepared = self.require_prepared()
        print(f"losant-load: target {prepared.target.url} "
              f"({'live tenant' if prepared.target.live else 'embedded emulator'}), "
              f"{len(prepared.fleet.devices)} devices provisioned in application {prepared.fleet.application_id}",
              file=sys.stderr)

    def require_prepared(self) -> Prepared:
        if self.prepared is None:
            raise HarnessError("the run was not prepared")
        return self.prepared

    def _prepare_run(self, opts: argparse.Namespace) -> None:
        def opened(target: Target) -> None:
            self.target = target

        self.prepared = self._prepare(opts, self.setup_calls, opened)
        self.target = self.prepared.target

    def _size_user_classes(self) -> None:
        prepared = self.require_prepared()
        opts = self.options
        workers = workers_of(opts)
        counts = user_counts(prepared.scenario, workers)
        sized = sized_classes(prepared.scenario, counts, workers)
        self.environment.user_classes[:] = [cls for kind, cls in sized.items() if counts.get(kind)]
        self.environment.host = prepared.target.url
        if not getattr(opts, "num_users", None):
            opts.num_users = sum(counts.values())
        if not getattr(opts, "spawn_rate", None):
            opts.spawn_rate = prepared.scenario.ramp_up

    def _switch(self) -> None:
        """The web UI's form names another scenario or target: release this one, prepare again."""
        prepared = self.require_prepared()
        release_access(prepared.fleet)
        prepared.target.stop()
        self.prepared = self.target = None
        self._prepare_run(self.options)
        self._size_user_classes()

    def _install_web_ui(self, opts: argparse.Namespace) -> None:
        webui.install(self.environment, self.live_snapshot)
        if not opts.run_time:  # the form's run time starts as the scenario's duration
            opts.run_time = max(1, round(self.require_prepared().scenario.duration))
        webui.install_run_rules(self.environment, self.check_swarm, self.stopped_early, lambda: Path(opts.reports_dir))

    # -- the web UI --------------------------------------------------------------------------
    def live_snapshot(self) -> dict[str, Any]:
        """What the Throttles tab shows: live figures from the samples still in memory, device names
        next to their ids, the last run's verdict."""
        run = run_of(self.environment)
        snap: dict[str, Any] = live_snapshot(run.recorder.samples(), run.limits) if run is not None else {
            "limits": [], "corrected_p99_ms": {}, "throttled_total": 0}
        if run is not None:  # device names next to their ids (built once per fleet)
            if self._names[0] is not run.fleet:
                self._names = (run.fleet, {d.id: d.name for d in run.fleet.devices})
            names = self._names[1]
            for lim in snap.get("limits") or []:
                for entry in lim.get("busiest") or []:
                    if entry.get("key") in names:
                        entry["name"] = names[entry["key"]]
        if self.last_verdict:
            snap["last_run"] = self.last_verdict
        return snap

    def check_swarm(self, form: dict[str, str]) -> str | None:
        """A start request from the web UI's form: the user count is the scenario's (its fleet and
        operators are provisioned for it), so another count is refused with the one to use."""
        opts = self.options
        prepared = self.require_prepared()
        path = form.get("scenario") or opts.scenario
        try:
            scenario = prepared.scenario
            if Path(path) != prepared.scenario_path:  # the form names another scenario: as prepare will size it
                scenario = load_run_scenario(argparse.Namespace(
                    scenario=path, target_url="", scale_users=opts.scale_users, run_time=None))
        except (ConfigError, HarnessError) as exc:
            return f"scenario: {exc}"
        counts = user_counts(scenario, workers_of(opts))
        total = sum(counts.values())
        asked = form.get("user_count")
        if asked is not None and asked.strip() != str(total):
            return (f"Number of users {asked}: the scenario {scenario.name} runs {total} users ("
                    + ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
                    + f"), one per device, gateway or fleet chunk it provisioned; enter {total}, or change the fleet "
                    "in the scenario (or with losant-load run --users N)")
        return None

    def stopped_early(self) -> None:
        run = run_of(self.environment)
        if run is not None and run.incomplete is None:
            run.incomplete = "stopped from the web UI before its run time"

    # -- a run -------------------------------------------------------------------------------
    def on_test_start(self, **_: Any) -> None:
        environment = self.environment
        if self.prepared is None:  # a worker (its run comes with the master's setup) or nothing prepared
            return
        opts = self.options
        if prepared_key(opts) != self.prepared.key:
            # the web UI's form changed the scenario or target: prepare again before users start
            try:
                self._switch()
            except (ConfigError, HarnessError) as exc:
                print(f"losant-load: {exc}", file=sys.stderr)
                set_run(environment, None)
                return
        prepared = self.require_prepared()
        run_dir = new_run_dir(Path(opts.reports_dir), prepared.scenario, opts.run_id if not self.run_dirs else "")
        write_run_info(run_dir, prepared.scenario, prepared.limits, getattr(opts, "run_time", None))
        self.run_dirs.append(run_dir)
        run = RunContext(prepared.scenario, prepared.fleet, prepared.target.login, prepared.limits, run_dir,
                         make_recorder(run_dir, record=not getattr(opts, "no_record", False)), start=self.clock())
        run.own_calls = HarnessCalls(self.setup_calls.phases)  # the set-up this run stands on, then its own
        run.mqtt_url = prepared.target.mqtt_url  # MQTT devices' broker (harness.target)
        self.last_run = run
        self.gc.freeze()
        run.on_user_ready = self.gc.freeze_new
        set_run(environment, run)
        if getattr(opts, "master", False):
            self.master = distributed.Master(environment, run)
            self.master.start()
        if getattr(opts, "headless", False):
            run.progress = gevent.spawn(progress_loop, environment, run, getattr(opts, "run_time", None))

    def on_spawning_complete(self, **_: Any) -> None:
        """Every user has claimed its devices: freeze those long-lived objects out of the collector's walks.
        The moment is also the end of the ramp-up: the steady window for throughput starts here."""
        run = run_of(self.environment)
        if run is not None and run.spawned_at is None:
            run.spawned_at = self.clock()
        self.gc.spawning_complete()

    def on_test_stopping(self, **_: Any) -> None:
        """Users are about to be told to stop: the steady window for throughput ends here."""
        run = run_of(self.environment)
        if run is not None and run.stopping_at is None:
            run.stopping_at = self.clock()
            if run.run_dir is not None:
                self.judged.clear()  # until test_stop has written the report

    def on_test_stop(self, **_: Any) -> None:
        environment = self.environment
        run = run_of(environment)
        if run is None:
            return
        self.gc.thaw()
        if run.run_dir is None:  # a worker: what is left goes to the master before it judges
            environment.runner.send_message(distributed.FINAL, distributed.worker_payload(
                run, run.sent_counters, environment.runner.client_id, final=True))
            return
        if run.run_dir in self.judging:  # a second stop (the run-time limit during Ctrl-C's): one judgement
            self.judged.wait()
            return
        self.judging.add(run.run_dir)
        try:
            self._judge(run)
        finally:
            self.judged.set()

    def _judge(self, run: RunContext) -> None:
        assert run.run_dir is not None  # workers (no run folder) send their samples to the master instead
        environment, opts = self.environment, self.options
        if self.master is not None:
            self.master.stop()
            run.worker_events = self.master.events
        if run.progress is not None:
            run.progress.kill(block=False)
        try:
            baseline = Path(opts.baseline) if getattr(opts, "baseline", "") else None
            summary = self._finish(environment, run, self.require_prepared().target, baseline, compare_options(opts),
                                   run.own_calls, lambda: run.hurried)
            code = exit_code_of(summary)
            self.summary_text = format_summary(summary, run.run_dir)
            if not getattr(opts, "headless", False):
                print(self.summary_text, file=sys.stderr)
                self._show_verdict(summary, run.run_dir)
        except Exception as exc:  # the run's samples are on disk; say what failed
            log.exception("analysis failed")
            print(f"losant-load: analysis of {run.run_dir} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            code = 2
        self.exit_code = code
        environment.process_exit_code = code

    def _show_verdict(self, summary: dict[str, Any], run_dir: Path) -> None:
        """The web UI: the verdict, the criteria and the report's link in the Throttles tab and the Logs tab."""
        verdicts = [v for v in summary.get("verdicts") or [] if isinstance(v, dict)]
        failed = [str(v.get("name")) for v in verdicts if v.get("passed") is False]
        criteria = f"{len(verdicts) - len(failed)} of {len(verdicts)} criteria passed" + (
            f"; failed: {', '.join(failed)}" if failed else "")
        report = f"/reports/{run_dir.name}/index.html"
        self.last_verdict = {"verdict": verdict_word(summary), "run_id": run_dir.name, "criteria": criteria,
                             "report": report}
        # the Logs tab shows what the terminal printed (its reader only: the terminal has it already)
        readers = [h for h in logging.getLogger().handlers if type(h).__name__ == "LogReader"]
        for line in [*self.summary_text.splitlines(), f"  report in this web UI: {report}"]:
            if line.strip():
                record = log.makeRecord(log.name, logging.INFO, __file__, 0, line, (), None)
                for reader in readers:
                    reader.handle(record)

    # -- the end of the process ----------------------------------------------------------------
    def on_quitting(self, **_: Any) -> None:
        environment = self.environment
        runner = environment.runner
        run = run_of(environment)
        if run is not None and runner is not None and runner.state in ("spawning", "running"):
            # SIGTERM mid-run (Locust's handler quits at once): stop the users and judge what was
            # gathered, marked incomplete, while the target is still up for the read-back
            run.incomplete = INTERRUPTED
            runner.stop()
        self.judged.wait()  # a stop under way in another greenlet (Ctrl-C's) writes its report first
        self.release_and_stop(self.last_run, teardown=bool(getattr(self.options, "teardown", False)))
        if self.exit_code is not None:
            environment.process_exit_code = self.exit_code

    def on_quit(self, **_: Any) -> None:
        """Headless: the verdict goes last, after Locust's own tables."""
        if self.summary_text and self.prepared is not None and getattr(self.options, "headless", False):
            print(self.summary_text, file=sys.stderr)

    def release_and_stop(self, run: RunContext | None = None, teardown: bool = False) -> None:
        """Delete the run's credentials, tear down if asked (the harness's own calls, added to the last
        run's ``harness_calls.json``), then stop the emulator."""
        calls = run.own_calls if run is not None else self.setup_calls
        prepared = self.prepared
        try:
            if prepared is not None:
                release_access(prepared.fleet, log=calls.log("release"))
                if teardown:
                    removed = remove_tagged(prepared.target.url, prepared.target.login, prepared.scenario.run_tag,
                                            prepared.target.application_id, log=calls.log("teardown"))
                    print(f"losant-load: teardown removed {removed} devices tagged {prepared.scenario.run_tag}",
                          file=sys.stderr)
        except HarnessError as exc:
            print(f"losant-load: {exc}", file=sys.stderr)
        finally:
            if run is not None and run.run_dir is not None and run.run_dir.is_dir():
                calls.write(run.run_dir)
            if self.target is not None:
                self.target.stop()

    # -- distributed -----------------------------------------------------------------------------
    def _ingest(self, data: dict[str, Any] | None) -> None:
        if self.master is not None:
            self.master.ingest(data)

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        self._ingest(data.get("losant"))

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        run = run_of(self.environment)
        if run is not None and run.run_dir is None and run.owned is not None:
            data["losant"] = distributed.worker_payload(run, run.sent_counters)

    def _register_worker(self, runner: Any) -> None:
        """A worker gets its run from the master's setup message, not from files."""

        def on_setup(environment: Any, msg: Any, **_: Any) -> None:
            run = distributed.worker_context(msg.data, runner.client_id)
            workers = len(msg.data["workers"])
            environment.user_classes[:] = list(sized_classes(
                run.scenario, user_counts(run.scenario, workers), workers).values())
            environment.host = run.fleet.base_url
            set_run(environment, run)
            self.gc.freeze()

        def on_owners(environment: Any, msg: Any, **_: Any) -> None:
            run = run_of(environment)
            if run is not None:
                distributed.apply_owners(run, runner.client_id, msg.data)

        if getattr(self.options, "processes", None):
            # forked by ``--workers N`` (Locust's --processes): a terminal's Ctrl-C reaches this process
            # too, but the master stops the run and asks for the last samples; dying first would lose them
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            # and if the master dies without a word (refused at init, killed), Locust's worker would wait
            # 60 s for its heartbeat: it quits as soon as it is an orphan
            gevent.spawn(_quit_when_orphaned, os.getppid())
        runner.register_message(distributed.SETUP, on_setup)
        runner.register_message(distributed.OWNERS, on_owners)
        runner.register_message(distributed.STOP, lambda environment, msg, **kw: environment.runner.stop())


def _quit_when_orphaned(parent: int, every: float = 1.0) -> None:
    """A forked worker whose master process is gone (it was re-parented) exits at once."""
    while os.getppid() == parent:
        gevent.sleep(every)
    print(f"losant-load: worker {os.getpid()}: its master (process {parent}) is gone; quitting", file=sys.stderr)
    os._exit(2)


def _hide_locust_tables(options: argparse.Namespace) -> None:
    """Headless: Locust's own statistics tables are not printed (``--print-stats`` brings them back).

    They are approximate (rounded percentiles) and count every 429 as a failure, which is not
    this harness's vocabulary (errors = failures other than 429; throttled = 429). The exact
    figures are in the verdict printed at the end, summary.json and the report; Locust's
    table stays in the run folder as ``locust_stats.csv`` for those who know its format."""
    if getattr(options, "headless", False) and not getattr(options, "print_stats", False):
        logging.getLogger("locust.stats_logger").disabled = True
