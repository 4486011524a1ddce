"""``losant-load``: run | emulator | analyze | report | compare (each subcommand a thin user of the library).

Exit codes: 0 every criterion passed, 1 a criterion failed, 2 a harness or
configuration error (the message says what and where; no traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness import __version__
from harness.errors import ConfigError, HarnessError

LOCUSTFILE = Path(__file__).with_name("locust_entry.py")


def _duration(text: str) -> float:
    from harness.scenario import parse_duration

    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="losant-load",
        description="Load and throughput testing for the Losant REST API, with an embedded API emulator.",
        epilog="Exit codes: 0 pass, 1 a pass criterion failed (or a regression against --baseline), "
               "2 harness or configuration error, or a run interrupted before its end.")
    parser.add_argument("--version", action="version", version=f"losant-load {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a scenario (headless, or in the Locust web UI)",
                         description="Run a scenario against the embedded emulator (default) or a live tenant, "
                                     "write reports/<run-id>/ and exit with the verdict.")
    run.add_argument("scenario", nargs="?", help="scenario YAML file, e.g. scenarios/smoke.yaml (not needed with --worker)")
    run.add_argument("--headless", action="store_true", help="no web UI: run for the duration, print progress and the verdict")
    run.add_argument("--users", type=int, help="rescale the fleet to N device users (standalone devices + gateways), keeping the class mix")
    run.add_argument("--duration", type=_duration, help="override the scenario's duration, e.g. 30s, 5m")
    run.add_argument("--target-url", help="live Losant API base URL (credentials from LOSANT_* environment variables)")
    run.add_argument("--limits", help="limits YAML the target enforces, if not the documented ones (see docs/LIMITS.md)")
    run.add_argument("--reports-dir", default="reports", help="where run folders go (default: %(default)s)")
    run.add_argument("--teardown", action="store_true", help="delete what the run tag provisioned when done")
    run.add_argument("--auth", choices=("user", "token"),
                     help="live tenant: sign in as a user (LOSANT_EMAIL, LOSANT_PASSWORD) or with an API token "
                          "(LOSANT_API_TOKEN); default: the scenario's target.auth")
    run.add_argument("--yes", action="store_true", help="confirm a live-tenant run without asking (needed headless)")
    run.add_argument("--allow-exceeding-live-limits", action="store_true",
                     help="accept probe mode or rates above documented limits against a live tenant")
    run.add_argument("--baseline", help="a previous run folder of the same scenario and target: the run is compared "
                                        "with it (as losant-load compare does) and a regression fails the run")
    run.add_argument("--regression-threshold", type=float, metavar="FRACTION",
                     help="with --baseline: a regression must exceed this relative change (default: 0.1)")
    run.add_argument("--regression-min-change-ms", type=float, metavar="MS",
                     help="with --baseline: a latency regression must also exceed this many ms (default: 2)")
    run.add_argument("--junit", metavar="FILE",
                     help="also write the verdict as JUnit XML to FILE, one test case per criterion and per "
                          "regression (every run folder has junit.xml)")
    dist = run.add_argument_group("distributed runs (Locust master and workers)")
    dist.add_argument("--workers", type=int, metavar="N",
                      help="start a master and N local worker processes (one per core is sensible)")
    dist.add_argument("--master", action="store_true", help="be the master for workers on other machines")
    dist.add_argument("--expect-workers", type=int, default=1, metavar="N",
                      help="with --master: wait for N workers before starting (default: %(default)s)")
    dist.add_argument("--worker", action="store_true", help="be a worker of a master elsewhere (see --master-host)")
    dist.add_argument("--master-host", default="127.0.0.1", help="with --worker: the master's address (default: %(default)s)")
    run.add_argument("--no-record", action="store_true", help=argparse.SUPPRESS)  # benchmarks: the recorder's cost
    run.add_argument("--web-host", default="127.0.0.1", help="Locust web UI address (default: %(default)s, this machine only)")
    run.add_argument("--web-port", type=int, default=8089, help="Locust web UI port (default: %(default)s)")

    emu = sub.add_parser("emulator", help="serve the Losant API emulator", add_help=False)
    emu.add_argument("args", nargs=argparse.REMAINDER)

    sub.add_parser("report", help="write index.html for a run folder (--baseline DIR adds a comparison)", add_help=False)
    sub.add_parser("compare", help="compare two run folders of one scenario: exit 1 on a regression beyond the "
                                   "variation between stretches of the runs and the floors (compare --help)", add_help=False)
    sub.add_parser("export", help="write a run folder's raw samples as CSV or JSON Lines (export --help)",
                   add_help=False)
    ana = sub.add_parser("analyze", help="recompute summary.json from a run folder's samples",
                         description="Re-judge a finished run from its saved samples, optionally with other criteria.")
    ana.add_argument("run_dir", type=Path)
    ana.add_argument("--criteria", type=Path, help="YAML file whose 'criteria' section replaces the scenario's")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from harness.scenario import load_scenario

    if args.worker:  # the master sends the scenario, the fleet and the limits
        return _run_locust(["locust", "-f", str(LOCUSTFILE), "--worker", "--master-host", args.master_host,
                            "--loglevel", "WARNING"])
    if not args.scenario:
        raise ConfigError("run: a scenario file is required, e.g. losant-load run scenarios/smoke.yaml --headless")
    if args.users is not None and args.users < 1:
        raise ConfigError(f"--users {args.users}: expected 1 or more device users")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: expected 1 or more worker processes")
    scenario = load_scenario(Path(args.scenario))  # refuse a malformed scenario before anything starts
    duration = args.duration or scenario.duration
    argv = ["locust", "-f", str(LOCUSTFILE), "--scenario", args.scenario, "--reports-dir", args.reports_dir]
    if args.target_url:
        argv += ["--target-url", args.target_url]
    if args.limits:
        argv += ["--limits", args.limits]
    if args.auth:
        argv += ["--auth", args.auth]
    if args.workers:
        argv += ["--processes", str(args.workers)]
    elif args.master:
        argv += ["--master", "--expect-workers", str(args.expect_workers)]
    if args.baseline:
        from harness.report.compare import check_run_folder, validate_options

        try:  # before anything starts: a missing baseline is exit 2, not a run judged for nothing
            check_run_folder(Path(args.baseline), "--baseline")
        except FileNotFoundError as exc:
            raise ConfigError(str(exc)) from None
        bad = validate_options(0.1 if args.regression_threshold is None else args.regression_threshold,
                               0.0 if args.regression_min_change_ms is None else args.regression_min_change_ms)
        if bad:
            raise ConfigError(bad.replace("--", "--regression-", 1))
        argv += ["--baseline", args.baseline]
        if args.regression_threshold is not None:
            argv += ["--regression-threshold", str(args.regression_threshold)]
        if args.regression_min_change_ms is not None:
            argv += ["--regression-min-change-ms", str(args.regression_min_change_ms)]
    elif args.regression_threshold is not None or args.regression_min_change_ms is not None:
        raise ConfigError("--regression-threshold and --regression-min-change-ms apply only with --baseline DIR")
    if args.junit:
        from harness.rundir import check_output_file

        check_output_file(Path(args.junit), "--junit")
        argv += ["--junit", str(Path(args.junit).resolve())]
    for flag in ("teardown", "yes", "allow_exceeding_live_limits", "no_record"):
        if getattr(args, flag):
            argv.append("--" + flag.replace("_", "-"))
    if args.users is not None:
        argv += ["--scale-users", str(args.users)]
    if args.headless:
        argv += ["--headless", "--run-time", f"{max(1, round(duration))}s", "--only-summary",
                 "--loglevel", "WARNING", "--spawn-rate", str(scenario.ramp_up)]
    else:
        from harness.preflight import check_web_port

        check_web_port(args.web_host, args.web_port)
        argv += ["--web-host", args.web_host, "--web-port", str(args.web_port), "--spawn-rate", str(scenario.ramp_up)]
        print(f"losant-load: Locust web UI on http://{args.web_host}:{args.web_port} (Ctrl-C to quit)", file=sys.stderr)
    return _run_locust(argv)


def _run_locust(argv: list[str]) -> int:
    """Hand over to Locust's own main in this process, so every Locust option behaves as documented."""
    import locust.main

    sys.argv = argv
    try:
        locust.main.main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from harness.judge import rejudge

    summary = rejudge(args.run_dir, args.criteria)
    from harness.console import format_summary

    print(format_summary(summary, args.run_dir))
    original = (summary.get("rejudged") or {}).get("original")
    kept = f"; the run's own verdict is kept in {args.run_dir / original}" if original else ""
    print(f"losant-load: re-judged {args.run_dir}: summary.json, junit.xml and index.html rewritten together{kept}",
          file=sys.stderr)
    return 0 if summary.get("passed") else 1


def _serve_emulator(argv: list[str]) -> int:
    """``losant-load emulator``: Ctrl-C or SIGTERM stop it gracefully, exit 0, no traceback."""
    import signal

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        from harness.emulator.cli import main as emulator_main

        return emulator_main(argv)
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["emulator"]:
        return _serve_emulator(argv[1:])
    if argv[:1] == ["report"]:
        from harness.report import main_report

        return main_report(argv[1:])
    if argv[:1] == ["compare"]:
        from harness.report import main_compare

        return main_compare(argv[1:])
    if argv[:1] == ["export"]:
        from harness.report.export import main_export

        return main_export(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "analyze":
            return cmd_analyze(args)
    except (ConfigError, HarnessError) as exc:
        print(f"losant-load: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("losant-load: interrupted", file=sys.stderr)
        return 2
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
