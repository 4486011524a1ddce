"""The sample contract: what goes into the recorder comes out of the run folder unchanged."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

from harness.record import (CONNECTION, ERROR_KINDS, HTTP, NO_ERROR, OTHER, THROTTLED, TIMEOUT, Recorder, Samples,
                            classify, read_samples)


def fill(rec: Recorder, n: int, ops: tuple[str, ...] = ("device.sendState", "events.post"),
         keys: int = 7, seed: int = 0) -> list[tuple]:
    """Record n pseudo-random samples; return them as (op name, key name, ...) tuples."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        op, key = ops[i % len(ops)], f"dev-{int(rng.integers(keys))}"
        planned = 1.7e9 + i * 0.01 + float(rng.random()) * 1e-3
        sent = planned + float(rng.random()) * 0.05
        latency = float(rng.random())
        status = int(rng.choice([200, 201, 429, 500, 0]))
        nbytes = int(rng.integers(0, 5_000_000_000))  # beyond 32 bits on purpose
        error = classify(status, None)
        rec.record(rec.op_code(op), rec.key_code(key), planned, sent, latency, status, nbytes, error)
        rows.append((op, key, planned, sent, latency, status, nbytes, error))
    return rows


def as_rows(s: Samples) -> list[tuple]:
    return [(s.op_names[s.op[i]], s.key_names[s.key[i]], float(s.planned[i]), float(s.sent[i]),
             float(s.latency[i]), int(s.status[i]), int(s.nbytes[i]), int(s.error[i])) for i in range(len(s))]


def test_round_trip_through_disk_with_spills(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, chunk_rows=100)
    rows = fill(rec, 1050)
    chunks = sorted((tmp_path / "samples").glob("chunk-*.npz"))
    assert len(chunks) == 10  # ten full chunks spilled while recording, 50 rows still in memory
    rec.close()
    rec.close()  # idempotent
    assert len(sorted((tmp_path / "samples").glob("chunk-*.npz"))) == 11
    samples = read_samples(tmp_path)
    assert as_rows(samples) == rows  # float64 times and latencies survive bit for bit
    meta = json.loads((tmp_path / "samples" / "meta.json").read_text())
    assert meta["version"] == 1 and meta["rows"] == 1050 and meta["closed"] is True
    assert meta["error_kinds"] == list(ERROR_KINDS)


def test_crashed_run_is_readable_up_to_the_last_spill(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, chunk_rows=10)
    rows = fill(rec, 25)
    samples = read_samples(tmp_path)  # never closed
    assert as_rows(samples) == rows[:20]


def test_explicit_spill_and_empty_close(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, chunk_rows=1000)
    rows = fill(rec, 5)
    rec.spill()
    rec.spill()  # nothing new: no empty chunk
    rec.close()
    assert len(list((tmp_path / "samples").glob("chunk-*.npz"))) == 1
    assert as_rows(read_samples(tmp_path)) == rows
    empty = Recorder(tmp_path / "empty")
    empty.close()
    assert len(read_samples(tmp_path / "empty")) == 0


def test_read_samples_without_meta_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="meta.json"):
        read_samples(tmp_path)


def test_memory_recorder_keeps_chunks_until_drained() -> None:
    rec = Recorder(None, chunk_rows=8)
    rows = fill(rec, 30)
    assert as_rows(rec.samples()) == rows
    batch = rec.drain()
    assert batch["n"] == 30 and len(rec.samples()) == 0
    assert rec.drain()["n"] == 0


def test_drain_and_ingest_remap_interned_codes(tmp_path: Path) -> None:
    # two workers intern the same names in different orders; the master has its own order again
    w1, w2 = Recorder(None), Recorder(None)
    w2.op_code("events.post"), w2.key_code("dev-6"), w2.key_code("unused-key")
    rows1 = fill(w1, 40, seed=1)
    rows2 = fill(w2, 30, ops=("events.post", "device.sendState", "device.sendCommand"), seed=2)
    master = Recorder(tmp_path, chunk_rows=50)
    master.op_code("device.sendCommand")
    assert master.ingest(w1.drain()) == 40
    assert master.ingest(w2.drain()) == 30
    more = fill(w1, 3, seed=3)
    master.ingest(w1.drain())
    master.close()
    assert as_rows(read_samples(tmp_path)) == rows1 + rows2 + more
    assert "unused-key" not in read_samples(tmp_path).key_names  # only codes in a batch travel


def test_ingest_rejects_a_foreign_batch() -> None:
    batch = Recorder(None).drain()
    with pytest.raises(ValueError, match="format"):
        Recorder(None).ingest({**batch, "format": 99})
    w = Recorder(None)
    fill(w, 3)
    bad = w.drain()
    bad["keys"] = bad["keys"][1:]
    with pytest.raises(ValueError, match="key code"):
        Recorder(None).ingest(bad)


def test_interning_is_stable() -> None:
    rec = Recorder(None)
    assert [rec.op_code(o) for o in ("a", "b", "a")] == [0, 1, 0]
    assert [rec.key_code(k) for k in ("x", "y", "x")] == [0, 1, 0]
    assert rec.op_names == ("a", "b") and rec.key_names == ("x", "y")


def test_derived_columns() -> None:
    s = Samples(op=[0, 0], key=[0, 1], planned=[10.0, 20.0], sent=[10.5, 20.0], latency=[0.25, 1.0],
                status=[200, 429], nbytes=[1, 2], error=[NO_ERROR, THROTTLED])
    assert s.lateness.tolist() == [0.5, 0.0]
    assert s.corrected.tolist() == [0.75, 1.0]
    assert s.end.tolist() == [10.75, 21.0]
    assert s.throttled.tolist() == [False, True]


class ConnectTimeout(Exception):  # named like requests' / httpx's
    pass


class ConnectError(Exception):
    pass


@pytest.mark.parametrize("status, exc, kind", [
    (200, None, NO_ERROR),
    (204, None, NO_ERROR),
    (429, None, THROTTLED),
    (429, ConnectionError(), THROTTLED),  # the status wins
    (404, None, HTTP),
    (503, None, HTTP),
    (0, TimeoutError(), TIMEOUT),
    (0, socket.timeout(), TIMEOUT),
    (0, ConnectTimeout(), TIMEOUT),  # a connect timeout is a timeout
    (0, ConnectionRefusedError(), CONNECTION),
    (0, ConnectError(), CONNECTION),
    (0, OSError(), CONNECTION),
    (0, None, CONNECTION),  # no answer, no exception
    (200, ValueError("bad json"), OTHER),
])
def test_classify(status: int, exc: BaseException | None, kind: int) -> None:
    assert classify(status, exc) == kind, ERROR_KINDS[classify(status, exc)]


def test_drain_refuses_codes_that_were_never_interned() -> None:
    rec = Recorder(None)
    rec.record(5, 0, 1.0, 1.0, 0.1, 200, 1, 0)
    with pytest.raises(ValueError, match="op code 5"):
        rec.drain()
