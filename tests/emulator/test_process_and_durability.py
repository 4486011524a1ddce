"""The CLI start line, bad options, and durability: answered state writes survive ``kill -9``."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from emulator_support import FakeClock, make_api

from harness.emulator.process import EmulatorProcess

ROOT = Path(__file__).resolve().parents[2]


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.emulator", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=30, env=env)


def test_bad_limits_file_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "limits.yaml"
    bad.write_text("limits:\n  device.sendState: {count: zero}\n")
    r = _run_cli("--limits", str(bad))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "device.sendState.count" in lines[0]
    r = _run_cli("--limits", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "missing.yaml" in r.stderr


def test_start_line_hides_a_custom_password() -> None:
    with EmulatorProcess(password="s3cret-password-123", quiet=True) as emu:
        line = f"Losant API emulator listening on {emu.url} (login: admin@emulator.local / password from --password, LOSANT_EMULATOR_PASSWORD or the default)"
        r = httpx.post(emu.url + "/auth/user", json={"email": emu.email, "password": emu.password})
        assert r.status_code == 200
        assert line.startswith("Losant API emulator listening on http://127.0.0.1:")
        assert "s3cret" not in " ".join(EmulatorProcess(password="s3cret-password-123").argv())


def test_start_line_with_default_password() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "harness.emulator", "--port", "0", "--mqtt-port", "0", "--quiet"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().rstrip("\n")
        assert line.startswith("Losant API emulator listening on http://127.0.0.1:")
        assert "(login: admin@emulator.local / password: emulator-password (default)); MQTT broker on mqtt://127.0.0.1:" in line
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def _provision(url: str, devices: int) -> dict[str, Any]:
    c = httpx.Client(base_url=url, timeout=10)
    tok = c.post("/auth/user", json={"email": "admin@emulator.local", "password": "emulator-password"}).json()["token"]
    h = {"Authorization": f"Bearer {tok}"}
    app = c.post("/applications", json={"name": "dur"}, headers=h).json()["id"]
    key = c.post(f"/applications/{app}/keys", json={}, headers=h).json()
    ids, tokens = [], []
    for i in range(devices):
        d = c.post(f"/applications/{app}/devices", headers=h,
                   json={"name": f"d{i}", "attributes": [{"name": "n", "dataType": "number"}]}).json()["id"]
        ids.append(d)
        tokens.append(c.post("/auth/device", json={"deviceId": d, "key": key["key"], "secret": key["secret"]}).json()["token"])
    c.close()
    return {"app": app, "ids": ids, "tokens": tokens, "user": tok}


def test_answered_states_survive_kill_9_and_tokens_stay_valid(tmp_path: Path) -> None:
    db = tmp_path / "emu.db"
    emu = EmulatorProcess(db=str(db), quiet=True).start()
    try:
        w = _provision(emu.url, devices=8)
        now = int(time.time() * 1000)

        def send(i: int) -> tuple[str, int, int]:
            dev = i % 8
            t = now - 100_000 + i
            with httpx.Client(base_url=emu.url, timeout=10) as c:
                r = c.post(f"/applications/{w['app']}/devices/{w['ids'][dev]}/state", json={"data": {"n": i}, "time": t},
                           headers={"Authorization": f"Bearer {w['tokens'][dev]}"})
            return w["ids"][dev], t, r.status_code

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(send, range(200)))
        answered = [(d, t) for d, t, status in results if status == 200]
        assert len(answered) == 200  # 25 per device: under 30 per 15 s
    finally:
        emu.kill()  # SIGKILL right after the answers: no shutdown hook runs
    emu2 = EmulatorProcess(db=str(db), quiet=True).start()
    try:
        with httpx.Client(base_url=emu2.url, timeout=10) as c:
            stored: set[tuple[str, int]] = set()
            for dev, tok in zip(w["ids"], w["tokens"]):  # the device tokens still work after the restart
                r = c.get(f"/applications/{w['app']}/devices/{dev}/state", params={"limit": 1000},
                          headers={"Authorization": f"Bearer {tok}"})
                assert r.status_code == 200
                for s in r.json():
                    stored.add((dev, s["data"]["n"]))
        assert len(stored) == 200
    finally:
        emu2.stop()


def test_drop_fraction_is_deterministic(clock: FakeClock) -> None:
    api = make_api(clock, test_drop_fraction=0.25)
    api.login()
    app = api.application()
    dev = api.device(app)
    for i in range(8):
        assert api.post(f"/applications/{app}/devices/{dev}/state", json={"data": {"temp": i}, "time": -1000 * (i + 1)}).status_code == 200
    assert len(api.get(f"/applications/{app}/devices/{dev}/state", params={"limit": 100}).json()) == 6
    api.close()


def test_concurrent_writes_share_commits_and_reads_see_them(clock: FakeClock) -> None:
    api = make_api(clock)
    api.login()
    app = api.application()
    devs = [api.device(app, f"d{i}") for i in range(20)]
    h = {"Authorization": f"Bearer {api.token}"}
    calls = [("POST", f"/applications/{app}/devices/{d}/state", {"json": {"data": {"temp": j}, "time": -(j + 1)}, "headers": h})
             for d in devs for j in range(10)]
    before = api.app.store.batches
    assert all(r.status_code == 200 for r in api.gather(calls))
    assert api.app.store.batches - before < len(calls)  # grouped
    assert sum(api.app.store.state_count(d) for d in devs) == 200
    api.close()


def test_file_database_restart_in_process(tmp_path: Path, clock: FakeClock) -> None:
    db = str(tmp_path / "x.db")
    api = make_api(clock, db_path=db)
    api.login()
    app = api.application()
    dev = api.device(app)
    key = api.key(app)
    dtok = api.device_token(dev, key)
    assert api.post(f"/applications/{app}/devices/{dev}/state", json={"data": {"temp": 5}}, token=dtok).status_code == 200
    api.close()
    again = make_api(clock, db_path=db)
    r = again.get(f"/applications/{app}/devices/{dev}/state", token=dtok)
    assert r.status_code == 200 and r.json()[0]["data"] == {"temp": 5}
    assert again.post("/auth/device", token=None, json={"deviceId": dev, "key": key["key"], "secret": key["secret"]}).status_code == 200
    raw = Path(db).read_bytes()
    assert key["secret"].encode() not in raw and dtok.encode() not in raw  # only hashes are stored
    again.close()
