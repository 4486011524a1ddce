"""The run's life cycle (init, test_start, spawning_complete, test_stopping, test_stop, quitting,
Ctrl-C) on a fake Locust environment: no target, no emulator, a fake clock, no sleeps.

Preparation and judging are injected (``Lifecycle(prepare=..., finish=...)``); everything in
between is the real code that ``locust -f`` and ``losant-load run`` go through.
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from typing import Any, Callable

import pytest

# Locust monkey-patches the standard library on import; pytest's plugins have imported ssl by now,
# so patching here would break ssl for the whole session. Nothing here does I/O through gevent,
# and the variable is removed at once so the subprocesses of other tests patch as usual.
os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
try:
    from locust.env import Environment
    from locust.event import Events
finally:
    del os.environ["LOCUST_SKIP_MONKEY_PATCH"]

from harness import users  # noqa: E402
from harness.fleet import Device, Fleet, Login, Secret  # noqa: E402
from harness.gc_policy import GcPolicy  # noqa: E402
from harness.harness_calls import HarnessCalls  # noqa: E402
from harness.interrupt import INTERRUPTED  # noqa: E402
from harness.lifecycle import Lifecycle, exit_code_of, lifecycle_of  # noqa: E402
from harness.limits import LimitsTable  # noqa: E402
from harness.prepare import Prepared, prepared_key  # noqa: E402
from harness.scenario import parse_scenario  # noqa: E402
from harness.session import RunContext, run_of  # noqa: E402
from harness.target import Target  # noqa: E402

SCENARIO = {
    "name": "life",
    "duration": "30s",
    "ramp_up": 5,
    "fleet": {"classes": [{"name": "s", "count": 3, "report_interval": "1s",
                           "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]},
    "operators": {"count": 1, "think_time": {"min": "1s", "max": "2s"}, "actions": {"get_device": 1}},
}


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeTarget(Target):
    stopped = 0

    def stop(self) -> None:
        self.stopped += 1


class FakeRunner:
    def __init__(self) -> None:
        self.state = "ready"
        self.calls: list[str] = []
        self.messages: dict[str, Callable[..., None]] = {}
        self.client_id = "local"
        self.user_count = 0

    def quit(self) -> None:
        self.calls.append("quit")

    def stop(self) -> None:
        self.calls.append("stop")
        self.state = "stopped"

    def register_message(self, name: str, handler: Callable[..., None]) -> None:
        self.messages[name] = handler


class RecordingGc(GcPolicy):
    """The real policy's interface without touching this process's collector."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def freeze(self) -> None:
        self.calls.append("freeze")

    def thaw(self) -> None:
        self.calls.append("thaw")

    def spawning_complete(self) -> None:  # type: ignore[override]
        self.calls.append("spawned")


def options(tmp_path: Path, **over: Any) -> argparse.Namespace:
    base = dict(scenario=str(tmp_path / "life.yaml"), target_url="", limits="", reports_dir=str(tmp_path / "reports"),
                run_id="", scale_users=None, auth=None, yes=False, allow_exceeding_live_limits=False, baseline="",
                regression_threshold=None, regression_min_change_ms=None, junit="", no_record=False, teardown=False,
                headless=False, run_time=None, num_users=None, spawn_rate=None, master=False, worker=False,
                web_host="127.0.0.1", web_port=8089, processes=None)
    base.update(over)
    return argparse.Namespace(**base)


def fake_prepared(opts: argparse.Namespace) -> Prepared:
    scenario = parse_scenario(SCENARIO, opts.scenario)
    devices = [Device(f"id{i}", f"life-s-{i}", "s", "standalone") for i in range(3)]
    fleet = Fleet("http://127.0.0.1:9", "app1", scenario.run_tag, "key", Secret("secret"), None, None, devices)
    target = FakeTarget("http://127.0.0.1:9", Login(email="e", password=Secret("p")), live=False, application_id=None)
    return Prepared(scenario, Path(opts.scenario), target, fleet, LimitsTable(), prepared_key(opts))


