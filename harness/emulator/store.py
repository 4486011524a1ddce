"""SQLite storage for everything the emulator keeps, with group commit for device states.

Why group commit: send-state is the hot path. Each accepted state is appended to an
in-memory batch; one ``loop.call_soon`` flush (``flush_soon``) writes the whole batch in a single
transaction and only then resolves the requests' futures, so a request is answered
only after its state is committed (an answered write survives ``kill -9``), while the
commit cost is shared by every request parsed in the same loop iteration.
With ``--db PATH``: WAL + ``synchronous=NORMAL``: a commit is in the WAL file before
the answer; only a power loss (not a process kill) could lose the last transactions.
Without it, a scratch file (``scratch=True``): in RAM-backed ``/dev/shm`` when there is one,
unlinked as soon as it is open so even ``kill -9`` leaves nothing behind, journal in
memory, no syncs, exclusive lock. Measured under bench/emulator.py's load, its commit
costs about a third of an in-memory (``:memory:``) database's (12 vs 43 us per
group-commit batch of ~21 rows); ``:memory:`` remains for in-process tests.

Resource documents (applications, devices, keys, token metadata, events) are JSON
in a ``doc`` column; only the columns queried by are real columns. Secrets are never
stored: tokens by sha256, key secrets as salted sha256. Caches (devices, tokens) are
bounded and hold resources, never per-state data.
"""

from __future__ import annotations

