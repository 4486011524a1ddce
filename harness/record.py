"""One sample per request: the contract between the Locust users and the analysis.

A sample is ``op, key, planned, sent, latency, status, nbytes, error``:

- ``op`` and ``key`` are small integer codes interned by the recorder
  (``op_code("device.sendState")``, ``key_code(device_id)``), so a row holds no strings;
- ``planned`` and ``sent`` are epoch seconds (float64): when the schedule wanted the
  call to go and when it went; a closed-loop call with no schedule passes planned = sent;
- ``latency`` is seconds from the actual send to the end of the response (or failure);
- ``status`` is the HTTP status, 0 when no response came back;
- ``nbytes`` is the response body size, except for ``files.post``, where it is the
  request body size sent (its documented cap, 10 MB, is on the upload, and the size
  judge needs the bytes the cap is about); ``error`` indexes ``ERROR_KINDS``.

The ``key`` of a call is the value of its limit's key kind (device id, application
id, ``<applicationId>:<topic>``, ``<flowId>:<buttonKey>``, owner, dashboard, ...), so
the analysis can rebuild each counter. Size-capped calls (key kind "request") carry a
label instead, optionally ``label@<bytes>`` (the answer size the scenario built the
request to have, which lets a refusal be judged) and ``!<ErrorType>`` (the error
body's ``type`` of a refusal); ``harness/analysis/sizes.py`` reads them.

MQTT devices (``harness/users/mqtt.py``) record five operations in the same row (the
contract with the MQTT judge, ``harness/analysis/mqtt.py``):

- ``mqtt.connect`` (key: device id): planned = when the connector wanted the CONNECT (the
  new-connection ledger's slot, or a reconnect back-off's end), sent = the TCP connect and
  CONNECT, latency until the CONNACK or the failure; status 200 = accepted, 1000 + the CONNACK
  code when refused (1003 server unavailable: a ban or the new-connection limit, error
  ``throttled``; 1005 not authorised, ``http``), 0 when no CONNACK came (``connection`` or
  ``timeout``). Every reconnect attempt is one more row.
- ``mqtt.publishState`` (key ``<deviceId>:losant/<deviceId>/state``, what the broker counts it by: a
  gateway publishing for a peripheral, ``<gatewayId>:losant/<peripheralId>/state``): planned = the open-loop timeline's time, latency PUBLISH to PUBACK (QoS 1), status 200,
  or 0 (``connection``) when the connection was lost first; nbytes = the payload published.
- ``mqtt.commandDelivery`` (key: receiving device; a peripheral's command, received on its gateway's
  connection: ``<gatewayId>:losant/<peripheralId>/command``): planned = sent = the operator's send time
  (stamped in the command's payload), latency until the device's client received it, status
  200, nbytes = the payload received; a command awaited and never received by the stop: status 0,
  ``timeout``, latency = stop - sent.
- ``mqtt.stateVisible`` (key: device; sampled): planned = sent = the PUBLISH's send time, latency
  until a REST last-value query first returned the state; status 200, or 0 (``timeout``).
- ``mqtt.disconnect`` (key: device): planned = sent = when the connection was lost, latency 0,
  status = reason: 1 the broker closed it, 2 the harness closed it (end of run), 3 keep-alive
  timeout, 4 taken over by another connection (not observable over MQTT 3.1.1: shows as 1), 5
  dropped on purpose (a storm: the broker's answer to the drop named the device); error
  ``connection`` for 1, 3, 4.

Derived, never stored twice: throttled = (status == 429), lateness = sent - planned,
corrected latency = sent + latency - planned (the response end measured from the
planned send, which is what HdrHistogram's corrected values reconstruct).

Why a packed row buffer: a Python-level record call is the cost that matters (a
load generator core spends it once per request). ``struct.pack_into`` writes all eight
fields into a preallocated ``bytearray`` in one C call, keeps no per-sample Python
object, and the buffer is read back by numpy with a matching structured dtype at no
copy. Measured by ``bench/recorder.py`` against ``list.append``.

On disk: ``samples/chunk-NNNNN.npz`` (one array per column, uncompressed so a spill
is a memory copy) plus ``samples/meta.json`` (op and key names, error kinds, format
version), rewritten at each spill so a crashed run stays readable up to its last spill.

Concurrency: ``record`` does not yield, so under gevent (one OS thread, greenlets
switch only on I/O) calls never interleave. It is not safe across OS threads.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1

#: Error kinds, indexed by the ``error`` column; 0 means no error.
ERROR_KINDS: tuple[str, ...] = ("", "http", "throttled", "connection", "timeout", "other")
NO_ERROR, HTTP, THROTTLED, CONNECTION, TIMEOUT, OTHER = range(6)

#: Locust's ``request_type`` for MQTT samples in its own statistics (web UI, locust_stats.csv): apart
#: from the HTTP methods, so the headless progress line can keep counting HTTP requests alone.
LOCUST_MQTT_TYPE = "MQTT"

#: Column name → dtype, in row order; the struct format below must match it byte for byte.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("op", "<u2"), ("key", "<i4"), ("planned", "<f8"), ("sent", "<f8"), ("latency", "<f8"),
    ("status", "<i2"), ("nbytes", "<i8"), ("error", "<u1"),
)
ROW_DTYPE = np.dtype(list(COLUMNS))  # packed (no alignment padding), 41 bytes
_ROW = struct.Struct("<HidddhqB")
ROW_SIZE = 41  # literal in Recorder.record (a constant is cheaper than a lookup)
assert _ROW.size == ROW_DTYPE.itemsize == ROW_SIZE


def classify(status: int, exc: BaseException | None) -> int:
    """Error kind code for one call; the status wins over the exception.

    >>> ERROR_KINDS[classify(429, None)], ERROR_KINDS[classify(0, TimeoutError())]
    ('throttled', 'timeout')

    A 429 is "throttled" (not "http") so the error rate and the throttle rate stay
    separate figures. Exceptions are recognised by class, then by name along the MRO,
    because gevent, geventhttpclient, httpx and requests each have their own types.
    """
    if status == 429:
        return THROTTLED
    if status >= 400:
        return HTTP
    if exc is not None:
        names = [c.__name__.lower() for c in type(exc).__mro__]
        if isinstance(exc, TimeoutError) or any("timeout" in n for n in names):
            return TIMEOUT
        if isinstance(exc, (ConnectionError, OSError)) or any("connect" in n for n in names):
            return CONNECTION
        return OTHER
    if status == 0:
        return CONNECTION
    return NO_ERROR


@dataclass
class Samples:
    """All samples of a run (or of a test), one numpy array per column."""

    op: np.ndarray
    key: np.ndarray
    planned: np.ndarray
    sent: np.ndarray
    latency: np.ndarray
    status: np.ndarray
    nbytes: np.ndarray
    error: np.ndarray
    op_names: tuple[str, ...] = ()
    key_names: tuple[str, ...] = ()
    error_kinds: tuple[str, ...] = ERROR_KINDS

    def __post_init__(self) -> None:
        for name, dtype in COLUMNS:
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=dtype))
        n = len(self.op)
        if any(len(getattr(self, name)) != n for name, _ in COLUMNS):
            raise ValueError("Samples columns differ in length")

    def __len__(self) -> int:
        return len(self.op)

    @property
    def throttled(self) -> np.ndarray:
        return self.status == 429

    @property
    def end(self) -> np.ndarray:
        return self.sent + self.latency

    @property
    def lateness(self) -> np.ndarray:
        """sent - planned: how late the scheduler let the call go (negative = early)."""
        return self.sent - self.planned

    @property
    def corrected(self) -> np.ndarray:
        """(sent - planned) + latency = end - planned: the coordinated-omission-corrected latency."""
        return (self.sent - self.planned) + self.latency

    def op_index(self, name: str) -> int | None:
        return self.op_names.index(name) if name in self.op_names else None

    @classmethod
    def from_rows(cls, rows: np.ndarray, op_names: tuple[str, ...] = (), key_names: tuple[str, ...] = ()) -> Samples:
        return cls.from_columns({name: rows[name] for name, _ in COLUMNS}, op_names, key_names)

    @classmethod
    def from_columns(cls, c: dict[str, np.ndarray], op_names: tuple[str, ...] = (), key_names: tuple[str, ...] = (),
                     error_kinds: tuple[str, ...] = ERROR_KINDS) -> Samples:
        return cls(op=c["op"], key=c["key"], planned=c["planned"], sent=c["sent"], latency=c["latency"],
                   status=c["status"], nbytes=c["nbytes"], error=c["error"], op_names=tuple(op_names),
                   key_names=tuple(key_names), error_kinds=tuple(error_kinds))

    @classmethod
    def empty(cls) -> Samples:
        return cls.from_rows(np.zeros(0, ROW_DTYPE))


class Recorder:
    """Collects samples in a preallocated packed buffer; spills full chunks to disk.

    >>> rec = Recorder(None, chunk_rows=4)
    >>> op, key = rec.op_code("device.sendState"), rec.key_code("dev-1")
    >>> rec.record(op, key, 10.0, 10.001, 0.020, 200, 2, 0)
    >>> len(rec.samples())
    1

    With ``run_dir=None`` (a Locust worker) full chunks stay in memory, compact, until
    ``drain`` ships them; with a run folder, memory stays at about one chunk
    (41 bytes x ``chunk_rows``).
    """

    enabled = True  # samples are kept (``harness.session.NullRecorder`` keeps none)

    def __init__(self, run_dir: Path | None, chunk_rows: int = 1_000_000) -> None:
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.chunk_rows = chunk_rows
        self._buf = bytearray(_ROW.size * chunk_rows)
        self._pos = 0
        self._end = len(self._buf)
        self._pack_into = _ROW.pack_into
        self._pending: list[np.ndarray] = []  # sealed chunks (ROW_DTYPE) not yet on disk
        self._pending_rows = 0
        self._chunks_written = 0
        self._rows_written = 0
        self._ops: dict[str, int] = {}
        self._keys: dict[str, int] = {}
        self.closed = False

    # -- interning ---------------------------------------------------------
    def op_code(self, name: str) -> int:
        """Code of an operation name, assigned on first use (cache it: this is a dict lookup)."""
        code = self._ops.get(name)
        if code is None:
            code = self._ops[name] = len(self._ops)
        return code

    def key_code(self, key: str) -> int:
        code = self._keys.get(key)
        if code is None:
            code = self._keys[key] = len(self._keys)
        return code

    @property
    def op_names(self) -> tuple[str, ...]:
        return tuple(self._ops)  # dicts keep insertion order = code order

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(self._keys)

    # -- hot path ----------------------------------------------------------
    def record(self, op: int, key: int, planned: float, sent: float, latency: float,
               status: int, nbytes: int, error: int) -> None:
        """Append one sample: one bounds check and one ``struct.pack_into``, no allocation."""
        pos = self._pos
        if pos == self._end:
            self._seal()
            pos = 0
        self._pack_into(self._buf, pos, op, key, planned, sent, latency, status, nbytes, error)
        self._pos = pos + 41

    # -- chunks --------------------------------------------------------------
    def _seal(self) -> None:
        """Move the filled part of the buffer into a compact array; spill when a chunk is due."""
        rows = self._pos // _ROW.size
        if rows:
            self._pending.append(np.frombuffer(self._buf, ROW_DTYPE, count=rows).copy())
            self._pending_rows += rows
            self._pos = 0
        if self.run_dir is not None and self._pending_rows >= self.chunk_rows:
            self._write_pending()

    def spill(self) -> None:
        """Write everything buffered as the next chunk file (no-op without a run folder or rows)."""
        self._seal()
        if self.run_dir is not None:
            self._write_pending()

    def _write_pending(self) -> None:
        if not self._pending_rows or self.run_dir is None:
            return
        rows = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        folder = self.run_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"chunk-{self._chunks_written:05d}.npz"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, **{name: np.ascontiguousarray(rows[name]) for name, _ in COLUMNS})  # type: ignore[arg-type]
        os.replace(tmp, path)
        self._chunks_written += 1
        self._rows_written += len(rows)
        self._pending, self._pending_rows = [], 0
        self._write_meta()

    def _write_meta(self) -> None:
        assert self.run_dir is not None
        folder = self.run_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "schema": "losant-load/samples", "version": FORMAT_VERSION,
            "columns": [[name, dtype] for name, dtype in COLUMNS],
            "error_kinds": list(ERROR_KINDS), "op_names": list(self._ops), "key_names": list(self._keys),
            "chunks": self._chunks_written, "rows": self._rows_written, "closed": self.closed,
        }
        tmp = folder / "meta.json.tmp"
        tmp.write_text(json.dumps(meta), encoding="utf-8")
        os.replace(tmp, folder / "meta.json")

    def close(self) -> None:
        """Flush what is left and write ``samples/meta.json``; idempotent."""
        self.spill()
        self.closed = True
        if self.run_dir is not None:
            self._write_meta()

    def samples(self) -> Samples:
        """What is in memory (not what was spilled) as ``Samples``; for workers and tests."""
        self._seal()
        rows = np.concatenate(self._pending) if self._pending else np.zeros(0, ROW_DTYPE)
        return Samples.from_rows(rows, self.op_names, self.key_names)

    # -- shipping between processes -------------------------------------------
    def drain(self) -> dict[str, Any]:
        """Return and forget the rows held in memory, as a self-describing batch.

        The batch is plain data (bytes, ints, strings), so Locust's msgpack can carry
        it from worker to master: ``rows`` is the packed row bytes (``ROW_DTYPE``),
        and ``ops``/``keys`` are ``[code, name]`` pairs for exactly the codes in it,
        so the receiver can remap without knowing the sender's earlier batches.
        """
        self._seal()
        rows = np.concatenate(self._pending) if self._pending else np.zeros(0, ROW_DTYPE)
        self._pending, self._pending_rows = [], 0
        ops, keys = self.op_names, self.key_names
        for column, names in (("op", ops), ("key", keys)):
            if len(rows) and int(rows[column].max()) >= len(names):
                raise ValueError(f"a sample uses {column} code {int(rows[column].max())}, which was never interned "
                                 f"(use op_code/key_code)")
        return {
            "format": FORMAT_VERSION,
            "n": int(len(rows)),
            "rows": rows.tobytes(),
            "ops": [[int(c), ops[c]] for c in np.unique(rows["op"])],
            "keys": [[int(c), keys[c]] for c in np.unique(rows["key"])],
        }

    def ingest(self, batch: dict[str, Any]) -> int:
        """Add a batch from ``drain`` (another process's codes) to this recorder; return its rows."""
        if batch.get("format") != FORMAT_VERSION:
            raise ValueError(f"sample batch format {batch.get('format')!r}, expected {FORMAT_VERSION}")
        rows = np.frombuffer(batch["rows"], ROW_DTYPE).copy()
        if len(rows) != batch["n"]:
            raise ValueError(f"sample batch says {batch['n']} rows but carries {len(rows)}")
        if not len(rows):
            return 0
        for column, pairs, intern in (("op", batch["ops"], self.op_code), ("key", batch["keys"], self.key_code)):
            codes = np.array([c for c, _ in pairs], dtype=np.int64)
            lookup = np.full(int(codes.max()) + 1 if len(codes) else 1, -1, dtype=np.int64)
            lookup[codes] = [intern(name) for _, name in pairs]
            mapped = lookup[rows[column]]
            if (mapped < 0).any():
                raise ValueError(f"sample batch uses a {column} code it does not name")
            rows[column] = mapped
        self._seal()
        self._pending.append(rows)
        self._pending_rows += len(rows)
        if self.run_dir is not None and self._pending_rows >= self.chunk_rows:
            self._write_pending()
        return len(rows)


def read_samples(run_dir: Path) -> Samples:
    """Every sample of a run folder, chunks concatenated in write order."""
    folder = Path(run_dir) / "samples"
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path}: no samples metadata (was the recorder closed or spilled?)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{meta_path}: samples format version {meta.get('version')!r}, expected {FORMAT_VERSION}")
    columns: dict[str, list[np.ndarray]] = {name: [] for name, _ in COLUMNS}
    for path in sorted(folder.glob("chunk-*.npz")):
        with np.load(path) as data:
            for name, _ in COLUMNS:
                columns[name].append(data[name])
    arrays = {name: np.concatenate(columns[name]) if columns[name] else np.zeros(0, dtype) for name, dtype in COLUMNS}
    return Samples.from_columns(arrays, tuple(meta["op_names"]), tuple(meta["key_names"]),
                                tuple(meta.get("error_kinds", ERROR_KINDS)))