class Harness:
    """A fake environment with a Lifecycle whose preparation and judging are recorded."""

    def __init__(self, tmp_path: Path, summary: dict[str, Any] | None = None, **opts: Any) -> None:
        self.env = Environment(events=Events(), parsed_options=options(tmp_path, **opts))
        self.runner = FakeRunner()
        self.env.runner = self.runner  # type: ignore[assignment]
        self.clock = Clock()
        self.gc = RecordingGc()
        self.prepared_calls = 0
        self.finished: list[tuple[RunContext, Path | None, dict[str, float]]] = []
        self.summary = summary if summary is not None else {"passed": True, "complete": True, "verdicts": []}
        self.life = Lifecycle(self.env, prepare=self.prepare, finish=self.finish, clock=self.clock, gc_policy=self.gc)

    def prepare(self, opts: argparse.Namespace, calls: HarnessCalls, opened: Callable[[Target], None]) -> Prepared:
        self.prepared_calls += 1
        prepared = fake_prepared(opts)
        opened(prepared.target)
        return prepared

    def finish(self, environment: Any, run: RunContext, target: Target, baseline: Path | None,
               compare: dict[str, float], calls: HarnessCalls, hurried: Callable[[], bool]) -> dict[str, Any]:
        self.finished.append((run, baseline, compare))
        return dict(self.summary, complete=self.summary.get("complete", True) and run.incomplete is None)

    def init(self) -> None:
        self.life.init(self.runner, signals=False)

    @property
    def target(self) -> FakeTarget:
        assert isinstance(self.life.target, FakeTarget)
        return self.life.target


