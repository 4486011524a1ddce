"""Read accepted states back after a run, so a lost write is caught, not assumed away.

During the run every state the target answered with success is logged with its
explicit time (ms), for every device (``AcceptedLog``: 4 bytes a state). After the run
the harness reads the states back and hands both to the pure comparison in
``harness.analysis.integrity``:

- Which devices: all of them where reads are free (the embedded emulator, a target on
  loopback) or when the scenario says ``integrity: {sample: all}``; a random sample of
  ``sample`` devices (default ``DEFAULT_LIVE_SAMPLE`` on a live tenant, where reads cost).
- How: in bulk first. A time-series query with aggregation ``NONE`` returns the raw
  points of up to 1,000 devices (the documented ``deviceIds`` maximum) in one call; a
  device whose accepted times all come back is intact. Only a device the bulk answer
  does not confirm (a lost write, a truncated answer, a failed query) is read in full
  with Get State (``/devices/D/state``, paged by time, 10,000 a page), which decides.
  Queries run a few at a time (``READ_POOL``), each answer far below the documented
  30 MB cap; reads have no documented rate limit, and a 429 or 5xx is retried after
  its ``Retry-After``.
- A device whose read fails is *unread*: counted as such, never as lost or as intact.
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from harness.accepted import AcceptedLog
from harness.analysis.integrity import flatten, missing
from harness.errors import HarnessError
from harness.fleet import Fleet
from harness.provision import Api

MAX_PAGE = 10_000  # Get State's largest page
BULK_DEVICES = 1000  # deviceIds per time-series query (the documented maximum)
BULK_POINTS = 50_000  # accepted states per bulk query: answers of a few MB, far below the 30 MB cap
READ_POOL = 4  # queries in flight at once
DEFAULT_LIVE_SAMPLE = 100  # devices read back on a live tenant unless the scenario says otherwise
GIVE_UP_AFTER = 20  # consecutive failed device reads before the rest are left unread


# -- which devices ------------------------------------------------------------------
def reads_are_free(url: str | None) -> bool:
    """True for the embedded emulator or any target on loopback: reading everything costs nothing."""
    if not url:
        return True
    host = (urlsplit(url).hostname or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def choose_devices(setting: str | int, url: str | None, devices: list[str], seed: str = "") -> tuple[str, list[str], str]:
    """(coverage, devices to read, why) for the scenario's ``integrity.sample`` setting.

    ``auto``: all where reads are free, else a sample of ``DEFAULT_LIVE_SAMPLE`` devices;
    ``all``; a number N (all when the run has N or fewer devices with accepted states).
    The sample is random but reproducible (seeded by the run tag).

    >>> choose_devices("auto", "https://api.losant.com", [f"d{i}" for i in range(500)], "t")[0]
    'sample'
    >>> choose_devices(3, None, ["a", "b"])[:2]
    ('all', ['a', 'b'])
    """
    if setting == "all" or (setting == "auto" and reads_are_free(url)):
        why = "integrity.sample is all" if setting == "all" else "reads are free on this target"
        return "all", list(devices), why
    n = DEFAULT_LIVE_SAMPLE if setting == "auto" else int(setting)
    if n >= len(devices):
        return "all", list(devices), f"the sample of {n:,} covers every device"
    chosen = sorted(random.Random(f"integrity:{seed}").sample(sorted(devices), n))
    why = (f"a live target: a sample of {n:,} devices (integrity.sample sets it)" if setting == "auto"
           else f"integrity.sample is {n:,}")
    return "sample", chosen, why


# -- reading ----------------------------------------------------------------------------
UNPARSED = np.iinfo(np.int64).min  # a time the answer held in a shape not understood: matches nothing


def _times_ms(values: list[Any]) -> np.ndarray:
    """State times as the API answers them (ISO with ms and Z, usually) -> epoch ms, aligned with ``values``."""
    if not values:
        return np.zeros(0, dtype=np.int64)
    if all(isinstance(v, str) and len(v) == 24 and v[-1] == "Z" and v[10] == "T" for v in values):
        try:
            return np.array([v[:-1] for v in values], dtype="datetime64[ms]").astype(np.int64)
        except ValueError:
            pass
    parsed = [_time_ms(v) for v in values]
    return np.array([UNPARSED if t is None else t for t in parsed], dtype=np.int64)


def _time_ms(value: Any) -> int | None:
    """Epoch ms of a time in another shape an answer may hold: ISO 8601 with an offset or none (UTC),
    epoch seconds or ms, ``{"$date": ...}``; None if unreadable. (The harness reads the target as a
    client does: not with the emulator's parser, which is the server's own business.)

    >>> _time_ms("2016-06-13T04:00:00+02:00"), _time_ms(1465790400), _time_ms({"$date": 1465790400000})
    (1465783200000, 1465790400000, 1465790400000)
    """
    if isinstance(value, dict) and "$date" in value:
        return _time_ms(value["$date"])
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        return int(round(value * 1000 if abs(value) < 1e11 else value))
    if isinstance(value, str) and value:
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return int(round((t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp() * 1000))
    return None


def fetch_state_times(api: Api, app_id: str, device_id: str, start_ms: int, end_ms: int) -> list[int]:
    """Every state time of a device in [start_ms, end_ms], paging backwards by time."""
    times: list[int] = []
    end = end_ms
    while True:
        batch = api.call("GET", f"/applications/{app_id}/devices/{device_id}/state",
                         f"reading back states of {device_id}",
                         params={"start": start_ms, "end": end, "limit": MAX_PAGE, "sortDirection": "desc"})
        got = _times_ms([item.get("time") for item in batch or [] if isinstance(item, dict)])
        got = got[got != UNPARSED].tolist()
        times.extend(got)
        if len(batch or []) < MAX_PAGE or not got:
            return times
        end = min(got) - 1


def bulk_state_times(api: Api, app_id: str, devices: list[str], sent: Mapping[str, np.ndarray],
                     attribute: str | None) -> dict[str, np.ndarray]:
    """Raw state times of several devices in one time-series query (aggregation NONE)."""
    start = min(int(sent[d][0]) for d in devices)
    end = max(int(sent[d][-1]) for d in devices)
    most = max(len(sent[d]) for d in devices)
    body: dict[str, Any] = {"start": start, "end": end, "aggregation": "NONE", "deviceIds": devices,
                            "order": "asc", "limit": 2 * most + 100}
    if attribute:
        body["attributes"] = [attribute]  # one attribute every state of the class carries: a smaller answer
    answer = api.call("POST", f"/applications/{app_id}/data/time-series-query",
                      f"reading back states of {len(devices)} devices", json=body) or {}
    names: list[str] = []
    counts: list[int] = []
    values: list[Any] = []
    for device, data in (answer.get("devices") or {}).items():
        points = [p.get("time") for p in (data or {}).get("points") or [] if isinstance(p, dict)]
        names.append(device)
        counts.append(len(points))
        values.extend(points)
    flat = _times_ms(values)  # one parse for the whole answer
    return dict(zip(names, np.split(flat, np.cumsum(counts)[:-1]) if names else []))


def _chunks(devices: list[str], sent: Mapping[str, np.ndarray], attribute_of: Mapping[str, str | None]) -> list[tuple[list[str], str | None]]:
    """Groups for bulk queries: one attribute each, <= BULK_DEVICES devices, <= BULK_POINTS states."""
    by_attr: dict[str | None, list[str]] = {}
    for d in devices:
        by_attr.setdefault(attribute_of.get(d), []).append(d)
    out: list[tuple[list[str], str | None]] = []
    for attr, group in by_attr.items():
        chunk: list[str] = []
        points = 0
        for d in group:
            n = len(sent[d])
            if chunk and (len(chunk) >= BULK_DEVICES or points + n > BULK_POINTS):
                out.append((chunk, attr))
                chunk, points = [], 0
            chunk.append(d)
            points += n
        if chunk:
            out.append((chunk, attr))
    return out


class _Reader:
    """Reads the chosen devices: bulk queries, then full reads where the bulk answer does not confirm."""

    def __init__(self, api: Api, app_id: str, sent: Mapping[str, np.ndarray], pool: int,
                 cancelled: Callable[[], bool] = lambda: False) -> None:
        self.api, self.app_id, self.sent, self.pool = api, app_id, sent, pool
        self.cancelled = cancelled  # a second Ctrl-C: no further query is sent
        self.read: dict[str, np.ndarray] = {}
        self.unread: dict[str, str] = {}
        self.bulk_queries = 0
        self.bulk_failed = 0
        self.bulk_failed_in_a_row = 0
        self.bulk_off = False
        self.device_reads = 0
        self.failures_in_a_row = 0
        self.gave_up: str | None = None

    def bulk(self, chunk: tuple[list[str], str | None], depth: int = 0) -> list[str]:
        """Devices of the chunk the bulk answer confirmed are stored in ``read``; the rest are returned."""
        devices, attr = chunk
        if self.bulk_off or self.cancelled():
            return devices
        try:
            self.bulk_queries += 1
            got = bulk_state_times(self.api, self.app_id, devices, self.sent, attr)
        except HarnessError:
            self.bulk_failed += 1
            self.bulk_failed_in_a_row += 1
            if self.bulk_failed_in_a_row >= 4:  # the target does not answer these queries: read devices one by one
                self.bulk_off = True
            elif len(devices) > 1 and depth < 3:  # a smaller query may pass (an answer over the size cap, say)
                half = len(devices) // 2
                return self.bulk((devices[:half], attr), depth + 1) + self.bulk((devices[half:], attr), depth + 1)
            return devices
        self.bulk_failed_in_a_row = 0
        sd, st = flatten(self.sent, devices)
        index = {d: i for i, d in enumerate(devices)}
        answered = [d for d in got if d in index]
        rd, rt = flatten(got, answered)
        rd = np.fromiter((index[d] for d in answered), dtype=np.int64, count=len(answered))[rd] if len(rd) else rd
        lost_dev = missing(sd, st, rd, rt)[0]
        unconfirmed = set(lost_dev.tolist())
        rest = []
        for i, d in enumerate(devices):
            if i in unconfirmed or d not in got:
                rest.append(d)
            else:
                self.read[d] = got[d]
        return rest

    def full(self, device: str) -> None:
        if self.cancelled():
            return
        if self.gave_up:
            self.unread[device] = self.gave_up
            return
        s = self.sent[device]
        try:
            times = fetch_state_times(self.api, self.app_id, device, int(s[0]), int(s[-1]))
        except HarnessError as exc:
            self.failures_in_a_row += 1
            self.unread[device] = _reason(exc, device)
            if self.failures_in_a_row >= GIVE_UP_AFTER:
                self.gave_up = f"{GIVE_UP_AFTER} reads in a row failed; the rest were not tried"
            return
        finally:
            self.device_reads += 1
        self.failures_in_a_row = 0
        self.read[device] = np.asarray(times, dtype=np.int64)

    def run(self, devices: list[str], attribute_of: Mapping[str, str | None], bulk: bool = True) -> None:
        chunks = _chunks(devices, self.sent, attribute_of) if bulk else []
        rest: list[str] = [] if bulk else list(devices)
        with ThreadPoolExecutor(max_workers=self.pool) as ex:
            for left in ex.map(self.bulk, chunks):
                rest.extend(left)
            list(ex.map(self.full, rest))


def _reason(exc: Exception, device: str) -> str:
    """A failure's reason without the device id, so equal reasons group.

    >>> _reason(HarnessError("reading back states of d1 failed: 404 NotFound: Path /x/devices/d1/state"), "d1")
    '404 NotFound: Path /x/devices/D/state'
    """
    text = str(exc).replace(f"reading back states of {device} failed: ", "")
    return text.replace(f"reading back states of {device}: ", "").replace(device, "D")


def read_back(base_url: str, fleet: Fleet, accepted: AcceptedLog | Mapping[str, Iterable[int]],
              sample: str | int = "auto", attributes: Mapping[str, str | None] | None = None,
              pool: int = READ_POOL, bulk: bool = True, log: Callable[[int, float, str, bool], None] | None = None,
              cancelled: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Compare what the target accepted with what it returns; the result goes to integrity.json.

    ``sample``: the scenario's ``integrity.sample`` (``auto``, ``all``, ``none`` or a
    number of devices); ``attributes``: device class -> an attribute every state of the
    class carries (narrows the bulk answers; None reads every attribute); ``log``: the
    harness's own calls are counted there (``harness_calls``); ``cancelled``: when it turns
    true no further query is sent and the result is "not checked".
    """
    from harness.analysis.integrity import integrity_block, not_checked

    times_of: Callable[[str], np.ndarray]
    if isinstance(accepted, AcceptedLog):
        devices = accepted.devices()
        times_of = accepted.times
        accepted_total = accepted.total()
    else:
        devices = sorted(d for d, ts in accepted.items() if len(list(ts)))
        plain = {d: np.sort(np.asarray(list(accepted[d]), dtype=np.int64)) for d in devices}
        times_of = plain.__getitem__
        accepted_total = sum(len(v) for v in plain.values())
    if sample == "none":
        return not_checked("integrity.sample is none: no read-back")
    if not devices:
        return not_checked("no accepted states were logged")
    coverage, chosen, why = choose_devices(sample, base_url, devices, fleet.run_tag)
    sent = {d: times_of(d) for d in chosen}
    class_of = {d.id: d.class_name for d in fleet.devices}
    attribute_of = {d: (attributes or {}).get(class_of.get(d, "")) for d in chosen}
    if cancelled():
        return not_checked("read-back skipped (interrupted again)")
    api = Api(base_url, token=str(fleet.user_token), log=log)
    t0 = time.perf_counter()
    reader = _Reader(api, fleet.application_id, sent, pool, cancelled)
    try:
        reader.run(chosen, attribute_of, bulk)
    finally:
        api.close()
    if cancelled():
        return not_checked(f"read-back skipped (interrupted again) after {reader.bulk_queries + reader.device_reads} "
                           "queries")
    seconds = time.perf_counter() - t0
    reads = {"why": why, "sample": sample, "bulk_queries": reader.bulk_queries, "bulk_failed": reader.bulk_failed,
             "device_reads": reader.device_reads, "seconds": round(seconds, 3)}
    return integrity_block(sent, reader.read, coverage=coverage, accepted_total=accepted_total,
                           devices_total=len(devices), unread_reasons=reader.unread, extra={"reads": reads})
