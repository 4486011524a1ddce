"""MQTT devices over TLS (``mqtts://``, as a live tenant's broker): the emulator's broker behind a
loopback TLS terminator with a throw-away certificate the harness is told to trust (SSL_CERT_FILE)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Iterator

import pytest
from runs import run_cli, write_scenario

from harness.emulator.process import EmulatorProcess
from harness.record import read_samples

EMAIL, PASSWORD = "tls@example.com", "tls-password-1"


def make_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class TlsTerminator:
    """Accepts TLS on a free loopback port and pipes each connection to ``port`` in plain TCP."""

    def __init__(self, cert: Path, key: Path, port: int) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.target = port
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.accepted = 0  # TLS handshakes completed: the devices really came through TLS
        self.thread = threading.Thread(target=self._run, daemon=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0, ssl=self.context))
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> TlsTerminator:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture()
def emulator() -> Iterator[EmulatorProcess]:
    emu = EmulatorProcess(email=EMAIL, password=PASSWORD)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_devices_connect_publish_and_are_read_back_over_tls(tmp_path: Path, emulator: EmulatorProcess) -> None:
    cert, key = make_certificate(tmp_path)
    broker_port = int(emulator.mqtt_url.rsplit(":", 1)[1])
    with TlsTerminator(cert, key, broker_port) as tls:
        path = write_scenario(tmp_path, {
            "name": "mqtt-tls",
            "target": {"kind": "live", "url": emulator.url, "mqtt_url": f"mqtts://127.0.0.1:{tls.port}"},
            "duration": "4s",
            "fleet": {"classes": [{"name": "t", "count": 3, "transport": "mqtt", "report_interval": "500ms",
                                   "attributes": {"v": {"type": "number", "min": 0, "max": 1}}}]},
            "criteria": {"lost_writes": 0, "max_error_rate": 0.0},
        })
        run = run_cli(["run", str(path), "--headless", "--yes"], tmp_path / "reports",
                      env={"LOSANT_EMAIL": EMAIL, "LOSANT_PASSWORD": PASSWORD, "SSL_CERT_FILE": str(cert)})
        accepted = tls.accepted
    assert run.code == 0, run.output[-3000:]
    assert accepted == 3
    s = read_samples(run.run_dir)
    connect = s.op == s.op_names.index("mqtt.connect")
    publish = s.op == s.op_names.index("mqtt.publishState")
    assert connect.sum() == 3 and (s.status[connect] == 200).all()
    assert publish.sum() >= 3 * 4 and (s.status[publish] == 200).all()
    assert run.summary()["integrity"]["lost_writes"] == 0