def test_init_prepares_sizes_classes_without_changing_the_shared_ones(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.init()
    assert lifecycle_of(h.env) is h.life and h.prepared_calls == 1
    by_name = {c.__name__: c for c in h.env.user_classes}
    assert set(by_name) == {"Device", "Operator"}, "only the kinds the scenario uses"
    assert by_name["Device"].fixed_count == 3 and by_name["Operator"].fixed_count == 1
    assert issubclass(by_name["Device"], users.CLASSES["standalone"]) and by_name["Device"] is not users.CLASSES["standalone"]
    assert users.CLASSES["standalone"].fixed_count == 0, "the shared classes are not mutated"
    assert h.env.parsed_options.num_users == 4 and h.env.parsed_options.spawn_rate == 5
    assert h.env.host == "http://127.0.0.1:9"
    assert run_of(h.env) is None, "no run before test_start"


@pytest.mark.parametrize(("over", "says"), [({"scale_users": 0}, "--users 0"),
                                            ({"baseline": "nope-folder"}, "--baseline"),
                                            ({"regression_threshold": 0.2}, "apply only with --baseline")])
def test_a_bad_option_exits_2_before_anything_is_prepared(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          over: dict[str, Any], says: str) -> None:
    h = Harness(tmp_path, **over)
    with pytest.raises(SystemExit) as exc:
        h.init()
    assert exc.value.code == 2 and h.prepared_calls == 0
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1, err


def test_a_failure_after_the_target_started_stops_it(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    started: list[FakeTarget] = []

    def failing(opts: argparse.Namespace, calls: HarnessCalls, opened: Callable[[Target], None]) -> Prepared:
        target = fake_prepared(opts).target
        assert isinstance(target, FakeTarget)
        started.append(target)
        opened(target)
        raise KeyboardInterrupt  # Ctrl-C while provisioning

    h.life._prepare = failing
    with pytest.raises(SystemExit) as exc:
        h.init()
    assert exc.value.code == 2 and started[0].stopped == 1


def test_a_run_from_start_to_quit(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.init()
    h.env.events.test_start.fire(environment=h.env)
    run = run_of(h.env)
    assert run is not None and run.run_dir is not None and (run.run_dir / "run.json").exists()
    assert run.start == 1_000.0 and h.gc.calls == ["freeze"] and run.on_user_ready == h.gc.freeze_new
    h.clock.now = 1_005.0
    h.env.events.spawning_complete.fire(user_count=4)
    h.clock.now = 1_030.0
    h.env.events.test_stopping.fire(environment=h.env)
    assert (run.spawned_at, run.stopping_at) == (1_005.0, 1_030.0), "the steady window's bounds, on the clock"
    assert not h.life.judged.is_set(), "quitting would wait for the report from here on"
    h.env.events.test_stop.fire(environment=h.env)
    h.env.events.test_stop.fire(environment=h.env)  # Locust's run-time limit after a Ctrl-C's stop: one judgement
    assert len(h.finished) == 1 and h.finished[0][0] is run and h.life.judged.is_set()
    assert h.gc.calls == ["freeze", "spawned", "thaw", "thaw"]
    assert h.env.process_exit_code == 0
    h.env.events.quitting.fire(environment=h.env)
    assert h.target.stopped == 1 and h.runner.calls == [], "a finished run is not stopped again"
    assert (run.run_dir / "harness_calls.json").exists(), "the tear-down's own calls are written"


def test_second_run_in_the_web_ui_gets_its_own_folder(tmp_path: Path) -> None:
    h = Harness(tmp_path, run_id="fixed")
    h.init()
    h.env.events.test_start.fire(environment=h.env)
    first = run_of(h.env)
    h.env.events.test_start.fire(environment=h.env)
    second = run_of(h.env)
    assert first is not None and second is not None and first is not second
    assert first.run_dir is not None and second.run_dir is not None
    assert first.run_dir.name == "fixed" and second.run_dir.name != "fixed"


def test_sigterm_mid_run_stops_the_users_and_marks_the_run_incomplete(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.init()
    h.env.events.test_start.fire(environment=h.env)
    h.runner.state = "running"
    h.env.events.quitting.fire(environment=h.env)
    run = run_of(h.env)
    assert run is not None and run.incomplete == INTERRUPTED and h.runner.calls == ["stop"]
    assert h.target.stopped == 1


@pytest.mark.parametrize(("summary", "code"), [
    ({"passed": True, "complete": True}, 0),
    ({"passed": False, "complete": True}, 1),
    ({"passed": True, "complete": True, "regression": {"verdict": "regression"}}, 1),
    ({"passed": False, "complete": False}, 2),
    ({"passed": True, "complete": True, "regression": {"verdict": "not compared"}}, 2),
])
def test_exit_code_is_the_verdict(summary: dict[str, Any], code: int) -> None:
    assert exit_code_of(summary) == code


def test_interrupted_run_exits_2(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.init()
    h.env.events.test_start.fire(environment=h.env)
    run = run_of(h.env)
    assert run is not None
    run.incomplete = INTERRUPTED
    h.env.events.test_stopping.fire(environment=h.env)
    h.env.events.test_stop.fire(environment=h.env)
    h.env.events.quitting.fire(environment=h.env)
    assert h.env.process_exit_code == 2


def test_analysis_failure_is_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h = Harness(tmp_path)
    h.init()

    def broken(*args: Any) -> dict[str, Any]:
        raise ValueError("boom")

    h.life._finish = broken
    h.env.events.test_start.fire(environment=h.env)
    h.env.events.test_stop.fire(environment=h.env)
    assert h.env.process_exit_code == 2 and "failed: ValueError: boom" in capsys.readouterr().err


def test_ctrl_c_once_twice_three_times(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.init()
    said: list[str] = []
    spawned: list[Callable[[], None]] = []
    exits: list[int] = []
    interrupts = h.life.interrupts
    interrupts.say, interrupts.spawn, interrupts.exit = said.append, spawned.append, exits.append
    h.env.events.test_start.fire(environment=h.env)
    run = run_of(h.env)
    assert run is not None
    h.runner.state = "running"

    interrupts(signal.SIGINT, None)
    assert run.incomplete == INTERRUPTED and not run.hurried and len(spawned) == 1
    spawned[0]()  # the greenlet: Locust's runner quits (its test_stop judges, quitting tears down)
    assert h.runner.calls == ["quit"]

    interrupts(signal.SIGINT, None)
    assert run.hurried, "a second Ctrl-C skips the disconnects and the read-back"
    assert exits == []

    class Proc:
        terminated = 0

        def terminate(self) -> None:
            self.terminated += 1

    class Emulator:
        proc = Proc()

    h.target.emulator = Emulator()
    interrupts(signal.SIGINT, None)
    assert exits == [2] and Emulator.proc.terminated == 1, "the third stops the emulator and quits at once"
    assert len(said) == 3 and all("Traceback" not in s for s in said)


def test_web_ui_stop_before_the_run_time_marks_the_run_incomplete(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.init()
    h.life.stopped_early()  # no run yet: nothing to mark
    h.env.events.test_start.fire(environment=h.env)
    h.life.stopped_early()
    run = run_of(h.env)
    assert run is not None and run.incomplete == "stopped from the web UI before its run time"


def test_web_ui_form_with_another_user_count_is_refused(tmp_path: Path) -> None:
    (tmp_path / "life.yaml").write_text("name: x\n")  # the form names the prepared scenario: not re-read
    h = Harness(tmp_path)
    h.init()
    assert h.life.check_swarm({"user_count": "4"}) is None
    refusal = h.life.check_swarm({"user_count": "9"})
    assert refusal is not None and "enter 4" in refusal and "3 standalone" in refusal


def test_the_live_snapshot_names_devices_and_shows_the_last_verdict(tmp_path: Path) -> None:
    h = Harness(tmp_path, summary={"passed": False, "complete": True,
                                   "verdicts": [{"name": "error rate", "passed": False}]})
    h.init()
    assert h.life.live_snapshot()["limits"] == []
    h.env.events.test_start.fire(environment=h.env)
    run = run_of(h.env)
    assert run is not None
    rec = run.recorder
    for i in range(40):
        rec.record(rec.op_code("device.sendState"), rec.key_code("id1"), 1_000.0 + i * 0.1, 1_000.0 + i * 0.1,
                   0.01, 200, 10, 0)
    h.env.events.test_stop.fire(environment=h.env)
    snap = h.life.live_snapshot()
    assert snap["last_run"]["verdict"] and snap["last_run"]["criteria"] == "0 of 1 criteria passed; failed: error rate"
    assert snap["last_run"]["report"].endswith("/index.html")


def test_a_worker_waits_for_the_masters_setup(tmp_path: Path) -> None:
    h = Harness(tmp_path, worker=True)
    h.init()
    assert h.prepared_calls == 0 and set(h.runner.messages) == {"losant_setup", "losant_owners", "losant_stop"}
    h.env.events.test_start.fire(environment=h.env)
    assert run_of(h.env) is None


def test_gc_policy_collects_young_often_and_fully_every_sixth_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.gc_policy as policy_module

    calls: list[str] = []

    class FakeGc:
        enabled = True

        def collect(self, generation: int = 2) -> int:
            calls.append(f"collect{generation}")
            return 0

        def freeze(self) -> None:
            calls.append("freeze")

        def unfreeze(self) -> None:
            calls.append("unfreeze")

        def disable(self) -> None:
            self.enabled = False

        def enable(self) -> None:
            self.enabled = True

        def isenabled(self) -> bool:
            return self.enabled

    fake = FakeGc()
    monkeypatch.setattr(policy_module, "gc", fake)
    sleeps: list[float] = []

    class Done(Exception):
        pass

    def sleep(seconds: float) -> None:
        if len(sleeps) == 12:
            raise Done
        sleeps.append(seconds)

    spawned: list[Callable[[], None]] = []

    class Greenlet:
        killed = False

        def kill(self, block: bool = True) -> None:
            self.killed = True

    greenlet = Greenlet()

    def spawn(fn: Callable[[], None]) -> Greenlet:
        spawned.append(fn)
        return greenlet

    gc_policy = GcPolicy(every=10.0, full_every=6, sleep=sleep, spawn=spawn)
    gc_policy.freeze()
    gc_policy.freeze()  # a second run start: still one collector
    assert not fake.enabled and len(spawned) == 1 and calls == ["collect2", "freeze"] * 2
    calls.clear()
    with pytest.raises(Done):
        spawned[0]()
    assert sleeps == [10.0] * 12
    assert calls == (["collect1"] * 5 + ["collect2", "freeze"]) * 2
    gc_policy.spawning_complete()
    assert calls[-1] == "freeze", "while the policy is on, what users set up is frozen at the end of the ramp-up"
    gc_policy.thaw()
    assert greenlet.killed and fake.enabled and calls[-1] == "unfreeze" and gc_policy.collector is None
