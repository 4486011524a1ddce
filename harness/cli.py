"""``losant-load``: run | emulator | analyze | report | compare (each subcommand a thin user of the library).

Exit codes: 0 every criterion passed, 1 a criterion failed, 2 a harness or
configuration error (the message says what and where; no traceback).

Each subcommand imports what it needs when it runs (inside its function), so that
``losant-load emulator`` does not load Locust, numpy or matplotlib.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness import __version__
from harness.errors import ConfigError, HarnessError
from harness.options import add_to_run_command, check_options, locust_argv
from harness.scenario import check_distributable, load_scenario

LOCUSTFILE = Path(__file__).with_name("locust_entry.py")


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
    add_to_run_command(run)  # the same table as Locust's parser (harness.options)

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
    """Check every option, then hand over to Locust's main with the same options (``harness.options``)."""
    if args.worker:  # the master sends the scenario, the fleet and the limits
        return _run_locust(["locust", "-f", str(LOCUSTFILE), "--worker", "--master-host", args.master_host,
                            "--loglevel", "WARNING"])
    if not args.scenario:
        raise ConfigError("run: a scenario file is required, e.g. losant-load run scenarios/smoke.yaml --headless")
    check_options(args, web_ui=not args.headless)  # before anything starts, as the plugin does for locust -f
    scenario = load_scenario(Path(args.scenario))  # refuse a malformed scenario before anything starts
    if args.workers or args.master:
        check_distributable(scenario)  # here too: once Locust has forked its workers, a refusal would orphan them
    duration = args.run_time or scenario.duration
    argv = ["locust", "-f", str(LOCUSTFILE), *locust_argv(args)]
    if args.workers:
        argv += ["--processes", str(args.workers)]
    elif args.master:
        argv += ["--master", "--expect-workers", str(args.expect_workers)]
    if args.headless:
        argv += ["--headless", "--run-time", f"{max(1, round(duration))}s", "--only-summary",
                 "--loglevel", "WARNING", "--spawn-rate", str(scenario.ramp_up)]
    else:
        if args.run_time:
            argv += ["--run-time", f"{max(1, round(duration))}s"]
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
