"""``losant-load export``: every sample out, with names, in CSV and JSON Lines."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.record import Recorder


def _run_folder(tmp_path: Path, n: int = 250) -> Path:
    run = tmp_path / "run"
    rec = Recorder(run, chunk_rows=64)  # several chunks on disk, as a long run has
    state, events = rec.op_code("device.sendState"), rec.op_code("events.post")
    for i in range(n):
        op = state if i % 5 else events
        key = rec.key_code(f"dev-{i % 7}")
        status = 429 if i % 50 == 0 else 200
        rec.record(op, key, 1000.0 + i, 1000.0 + i + 0.002, 0.0125, status, 17, 2 if status == 429 else 0)
    rec.close()
    return run


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_writes_every_sample_with_names(tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_folder(tmp_path)
    out = tmp_path / f"samples.{fmt}"
    assert main(["export", str(run), "--format", fmt, "-o", str(out)]) == 0
    text = out.read_text()
    if fmt == "csv":
        rows = list(csv.DictReader(text.splitlines()))
    else:
        rows = [json.loads(line) for line in text.splitlines()]
    assert len(rows) == 250
    assert "250 samples written" in capsys.readouterr().err
    first, second = rows[0], rows[1]
    assert first["op"] == "events.post" and second["op"] == "device.sendState"
    assert first["key"] == "dev-0" and second["key"] == "dev-1"
    assert float(first["latency_ms"]) == pytest.approx(12.5)
    assert float(second["sent"]) == pytest.approx(1001.002)
    assert int(first["status"]) == 429 and first["error"] == "throttled"
    assert int(second["status"]) == 200 and second["error"] == ""
    assert sum(1 for r in rows if int(r["status"]) == 429) == 5


def test_export_refuses_a_folder_without_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
