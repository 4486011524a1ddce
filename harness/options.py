"""The run's options, declared once for both ways of starting a run, and checked before anything starts.

``losant-load run`` (``harness.cli``) and ``locust -f locustfile.py`` (``harness.plugin``, on
Locust's own parser) build their options from ``OPTIONS``: the same names, help and types,
so a new option cannot exist in one and not the other. The run command then hands its
options to Locust's main as that parser's flags (``locust_argv``); a few of the run
command's options are Locust's own (``own=False``: ``--duration`` is Locust's
``--run-time``, ``--workers`` its ``--processes``) and are passed through, never
re-declared on Locust's parser.

``check_options`` runs at both entries before the scenario is loaded: a run that cannot
finish (a missing baseline, ``--users 0``, a web port in use) is refused with one line
naming the option, exit 2, before the emulator starts or a device is provisioned.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from harness.errors import ConfigError
from harness.preflight import check_web_port
from harness.scenario import parse_duration

DEFAULT_SCENARIO = "scenarios/smoke.yaml"
AUTH_CHOICES = ("user", "token")
DEFAULT_REGRESSION_THRESHOLD = 0.1  # compare's defaults (harness.report.compare), stated in the help
DEFAULT_REGRESSION_MIN_CHANGE_MS = 2.0


class _Parser(Protocol):
    """``argparse.ArgumentParser`` or an argument group, or Locust's parser (which adds
    ``include_in_web_ui``)."""

    def add_argument(self, *flags: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Option:
    """One option of a run.

    ``flag`` is the run command's name ("" = the positional scenario), ``locust_flag`` the
    name on Locust's parser when it differs (``--users`` would clash with Locust's own user
    count). ``own`` options are the harness's and are added to Locust's parser; the others
    are Locust's and only exposed by the run command."""

    dest: str
    flag: str
    help: str
    kind: Literal["value", "switch"] = "value"
    type: Callable[[str], Any] | None = None
    default: Any = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    locust_flag: str | None = None
    own: bool = True
    web_ui: bool = False  # shown in the web UI's form (Locust's include_in_web_ui)
    hidden: bool = False  # benchmarks only: not in the run command's --help
    group: str = ""  # "distributed": the run command's help groups these

    @property
    def on_locust(self) -> str:
        return self.locust_flag or self.flag or "--" + self.dest.replace("_", "-")

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"help": argparse.SUPPRESS if self.hidden else self.help}
        if self.kind == "switch":
            out["action"] = "store_true"
            return out
        out["default"] = self.default
        for name in ("type", "choices", "metavar"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def _duration(text: str) -> float:
    """The scenario's own duration syntax (30s, 5m)."""
    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


OPTIONS: tuple[Option, ...] = (
    Option("scenario", "", f"scenario YAML file, e.g. {DEFAULT_SCENARIO} (not needed with --worker)",
           locust_flag="--scenario", web_ui=True),
    Option("headless", "--headless", "no web UI: run for the duration, print progress and the verdict",
           kind="switch", own=False),
    Option("scale_users", "--users", "rescale the fleet to N device users (standalone devices + gateways), "
           "keeping the class mix", type=int, metavar="N", locust_flag="--scale-users"),
    Option("run_time", "--duration", "override the scenario's duration, e.g. 30s, 5m", type=_duration,
           metavar="DURATION", locust_flag="--run-time", own=False),
    Option("target_url", "--target-url", "live Losant API base URL; empty = the embedded emulator "
           "(credentials come only from LOSANT_* environment variables)", default="", metavar="URL", web_ui=True),
    Option("limits", "--limits", "limits YAML the target enforces (overrides the documented table for pacing "
           "and judging, and is passed to the embedded emulator; see docs/LIMITS.md)", default="", metavar="FILE"),
    Option("reports_dir", "--reports-dir", "where run folders are written (default: reports)", default="reports",
           metavar="DIR", web_ui=True),
    Option("run_id", "--run-id", "run folder name (default: UTC start time and scenario name)", default="",
           metavar="ID"),
    Option("teardown", "--teardown", "after the run, delete the devices (and application) carrying the run tag",
           kind="switch"),
    Option("auth", "--auth", "live tenant: sign in as a user (LOSANT_EMAIL, LOSANT_PASSWORD) or with an API token "
           "(LOSANT_API_TOKEN); default: the scenario's target.auth", choices=AUTH_CHOICES),
    Option("yes", "--yes", "confirm a live-tenant run without asking (needed headless); the plan is printed "
           "all the same", kind="switch"),
    Option("allow_exceeding_live_limits", "--allow-exceeding-live-limits",
           "accept probe mode or rates above documented limits against a live tenant", kind="switch"),
    Option("baseline", "--baseline", "a previous run folder of the same scenario and target: the run is compared "
           "with it (as losant-load compare does) and a regression fails the run", default="", metavar="DIR"),
    Option("regression_threshold", "--regression-threshold", "with --baseline: a regression must exceed this "
           f"relative change (default: {DEFAULT_REGRESSION_THRESHOLD})", type=float, metavar="FRACTION"),
    Option("regression_min_change_ms", "--regression-min-change-ms", "with --baseline: a latency regression must "
           f"also exceed this many ms (default: {DEFAULT_REGRESSION_MIN_CHANGE_MS:g})", type=float, metavar="MS"),
    Option("junit", "--junit", "also write the verdict as JUnit XML to FILE, one test case per criterion and per "
           "regression (every run folder has junit.xml)", default="", metavar="FILE"),
    Option("no_record", "--no-record", "benchmarks only: keep no samples (no analysis, no report), to measure "
           "the recorder's cost", kind="switch", hidden=True),
    Option("web_host", "--web-host", "Locust web UI address (default: 127.0.0.1, this machine only)",
           default="127.0.0.1", metavar="HOST", own=False),
    Option("web_port", "--web-port", "Locust web UI port (default: 8089)", type=int, default=8089, metavar="PORT", own=False),
    Option("workers", "--workers", "start a master and N local worker processes (one per core is sensible)",
           type=int, metavar="N", locust_flag="--processes", own=False, group="distributed"),
    Option("master", "--master", "be the master for workers on other machines", kind="switch", own=False,
           group="distributed"),
    Option("expect_workers", "--expect-workers", "with --master: wait for N workers before starting (default: 1)",
           type=int, default=1, metavar="N", own=False, group="distributed"),
    Option("worker", "--worker", "be a worker of a master elsewhere (see --master-host)", kind="switch", own=False,
           group="distributed"),
    Option("master_host", "--master-host", "with --worker: the master's address (default: 127.0.0.1)",
           default="127.0.0.1", metavar="HOST", own=False, group="distributed"),
)


def add_to_locust(parser: _Parser) -> None:
    """The harness's options on Locust's own parser (only it knows ``include_in_web_ui``); the web
    UI shows help text as it is, so no help holds a ``%(default)s`` placeholder."""
    for opt in OPTIONS:
        if not opt.own:
            continue
        kwargs = opt.kwargs()
        if opt.dest == "scenario":
            kwargs["default"] = DEFAULT_SCENARIO
            kwargs["help"] = f"scenario YAML file (default: {DEFAULT_SCENARIO})"
        parser.add_argument(opt.on_locust, include_in_web_ui=opt.web_ui, **kwargs)


def add_to_run_command(parser: argparse.ArgumentParser) -> None:
    """The same options on ``losant-load run`` (the scenario positional; Locust's own options the
    run command exposes under their run-command names)."""
    groups: dict[str, _Parser] = {"": parser,
                                  "distributed": parser.add_argument_group("distributed runs (Locust master and workers)")}
    for opt in OPTIONS:
        kwargs = opt.kwargs()
        if not opt.flag:
            parser.add_argument(opt.dest, nargs="?", help=opt.help)
            continue
        groups[opt.group].add_argument(opt.flag, dest=opt.dest, **kwargs)


def locust_argv(args: argparse.Namespace, skip: Sequence[str] = ()) -> list[str]:
    """The harness's options of a run-command namespace as flags of Locust's parser (values left at
    their defaults are not passed, so Locust's defaults apply as with ``locust -f``)."""
    argv: list[str] = []
    for opt in OPTIONS:
        if not opt.own or opt.dest in skip:
            continue
        value = getattr(args, opt.dest, None)
        if opt.kind == "switch":
            if value:
                argv.append(opt.on_locust)
        elif value is not None and value != opt.default:
            argv += [opt.on_locust, str(value)]
    return argv


def check_options(opts: argparse.Namespace, web_ui: bool = False) -> None:
    """Refuse, with one line naming the option, every option that would make the run fail after it
    started. ``web_ui``: the web UI's address will be listened on (checked now, as Locust binds it
    only after the fleet is provisioned)."""
    users = getattr(opts, "scale_users", None)
    if users is not None and users < 1:  # named as typed: Locust's parser calls it --scale-users
        flag = "--scale-users" if hasattr(opts, "locustfile") else "--users"
        raise ConfigError(f"{flag} {users}: expected 1 or more device users")
    workers = getattr(opts, "workers", None)
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: expected 1 or more worker processes")
    expect = getattr(opts, "expect_workers", None)
    if getattr(opts, "master", False) and expect is not None and expect < 1:
        raise ConfigError(f"--expect-workers {expect}: expected 1 or more workers")
    reports = getattr(opts, "reports_dir", "") or ""
    if reports:
        check_folder(Path(reports), "--reports-dir")
    run_time = getattr(opts, "run_time", None)
    if isinstance(run_time, (int, float)) and not isinstance(run_time, bool) and run_time <= 0:
        raise ConfigError(f"--duration {run_time}: expected a positive duration, e.g. 30s or 5m")
    baseline = getattr(opts, "baseline", "") or ""
    threshold = getattr(opts, "regression_threshold", None)
    min_change = getattr(opts, "regression_min_change_ms", None)
    if baseline:
        # here, not at the top: `losant-load emulator` goes through this module and needs no numpy
        from harness.report.compare import check_run_folder, validate_options

        try:  # a missing baseline would be found only after the run: exit 2, not a run judged for nothing
            check_run_folder(Path(baseline), "--baseline")
        except FileNotFoundError as exc:
            raise ConfigError(str(exc)) from None
        bad = validate_options(DEFAULT_REGRESSION_THRESHOLD if threshold is None else threshold,
                               0.0 if min_change is None else min_change)
        if bad:
            raise ConfigError(bad.replace("--threshold", "--regression-threshold").replace(
                "--min-change-ms", "--regression-min-change-ms"))
    elif threshold is not None or min_change is not None:
        raise ConfigError("--regression-threshold and --regression-min-change-ms apply only with --baseline DIR")
    junit = getattr(opts, "junit", "") or ""
    if junit:
        from harness.rundir import check_output_file

        check_output_file(Path(junit), "--junit")
    if web_ui:
        check_web_port(getattr(opts, "web_host", "") or "", int(getattr(opts, "web_port", 8089) or 8089))


def check_folder(path: Path, option: str) -> None:
    """A folder the run will write into (made if missing) is refused now if it cannot be: a run folder
    that cannot be made would otherwise be found only after the fleet was provisioned."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: expected a folder, found a file")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: cannot write there ({existing} is not a writable folder)")


def compare_options(opts: argparse.Namespace) -> dict[str, float]:
    """``--regression-*`` as ``apply_baseline``'s keyword arguments (compare's defaults otherwise)."""
    out: dict[str, float] = {}
    if getattr(opts, "regression_threshold", None) is not None:
        out["threshold"] = float(opts.regression_threshold)
    if getattr(opts, "regression_min_change_ms", None) is not None:
        out["min_change_ms"] = float(opts.regression_min_change_ms)
    return out
