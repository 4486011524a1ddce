"""``python -m harness.emulator``: start the emulator on uvicorn (uvloop + httptools, no access log).

Prints exactly one start line with the URL and the login (and, unless ``--no-mqtt``,
"; MQTT broker on mqtt://HOST:PORT": the broker of ``mqtt/`` on ``--mqtt-port``, default
1883, 0 = a free port, in the same event loop); the password itself is printed only
when it is the documented default. A bad ``--limits`` file is one line
on stderr naming the file and field, exit code 2.

Test-only options (fault injection for the harness's own tests, never for real runs):
``--test-drop-fraction F`` answers success for state writes but silently drops the
fraction F of them (deterministically, every 1/F-th call); ``--test-delay-ms N`` adds
N ms before answering every request.

Reliability options (docs/RELIABILITY.md): ``--faults FILE`` (YAML fault plan),
``--admin`` (``/_emulator/faults`` for loopback clients), ``--max-in-flight N``
(beyond N concurrent requests answer 503 ServiceUnavailable with Retry-After).

Connection options (guard.py, docs/LIMITS.md "Connections"): ``--idle-timeout``,
``--keepalive-timeout``, ``--header-timeout``, ``--body-timeout``, ``--max-header-bytes``, ``--max-body-in-flight``,
``--max-connections``; the soft open-file limit is raised to the hard one at start.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import socket
import sys
from typing import Any

from harness.errors import ConfigError
from harness.limits import load_limits

from .config import DEFAULT_EMAIL, DEFAULT_PASSWORD, EmulatorConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="losant-load emulator",
        description="Serve an emulator of the Losant REST API: auth, applications, keys, tokens, devices, "
                    "state, commands, data queries, events and every throttled endpoint, enforcing the "
                    "documented limits. It starts with the login's account (and any --user accounts) and nothing else.",
        epilog="Point the official client at it: losantrest.Client(url='http://127.0.0.1:8080'). "
               "Limits and the choices the documents leave open: docs/LIMITS.md; faults: docs/RELIABILITY.md.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default: %(default)s; 0 picks a free port)")
    p.add_argument("--email", default=None, help=f"login email (env LOSANT_EMULATOR_EMAIL, default {DEFAULT_EMAIL})")
    p.add_argument("--password", default=None, help="login password (env LOSANT_EMULATOR_PASSWORD, default: the documented one)")
    p.add_argument("--user", action="append", default=[], metavar="EMAIL:PASSWORD",
                   help="one more user account, each owning its own applications (repeatable; env LOSANT_EMULATOR_USERS="
                        "'EMAIL:PASSWORD,...' keeps passwords off the command line)")
    p.add_argument("--db", default=None, metavar="PATH",
                   help="SQLite file that keeps the data (default: a scratch file, gone when the emulator stops)")
    p.add_argument("--limits", default=None, metavar="FILE", help="YAML overrides of the limits table (docs/LIMITS.md)")
    p.add_argument("--job-seconds", type=float, default=None, metavar="S", help="simulated job duration (concurrency limits)")
    p.add_argument("--quiet", action="store_true", help="log errors only")
    p.add_argument("--test-drop-fraction", type=float, default=0.0, metavar="F", help="TEST ONLY: drop fraction F of state writes")
    p.add_argument("--test-delay-ms", type=int, default=0, metavar="N", help="TEST ONLY: delay every answer by N ms")
    p.add_argument("--faults", default=None, metavar="FILE", help="YAML fault plan (docs/RELIABILITY.md)")
    p.add_argument("--admin", action="store_true", help="serve GET/PUT/DELETE /_emulator/faults and GET/POST /_emulator/users to loopback clients")
    p.add_argument("--max-in-flight", type=int, default=0, metavar="N", help="answer 503 beyond N concurrent requests (0 = no cap)")
    mqtt = p.add_argument_group("MQTT broker", "Losant's broker, sharing the store, auth and limits (docs/LIMITS.md, MQTT)")
    mqtt.add_argument("--mqtt-port", type=int, default=1883, metavar="PORT", help="MQTT 3.1.1 port (default: %(default)s; 0 picks a free port)")
    mqtt.add_argument("--no-mqtt", action="store_true", help="serve no MQTT broker")
    conn = p.add_argument_group("connections", "hygiene against clients that hold connections (docs/LIMITS.md, Connections)")
    conn.add_argument("--idle-timeout", type=float, default=5.0, metavar="S",
                      help="close a connection that sends no byte of a first request for S s (default: %(default)s)")
    conn.add_argument("--keepalive-timeout", type=float, default=60.0, metavar="S",
                      help="close a kept-alive connection with no byte of its next request for S s (default: %(default)s)")
    conn.add_argument("--header-timeout", type=float, default=10.0, metavar="S",
                      help="answer 408 and close when a request's headers take over S s from its first byte (default: %(default)s)")
    conn.add_argument("--body-timeout", type=float, default=30.0, metavar="S",
                      help="answer 408 and close when a body takes over S s after its headers (default: %(default)s)")
    conn.add_argument("--max-header-bytes", type=int, default=64 * 1024, metavar="N",
                      help="answer 431 and close when request line + headers exceed N bytes (default: %(default)s)")
    conn.add_argument("--max-body-in-flight", type=int, default=64 * 1024 * 1024, metavar="N",
                      help="request body bytes held at once over all connections; a body that would exceed it is answered "
                           "503 and its connection closed (default: %(default)s; the last eighth is kept for bodies up to 64 KiB)")
    conn.add_argument("--max-connections", type=int, default=0, metavar="N",
                      help="refuse (503, closed) connections beyond N open at once (default 0: the open-file limit, raised "
                           "to its hard limit at start, minus an eighth, at most 32768)")
    return p


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """Resolve options, environment and defaults into one config; ConfigError on bad values."""
    limits = load_limits(args.limits)
    if args.job_seconds is not None and not args.job_seconds > 0:
        raise ConfigError(f"--job-seconds: {args.job_seconds!r} is not allowed; expected a positive number")
    if not 0.0 <= args.test_drop_fraction < 1.0:
        raise ConfigError(f"--test-drop-fraction: {args.test_drop_fraction!r} is not allowed; expected 0 <= F < 1")
    if args.test_delay_ms < 0:
        raise ConfigError("--test-delay-ms: expected a number >= 0")
    if getattr(args, "max_in_flight", 0) < 0:
        raise ConfigError("--max-in-flight: expected a number >= 0")
    for flag, value in (("--idle-timeout", args.idle_timeout), ("--keepalive-timeout", args.keepalive_timeout),
                        ("--header-timeout", args.header_timeout),
                        ("--body-timeout", args.body_timeout)):
        if not value > 0:
            raise ConfigError(f"{flag}: {value!r} is not allowed; expected a positive number of seconds")
    if args.max_header_bytes < 1024:
        raise ConfigError(f"--max-header-bytes: {args.max_header_bytes!r} is not allowed; expected at least 1024")
    if args.max_body_in_flight < 1024 * 1024:
        raise ConfigError(f"--max-body-in-flight: {args.max_body_in_flight!r} is not allowed; expected at least 1048576")
    if args.max_connections < 0:
        raise ConfigError(f"--max-connections: {args.max_connections!r} is not allowed; expected 0 (automatic) or more")
    faults = None
    if getattr(args, "faults", None):
        from .faults import load_plan  # noqa: PLC0415
        from .scopes import FAMILIES, SPECIAL  # noqa: PLC0415

        known = frozenset(FAMILIES) | frozenset(SPECIAL) | {"auth.authenticateUser", "auth.authenticateDevice"}
        faults = load_plan(args.faults, known)
    email = args.email or os.environ.get("LOSANT_EMULATOR_EMAIL") or DEFAULT_EMAIL
    password = args.password or os.environ.get("LOSANT_EMULATOR_PASSWORD") or DEFAULT_PASSWORD
    if len(password) < 8:
        raise ConfigError("--password: must be at least 8 characters (userCredentials.json)")
    from .users import ENV_USERS, parse_user_specs  # noqa: PLC0415

    env_users = [item for item in os.environ.get(ENV_USERS, "").split(",") if item.strip()]
    users = parse_user_specs(env_users, ENV_USERS) + parse_user_specs(getattr(args, "user", []), "--user")
    return EmulatorConfig(email=email, password=password, users=users, db_path=args.db, scratch_db=args.db is None, limits=limits, job_seconds=args.job_seconds,
                          test_drop_fraction=args.test_drop_fraction, test_delay_ms=args.test_delay_ms,
                          faults=faults, admin=getattr(args, "admin", False), max_in_flight=getattr(args, "max_in_flight", 0),
                          idle_timeout_s=args.idle_timeout, keepalive_timeout_s=args.keepalive_timeout, header_timeout_s=args.header_timeout,
                          body_timeout_s=args.body_timeout, max_header_bytes=args.max_header_bytes,
                          max_body_in_flight_bytes=args.max_body_in_flight, max_connections=args.max_connections)


def start_line(url: str, config: EmulatorConfig, mqtt_url: str | None = None) -> str:
    if config.password == DEFAULT_PASSWORD:
        login = f"login: {config.email} / password: {DEFAULT_PASSWORD} (default)"
    else:
        login = f"login: {config.email} / password from --password, LOSANT_EMULATOR_PASSWORD or the default"
    if config.users:  # never their passwords
        login += f"; {len(config.users)} more user(s): {', '.join(email for email, _ in config.users)}"
    mqtt = f"; MQTT broker on {mqtt_url}" if mqtt_url else ""
    return f"Losant API emulator listening on {url} ({login}){mqtt}"


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: Any, quiet: bool, config: EmulatorConfig | None = None) -> Any:
    """uvicorn on uvloop with httptools behind the connection guards of ``config`` (guard.py; defaults without one)."""
    import uvicorn  # noqa: PLC0415 - only the serving paths need it

    from .guard import ConnectionGuard  # noqa: PLC0415
    from .lane import lane_of  # noqa: PLC0415

    config = config or EmulatorConfig()
    guard = ConnectionGuard(config, lane=lane_of(app))
    protocol: Any = guard.protocol_factory()  # uvicorn calls it like a protocol class
    return uvicorn.Config(app, loop="uvloop", http=protocol, ws="none", access_log=False, lifespan="on",
                          log_level="error" if quiet else "warning", server_header=False, date_header=False,
                          timeout_keep_alive=max(1, round(config.keepalive_timeout_s)))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"losant-load emulator: {exc}", file=sys.stderr)
        return 2
    import uvicorn  # noqa: PLC0415

    from .app import create_app  # noqa: PLC0415

    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(f"losant-load emulator: --host/--port: cannot listen on {args.host}:{args.port} ({exc.strerror})", file=sys.stderr)
        return 2
    mqtt_sock = None
    if not args.no_mqtt:
        try:
            mqtt_sock = bind(args.host, args.mqtt_port)
        except (OSError, OverflowError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            print(f"losant-load emulator: --host/--mqtt-port: cannot listen on {args.host}:{args.mqtt_port} ({why}); "
                  "--mqtt-port 0 picks a free port, --no-mqtt serves none", file=sys.stderr)
            return 2
    app = create_app(config)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    from .mqtt.serve import attach, mqtt_url, serve  # noqa: PLC0415

    if mqtt_sock is not None:
        attach(app)  # before front(): its admin endpoint serves /_emulator/mqtt too

    print(start_line(f"http://{shown}:{port}", config, mqtt_url(mqtt_sock) if mqtt_sock else None), flush=True)
    from .faults_admin import front  # noqa: PLC0415

    server = uvicorn.Server(uvicorn_config(front(app), args.quiet, config))
    # Everything built so far (schemas, validators, routes) is frozen out of the collector's
    # reach and automatic collection is off: every request allocates a few dozen short-lived
    # containers, and the collector's bookkeeping showed up as a fixed cost per request. The
    # app collects on a timer instead (Emulator._collect_garbage), so memory stays bounded.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:  # uvicorn stops gracefully on SIGINT (and SIGTERM), then raises the signal again
        from uvicorn._compat import asyncio_run  # noqa: PLC0415 - what Server.run itself uses

        asyncio_run(serve(server, [sock], app, mqtt_sock), loop_factory=server.config.get_loop_factory())
    except KeyboardInterrupt:
        pass
    finally:
        app.store.close()
    return 0
