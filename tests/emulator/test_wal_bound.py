"""The file database's WAL stays bounded under a steady stream of commits, and no answered state is lost.

Why it matters: SQLite starts a WAL over only at a commit that finds every frame copied to
the database, and under a fleet some commit always landed while the checkpoint thread ran,
so the WAL grew without end (hundreds of MB) and every commit extended the file. The store
now lets a checkpoint hold the commit lock once the WAL is large, deferring (never
blocking) the loop's commits meanwhile (store._Checkpointer, Store.flush_soon).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import pytest

from harness.emulator import store as store_module
from harness.emulator.store import Store

RESET_BYTES = 64 * 1024


def _rows(store: Store, device: str) -> int:
    return store.state_count(device)


def test_a_held_commit_lock_defers_the_loops_commit_without_blocking_it(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "e.db"), checkpoint_every_s=3600)
    try:
        async def scenario() -> tuple[bool, bool]:
            store._commit_lock.acquire()  # as a WAL reset does
            fut = store.enqueue_states([("dev-1", 1_000, '{"v": 1}')])
            for _ in range(20):  # the loop keeps turning: several deferred attempts
                await asyncio.sleep(0.002)
            waited = not fut.done()
            store._commit_lock.release()
            await asyncio.wait_for(fut, timeout=10)
            return waited, fut.done()

        waited, done = asyncio.run(scenario())
        assert waited and done  # the answer waited for the lock; the loop never did
        assert _rows(store, "dev-1") == 1
    finally:
        store.close()


def test_the_wal_is_started_over_under_steady_commits_and_every_answered_row_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "MAX_COMMIT_WAIT_S", 60.0)  # a busy disk must not make a reset give way
    path = tmp_path / "e.db"
    store = Store(str(path), checkpoint_every_s=0.01, wal_reset_bytes=RESET_BYTES)
    answered = 0
    try:
        async def stream() -> int:
            done = 0
            deadline = time.monotonic() + 60
            t = 0
            # commits until the checkpointer has prepared a few resets (bounded in time)
            while (store._checkpointer is None or store._checkpointer.resets < 3) and time.monotonic() < deadline:
                futs = [store.enqueue_states([(f"dev-{i}", 1_000 + t, '{"v": %d}' % t)]) for i in range(50)]
                await asyncio.gather(*futs)
                done += len(futs)
                t += 1
                await asyncio.sleep(0)
            return done

        answered = asyncio.run(stream())
        assert store._checkpointer is not None and store._checkpointer.resets >= 3
        # with the writes stopped, a checkpoint copies everything; the next commit starts the WAL over
        # and trims the file to journal_size_limit (twice the reset size) whatever it had grown to
        with sqlite3.connect(path) as other:
            other.execute("PRAGMA wal_checkpoint(PASSIVE)")
        store._pending.append((store.device_num("dev-0"), 999, '{"v": -1}'))
        store.flush()
        answered += 1
        assert os.path.getsize(f"{path}-wal") <= 2 * RESET_BYTES + 64 * 1024
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM states").fetchone()[0] == answered


def test_a_reset_held_too_long_is_not_waited_for(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "e.db"), checkpoint_every_s=3600)
    try:
        async def scenario() -> None:
            checkpointer = store._checkpointer
            assert checkpointer is not None
            store._commit_lock.acquire()  # a reset on a slow disk: held for a second already
            checkpointer.holding_since = time.perf_counter() - 1.0
            try:
                await asyncio.wait_for(store.enqueue_states([("dev-1", 1_000, '{"v": 1}')]), timeout=10)
            finally:
                checkpointer.holding_since = float("inf")
                store._commit_lock.release()

        asyncio.run(scenario())
        assert _rows(store, "dev-1") == 1
    finally:
        store.close()