import asyncio
import atexit
import builtins
import os
import sqlite3
import tempfile
import threading
import time
from collections import OrderedDict
from typing import Any, Iterable, Protocol

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS applications (id TEXT PRIMARY KEY, owner_id TEXT, doc BLOB);
CREATE TABLE IF NOT EXISTS devices (id TEXT PRIMARY KEY, application_id TEXT, doc BLOB);
CREATE INDEX IF NOT EXISTS devices_app ON devices(application_id);
CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, application_id TEXT, key TEXT UNIQUE, doc BLOB);
CREATE TABLE IF NOT EXISTS api_tokens (id TEXT PRIMARY KEY, application_id TEXT, doc BLOB);
CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, application_id TEXT, api_token_id TEXT, device_id TEXT, doc BLOB);
CREATE TABLE IF NOT EXISTS device_nums (n INTEGER PRIMARY KEY, id TEXT UNIQUE);
CREATE TABLE IF NOT EXISTS states (device_n INTEGER, time INTEGER, data TEXT, PRIMARY KEY (device_n, time)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commands (seq INTEGER PRIMARY KEY, device_id TEXT, time INTEGER, doc BLOB);
CREATE INDEX IF NOT EXISTS commands_dev ON commands(device_id, time);
CREATE TABLE IF NOT EXISTS logs (seq INTEGER PRIMARY KEY, device_id TEXT, time INTEGER, doc BLOB);
CREATE INDEX IF NOT EXISTS logs_dev ON logs(device_id, time);
CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, application_id TEXT, doc BLOB);
CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, email TEXT UNIQUE, doc BLOB);
CREATE TABLE IF NOT EXISTS table_rows (seq INTEGER PRIMARY KEY, application_id TEXT, table_id TEXT, doc TEXT);
CREATE INDEX IF NOT EXISTS table_rows_table ON table_rows(application_id, table_id, seq);
CREATE INDEX IF NOT EXISTS events_app ON events(application_id);
"""
_UPSERT_STATE = ("INSERT INTO states (device_n, time, data) VALUES (?, ?, ?) ON CONFLICT (device_n, time) "
                 "DO UPDATE SET data = json_patch(states.data, excluded.data)")
_TABLES = {"applications": "application_id", "devices": "application_id", "keys": "application_id",
           "api_tokens": "application_id", "events": "application_id"}
CACHE_CAP = 200_000
WAL_RESET_BYTES = 16 * 1024 * 1024  # a WAL this large is started over (see _Checkpointer)
MAX_COMMIT_WAIT_S = 0.02  # the longest a batch waits for a WAL reset (two syncs: 4-10 ms each measured here)
_CACHED = ("applications", "devices", "keys")


def _dump(doc: dict[str, Any]) -> bytes:
    """Serialize a document without its memory-only ``_``-prefixed helpers."""
    return orjson.dumps({k: v for k, v in doc.items() if not k.startswith("_")})


def _scratch_db() -> sqlite3.Connection:
    """A database in an unlinked temporary file (see the module docstring for why not ``:memory:``).

    The journal is in memory and the lock exclusive, so SQLite never opens the file by
    name again after the schema is written; unlinking it then is safe, and the kernel
    frees it when the process ends, however it ends.
    """
    shm = "/dev/shm"
    folder = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    fd, name = tempfile.mkstemp(prefix="losant-emulator-", suffix=".db", dir=folder)
    os.close(fd)
    try:
        db = sqlite3.connect(name, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=MEMORY")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.executescript(_SCHEMA)  # the first write takes the exclusive lock and keeps it
    finally:
        try:
            os.unlink(name)
        except OSError:  # Windows cannot unlink an open file: remove it when the process exits
            atexit.register(_remove_quietly, name)
    return db


def _remove_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


class Waiter(Protocol):
    """What the group commit tells once a request's rows are committed (or failed): an asyncio future's part."""

    def done(self) -> bool: ...

    def set_result(self, result: None, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class _Checkpointer:
    """Copies the WAL into the database file from a thread of its own, once a second, and keeps the WAL bounded.

    Why a thread: SQLite's automatic checkpoint runs inside the commit that crosses 1,000 WAL
    pages, on the event loop, and writes and syncs the database file there; under a fleet that
    was a stall every second or two. A passive checkpoint never blocks the writer (it copies
    what no reader still needs and tries again later), and the sqlite3 module releases the
    GIL while it runs. The commit itself stays on the loop: an answered write is in the WAL.

    Why the reset: SQLite starts the WAL over only at a commit that finds every frame already
    copied, and under a steady fleet some commit always lands while a checkpoint runs, so the
    WAL never started over: it grew without end (326 MB after provisioning 20,000 devices)
    and every commit extended the file, a write that waits on the file system's journal
    (the loop blocked 40-60 ms in ``COMMIT`` with no CPU used). Once the WAL holds
    ``reset_bytes``, the next checkpoint takes ``commit_lock``: it copies the last frames
    with no commit in between, so the next commit starts the WAL over (``journal_size_limit``
    trims the file to twice ``reset_bytes``). Meanwhile the loop does not wait for the lock:
    ``Store.flush_soon`` keeps the batch and tries again a millisecond later, so the answers
    of that batch wait for the checkpoint (at most ``MAX_COMMIT_WAIT_S``), never the loop.
    """

    def __init__(self, path: str, commit_lock: threading.Lock, every_s: float, reset_bytes: int) -> None:
        self._stop = threading.Event()
        self._lock = commit_lock
        self.reset_bytes = reset_bytes
        self.resets = 0  # WAL resets prepared (every frame copied with no commit in between)
        self.held_s = 0.0  # how long the commit lock was held for the last one (bench/emulator_probe.py reads it)
        #: perf_counter() when the commit lock was taken for a reset; inf while it is not held
        self.holding_since = float("inf")
        self._thread = threading.Thread(target=self._run, args=(path, every_s), name="wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self, path: str, every_s: float) -> None:
        db = sqlite3.connect(path, isolation_level=None)
        try:
            page = int(db.execute("PRAGMA page_size").fetchone()[0])
            while not self._stop.wait(every_s):
                try:
                    frames = int(db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
                    if frames * page >= self.reset_bytes:
                        with self._lock:
                            self.holding_since = t0 = time.perf_counter()
                            try:
                                _, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                            finally:
                                self.holding_since = float("inf")
                            self.held_s = time.perf_counter() - t0
                        self.resets += frames == copied
                except sqlite3.Error:  # busy or locked: the next round catches up
                    pass
        finally:
            db.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class _Lru(OrderedDict):  # type: ignore[type-arg]
    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap = cap

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        if len(self) > self.cap:
            self.popitem(last=False)


class Store:
    """All persistent state: in the file ``path``, in a scratch file (``scratch``), or in memory (in-process tests)."""

    def __init__(self, path: str | None = None, scratch: bool = False, checkpoint_every_s: float = 1.0,
                 wal_reset_bytes: int = WAL_RESET_BYTES) -> None:
        self.path = path
        self._checkpointer: _Checkpointer | None = None
        #: held by a commit and by a WAL reset (see _Checkpointer); uncontended without a file database
        self._commit_lock = threading.Lock()
        if path:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA wal_autocheckpoint=0")  # see _Checkpointer
            self.db.executescript(_SCHEMA)
            self._checkpointer = _Checkpointer(path, self._commit_lock, checkpoint_every_s, wal_reset_bytes)
            self.db.execute(f"PRAGMA journal_size_limit={2 * self._checkpointer.reset_bytes}")
        elif scratch:
            self.db = _scratch_db()
        else:
            self.db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self.db.executescript(_SCHEMA)
        self._cache: dict[str, _Lru] = {t: _Lru(CACHE_CAP) for t in _CACHED}
        self._tokens: _Lru = _Lru(CACHE_CAP)
        self._nums: _Lru = _Lru(CACHE_CAP)
        #: Bumped by every write to a resource table (not by states, commands or logs): what
        #: was decided from resources at one generation holds while it is unchanged (Auth.reach).
        self.generation = 0
        self._pending: list[tuple[int, int, str]] = []
        self._waiters: list[Waiter] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of the pending batch
        self.batches = 0

    def close(self) -> None:
        self.flush()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.db.close()

    # ---- generic documents -------------------------------------------------
    def put(self, table: str, id_: str, doc: dict[str, Any], **cols: Any) -> None:
        self.generation += 1
        names = ["id", "doc", *cols]
        values = [id_, _dump(doc), *cols.values()]
        self.db.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", values)
        if table in self._cache:
            self._cache[table].pop(id_, None)

    def get(self, table: str, id_: str) -> dict[str, Any] | None:
        cache = self._cache.get(table)
        if cache is not None:
            cached = cache.get(id_)
            if cached is not None:
                return cached
        row = self.db.execute(f"SELECT doc FROM {table} WHERE id = ?", (id_,)).fetchone()
        doc = orjson.loads(row[0]) if row else None
        if doc is not None and cache is not None:
            cache.put(id_, doc)
        return doc

    def list(self, table: str, application_id: str) -> list[dict[str, Any]]:
        col = _TABLES[table]
        rows = self.db.execute(f"SELECT doc FROM {table} WHERE {col} = ?", (application_id,))
        return [orjson.loads(r[0]) for r in rows]

    def list_where(self, table: str, column: str, value: str) -> builtins.list[dict[str, Any]]:
        rows = self.db.execute(f"SELECT doc FROM {table} WHERE {column} = ?", (value,))
        return [orjson.loads(r[0]) for r in rows]

    def delete(self, table: str, id_: str) -> None:
        self.generation += 1
        self.db.execute(f"DELETE FROM {table} WHERE id = ?", (id_,))
        if table in self._cache:
            self._cache[table].pop(id_, None)

    def key_by_key(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT doc FROM keys WHERE key = ?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else None

    # ---- tokens (by sha256 only) ---------------------------------------------
    def put_token(self, token_hash: str, doc: dict[str, Any]) -> None:
        self.generation += 1
        self.db.execute("INSERT OR REPLACE INTO tokens (hash, application_id, api_token_id, device_id, doc) VALUES (?, ?, ?, ?, ?)",
                        (token_hash, doc.get("applicationId"), doc.get("apiTokenId"), doc.get("deviceId"), _dump(doc)))
        self._tokens.put(token_hash, doc)

    def token(self, token_hash: str) -> dict[str, Any] | None:
        doc = self._tokens.get(token_hash)
        if doc is None:
            row = self.db.execute("SELECT doc FROM tokens WHERE hash = ?", (token_hash,)).fetchone()
            if row is None:
                return None
            doc = orjson.loads(row[0])
            self._tokens.put(token_hash, doc)
        return doc

    def update_api_token_status(self, api_token_id: str, status: str) -> None:
        rows = self.db.execute("SELECT hash, doc FROM tokens WHERE api_token_id = ?", (api_token_id,)).fetchall()
        for token_hash, raw in rows:
            doc = orjson.loads(raw)
            doc["status"] = status
            self.put_token(token_hash, doc)

    def delete_tokens(self, column: str, value: str) -> None:
        self.generation += 1
        self.db.execute(f"DELETE FROM tokens WHERE {column} = ?", (value,))
        self._tokens.clear()

    # ---- device states (group commit) --------------------------------------
    def device_num(self, device_id: str) -> int:
        """A small integer standing for a device in ``states``: integer keys halve the insert cost."""
        n = self._nums.get(device_id)
        if n is None:
            row = self.db.execute("SELECT n FROM device_nums WHERE id = ?", (device_id,)).fetchone()
            if row is None:
                n = self.db.execute("INSERT INTO device_nums (id) VALUES (?)", (device_id,)).lastrowid
            else:
                n = row[0]
            self._nums.put(device_id, n)
        return int(n)  # type: ignore[arg-type]

    def enqueue_states(self, rows: builtins.list[tuple[str, int, str]]) -> asyncio.Future[None]:
        """Queue rows (device_id, time ms, data JSON); the future resolves once committed.

        One future per request (not one shared per batch): a cancelled request cancels only
        its own future, never its batch-mates' answers.
        """
        loop = self._batch_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._enqueue(rows, fut)
        return fut

    def enqueue_states_for(self, rows: builtins.list[tuple[str, int, str]], waiter: Waiter) -> None:
        """Queue rows like ``enqueue_states``, telling ``waiter`` instead of a new future: the connection's
        send-state lane (lane.py) passes its request, which writes the answer when told."""
        self._batch_loop()
        self._enqueue(rows, waiter)

    def _batch_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop; the first request of a batch schedules its flush on it and owns the batch."""
        if not self._waiters:
            self._loop = loop = asyncio.get_running_loop()
            loop.call_soon(self.flush_soon)
            return loop
        # batch-mates reuse the first one's loop: asyncio.get_running_loop() makes a getpid()
        # system call on every call (CPython's fork check); once per batch is enough
        return self._loop or asyncio.get_running_loop()

    def _enqueue(self, rows: builtins.list[tuple[str, int, str]], waiter: Waiter) -> None:
        num = self.device_num
        self._pending.extend([(num(d), t, data) for d, t, data in rows])
        self._waiters.append(waiter)

    def flush(self) -> None:
        """Commit the pending batch in one transaction and wake its requests.

        For the readers that need every answered state in the database first (queries,
        deletes, shutdown): waits for a WAL reset in progress, ``MAX_COMMIT_WAIT_S`` at most.
        """
        held = self._commit_lock.acquire(timeout=MAX_COMMIT_WAIT_S)
        try:
            self._commit()
        finally:
            if held:
                self._commit_lock.release()

    def flush_soon(self) -> None:
        """The loop's flush: while a WAL reset holds the commit lock, try again in a millisecond instead of blocking.

        A reset that holds the lock past ``MAX_COMMIT_WAIT_S`` (a slow disk's syncs) is not
        waited for any longer: the batch commits beside the checkpoint (SQLite allows it; the
        lock is only this store's), that reset is missed and the next one tries again.
        """
        if self._commit_lock.acquire(blocking=False):
            try:
                self._commit()
            finally:
                self._commit_lock.release()
            return
        checkpointer = self._checkpointer
        if checkpointer is not None and time.perf_counter() - checkpointer.holding_since > MAX_COMMIT_WAIT_S:
            self._commit()
            return
        (self._loop or asyncio.get_running_loop()).call_later(0.001, self.flush_soon)

    def _commit(self) -> None:
        rows, waiters = self._pending, self._waiters
        self._pending, self._waiters = [], []
        error: BaseException | None = None
        if rows:
            try:
                self.db.execute("BEGIN")
                self.db.executemany(_UPSERT_STATE, rows)
                self.db.execute("COMMIT")
                self.batches += 1
            except sqlite3.Error as exc:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                error = exc
        for fut in waiters:
            if not fut.done():
                if error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(error)

    def states(self, device_id: str, start: int, end: int, limit: int | None, descending: bool) -> builtins.list[tuple[int, dict[str, Any]]]:
        self.flush()
        order = "DESC" if descending else "ASC"
        sql = f"SELECT time, data FROM states WHERE device_n = ? AND time >= ? AND time <= ? ORDER BY time {order}"
        params: builtins.list[Any] = [self.device_num(device_id), start, end]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [(t, orjson.loads(d)) for t, d in self.db.execute(sql, params)]

    def iter_states(self, device_id: str, start: int, end: int, descending: bool = False) -> Iterable[tuple[int, dict[str, Any]]]:
        self.flush()
        order = "DESC" if descending else "ASC"
        cur = self.db.execute(f"SELECT time, data FROM states WHERE device_n = ? AND time >= ? AND time <= ? "
                              f"ORDER BY time {order}", (self.device_num(device_id), start, end))
        for t, d in cur:
            yield t, orjson.loads(d)

    def state_count(self, device_id: str) -> int:
        self.flush()
        return int(self.db.execute("SELECT COUNT(*) FROM states WHERE device_n = ?", (self.device_num(device_id),)).fetchone()[0])

    # ---- commands and logs ---------------------------------------------------
    def add_row(self, table: str, device_id: str, time_ms: int, doc: dict[str, Any]) -> None:
        self.db.execute(f"INSERT INTO {table} (device_id, time, doc) VALUES (?, ?, ?)", (device_id, time_ms, orjson.dumps(doc)))

    def rows(self, table: str, device_id: str, start: int, end: int, limit: int, descending: bool) -> builtins.list[dict[str, Any]]:
        order = "DESC" if descending else "ASC"
        cur = self.db.execute(f"SELECT doc FROM {table} WHERE device_id = ? AND time >= ? AND time <= ? "
                              f"ORDER BY time {order}, seq {order} LIMIT ?", (device_id, start, end, limit))
        return [orjson.loads(r[0]) for r in cur]

    # ---- data table rows ---------------------------------------------------------
    # Rows are JSON text (``doc``, with ``id``/``createdAt``/``updatedAt``), numbered by
    # ``seq`` in insertion order; SQLite's json_extract sorts by any column (routes_tables.py).
    def next_row_seq(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM table_rows").fetchone()[0])

    def insert_table_rows(self, application_id: str, table_id: str, rows: builtins.list[tuple[int, str]]) -> None:
        """(seq, doc JSON) rows in one transaction: a bulk insert is all or nothing."""
        self.db.execute("BEGIN")
        try:
            self.db.executemany("INSERT INTO table_rows (seq, application_id, table_id, doc) VALUES (?, ?, ?, ?)",
                                [(seq, application_id, table_id, doc) for seq, doc in rows])
        except sqlite3.Error:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def table_size(self, application_id: str, table_id: str) -> tuple[int, int]:
        """(rows, bytes of their JSON) of one data table."""
        count, size = self.db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(doc)), 0) FROM table_rows "
                                      "WHERE application_id = ? AND table_id = ?", (application_id, table_id)).fetchone()
        return int(count), int(size)

    def iter_table_rows(self, application_id: str, table_id: str, column: str | None, descending: bool,
                        limit: int = -1, offset: int = 0) -> Iterable[str]:
        """Row JSON texts in order: by insertion (``column`` None) or by a column's value, then insertion."""
        order = "DESC" if descending else "ASC"
        by = f"json_extract(doc, ?) {order}, seq {order}" if column else f"seq {order}"
        params: builtins.list[Any] = [application_id, table_id]
        if column:
            params.append('$."' + column + '"')  # the caller checked the name: [0-9a-zA-Z_-]
        cur = self.db.execute(f"SELECT doc FROM table_rows WHERE application_id = ? AND table_id = ? ORDER BY {by} "
                              "LIMIT ? OFFSET ?", (*params, limit, offset))
        for (doc,) in cur:
            yield doc

    # ---- cascades ---------------------------------------------------------------
    def _delete_data(self, device_id: str) -> None:
        self.db.execute("DELETE FROM states WHERE device_n = ?", (self.device_num(device_id),))
        for table in ("commands", "logs"):
            self.db.execute(f"DELETE FROM {table} WHERE device_id = ?", (device_id,))

    def delete_device_data(self, device_id: str) -> None:
        self.flush()
        self._delete_data(device_id)

    def delete_device(self, device_id: str) -> None:
        self.delete_device_data(device_id)
        self.delete_tokens("device_id", device_id)
        self.delete("devices", device_id)

    def delete_application(self, application_id: str) -> None:
        self.generation += 1
        self.flush()
        self.db.execute("BEGIN")
        for (device_id,) in self.db.execute("SELECT id FROM devices WHERE application_id = ?", (application_id,)).fetchall():
            self._delete_data(device_id)
        for table in ("devices", "keys", "api_tokens", "events", "tokens", "table_rows"):
            self.db.execute(f"DELETE FROM {table} WHERE application_id = ?", (application_id,))
        self.db.execute("DELETE FROM applications WHERE id = ?", (application_id,))
        self.db.execute("COMMIT")
        for cache in self._cache.values():
            cache.clear()
        self._tokens.clear()
