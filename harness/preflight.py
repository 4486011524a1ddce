"""Options checked before anything starts: a run that cannot finish must not provision first.

Locust binds the web UI's port only after init, where the fleet is provisioned; a port in
use then ended a run with a gevent traceback after provisioning every device. Both
``losant-load run`` and ``locust -f locustfile.py`` call this first.
"""

from __future__ import annotations

import socket

from harness.errors import ConfigError


def check_web_port(host: str, port: int) -> None:
    """Refuse (ConfigError naming ``--web-port``) a web UI address that cannot be listened on now.

    The probe binds as the web UI's server does (``SO_REUSEADDR``), so a port left in
    TIME_WAIT by an earlier run is not refused, and closes at once.
    """
    if not 1 <= port <= 65535:
        raise ConfigError(f"--web-port {port}: expected a port number from 1 to 65535")
    bind_host = "" if host in ("", "*") else host
    try:
        infos = socket.getaddrinfo(bind_host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--web-host {host} --web-port {port}: cannot listen there ({exc})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(f"--web-port {port}: cannot listen on {host or '*'}:{port} ({exc.strerror}); "
                              "choose another port with --web-port") from None
