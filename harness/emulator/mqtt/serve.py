"""Serve the broker beside uvicorn, in the same event loop (uvloop under the CLI).

The REST app and the broker share the store, the auth rules and the clock: the broker is
``app.mqtt`` so REST commands and ``mqttPublishMessage`` reach subscribed devices, and a
state published over MQTT is in the store REST reads. ``start_in_thread`` is the tests'
in-process server (REST and MQTT on free loopback ports, an optional fake clock).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from harness.errors import HarnessError

from .broker import Broker


def attach(app: Any) -> Broker:
    """The broker of an emulator app (made once): REST handlers find it as ``app.mqtt``."""
    broker = getattr(app, "mqtt", None)
    if broker is None:
        broker = Broker(app)
        app.mqtt = broker
    return broker


async def serve(server: Any, sockets: list[socket.socket], app: Any, mqtt_sock: socket.socket | None) -> None:
    """Run uvicorn's ``server`` on ``sockets`` and, with ``mqtt_sock``, the broker on it, until uvicorn stops."""
    if mqtt_sock is None:
        await server.serve(sockets=sockets)
        return
    broker = attach(app)
    loop = asyncio.get_running_loop()
    mqtt_server = await loop.create_server(broker.protocol, sock=mqtt_sock, backlog=4096)
    try:
        await server.serve(sockets=sockets)
    finally:
        mqtt_server.close()
        broker.close_all()  # every device's disconnect is logged ("broker shutting down")
        app.store.flush()


def mqtt_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"mqtt://{shown}:{port}"


@dataclass
class ThreadServer:
    """REST and MQTT in a daemon thread: ``url`` (http), ``mqtt_host``/``mqtt_port``, ``app``, ``broker``."""

    url: str
    mqtt_host: str
    mqtt_port: int
    app: Any
    broker: Broker
    server: Any
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop

    def call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn`` on the server's loop and return its result (state the broker owns is read there)."""
        async def run() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_in_thread(config: Any = None, clock: Callable[[], float] | None = None) -> ThreadServer:
    """An emulator with its broker on 127.0.0.1 free ports, in this process (tests)."""
    from ..app import create_app  # noqa: PLC0415
    from ..cli import bind, uvicorn_config  # noqa: PLC0415
    from ..config import EmulatorConfig  # noqa: PLC0415

    config = config or EmulatorConfig()
    app = create_app(config, clock) if clock is not None else create_app(config)
    broker = attach(app)
    sock, mqtt_sock = bind("127.0.0.1", 0), bind("127.0.0.1", 0)
    import uvicorn  # noqa: PLC0415

    from ..faults_admin import front  # noqa: PLC0415

    server = uvicorn.Server(uvicorn_config(front(app), quiet=True, config=config))
    holder: dict[str, asyncio.AbstractEventLoop] = {}

    def run() -> None:
        async def main() -> None:
            holder["loop"] = asyncio.get_running_loop()
            await serve(server, [sock], app, mqtt_sock)
        asyncio.run(main())

    thread = threading.Thread(target=run, name="emulator-mqtt", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.01)
    if not server.started:
        raise HarnessError("in-thread emulator with broker did not start")
    port = mqtt_sock.getsockname()[1]
    return ThreadServer(f"http://127.0.0.1:{sock.getsockname()[1]}", "127.0.0.1", port, app, broker, server, thread,
                        holder["loop"])
