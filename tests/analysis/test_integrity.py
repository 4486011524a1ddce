"""Lost writes: accepted state times missing from the read-back, with the coverage stated.

Pure tests of the block (true counts, coverage, the loss-rate bound), of the choice of
devices and of the compact accepted log, then the read-back itself against a real
emulator on loopback: lost writes made on purpose (a device's data removed, an accepted
state that was never sent) and a device whose read fails.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from harness.analysis.integrity import (
    LostWrite,
    find_lost_writes,
    integrity_block,
    loss_rate_ruled_out_95,
    statement,
)
from harness.readback import DEFAULT_LIVE_SAMPLE, AcceptedLog, choose_devices, read_back, reads_are_free


# -- the block -------------------------------------------------------------------------------
def test_lost_writes_are_listed_per_device_and_time() -> None:
    sent = {"b": [3000, 1000, 2000], "a": [5, 6]}
    read = {"a": [5, 6, 7], "b": [1000]}
    assert find_lost_writes(sent, read) == [LostWrite("b", 2000), LostWrite("b", 3000)]
    block = integrity_block(sent, read)
    assert block["lost"] == [{"device": "b", "time": 2000}, {"device": "b", "time": 3000}]
    assert block["found_not_accepted"] == 0  # a's 7 lies after a's last accepted time: not counted


def test_found_not_accepted_counts_only_inside_the_accepted_range() -> None:
    block = integrity_block({"a": [10, 20, 30]}, {"a": [5, 10, 15, 20, 30, 35]})
    assert block["found_not_accepted"] == 1 and block["lost_writes"] == 0


def test_duplicates_are_a_multiset() -> None:
    assert find_lost_writes({"a": [1, 1, 2]}, {"a": [1, 2]}) == [LostWrite("a", 1)]
    assert integrity_block({"a": [1, 1, 2]}, {"a": [1, 2]})["lost_writes"] == 1


def test_unread_device_is_not_lost_but_empty_read_is() -> None:
    sent = {"a": [1, 2], "b": [3]}
    assert find_lost_writes(sent, {"b": []}) == [LostWrite("b", 3)]
    block = integrity_block(sent, {"b": []}, unread_reasons={"a": "404 not found"})
    assert block["checked"] and block["unread_devices"] == ["a"] and block["devices_unread"] == 1
    assert (block["devices_checked"], block["accepted_checked"], block["read_back"], block["lost_writes"]) == (1, 1, 0, 1)
    assert (block["devices_total"], block["accepted_total"]) == (2, 3)
    assert block["coverage"] == "partial" and block["unread_reasons"] == {"404 not found": 1}
    assert block["lost"] == [{"device": "b", "time": 3}]
    assert "1 of 2 devices" in block["statement"] and "404 not found" in block["statement"]


def test_not_checked_says_why() -> None:
    block = integrity_block({"a": [1]}, None)
    assert block["checked"] is False and block["reason"] and block["statement"].startswith("integrity not checked")
    assert find_lost_writes({}, {}) == []


def test_counts_are_true_beyond_the_listed_lost_writes() -> None:
    rng = np.random.default_rng(7)
    sent = {f"d{i:03d}": sorted(rng.choice(10**6, 40, replace=False).tolist()) for i in range(30)}
    read = {d: ts[: 40 - (i % 13)] for i, (d, ts) in enumerate(sorted(sent.items()))}
    expected = find_lost_writes(sent, read)
    assert len(expected) > 100
    block = integrity_block(sent, read)
    assert block["lost_writes"] == len(expected)
    assert block["lost"] == [{"device": lw.device, "time": lw.time} for lw in expected[:100]]
    assert block["accepted_checked"] == block["accepted_total"] == 1200
    assert block["read_back"] == 1200 - len(expected)
    assert block["coverage"] == "all" and block["devices_checked"] == block["devices_total"] == 30
    assert block["loss_rate_ruled_out_95"] is None  # everything was read: the loss is measured, not bounded
    assert block["statement"] == (f"every accepted state of all 30 devices read back (1,200 states): "
                                  f"{len(expected)} lost ({len(expected) / 12:.3g}%)")


def test_vectorised_comparison_matches_the_reference_on_random_cases() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        sent, read = {}, {}
        for i in range(int(rng.integers(1, 8))):
            s = rng.integers(0, 50, int(rng.integers(0, 30))).tolist()
            r = [t for t in s if rng.random() > 0.2] + rng.integers(0, 60, int(rng.integers(0, 5))).tolist()
            sent[f"d{i}"] = s
            if rng.random() > 0.1:
                read[f"d{i}"] = r
        block = integrity_block(sent, read, max_listed=10**6)
        ref = find_lost_writes({d: s for d, s in sent.items() if s}, read)
        assert block["lost"] == [{"device": lw.device, "time": lw.time} for lw in ref]


def test_times_too_far_apart_for_packed_keys_take_the_exact_path() -> None:
    sent, read = {"a": [0, 2**33, 5, 5], "b": [7]}, {"a": [0, 5, 9], "b": []}
    block = integrity_block(sent, read)
    assert block["lost"] == [{"device": "a", "time": 5}, {"device": "a", "time": 2**33}, {"device": "b", "time": 7}]
    assert block["found_not_accepted"] == 1  # a's 9 lies inside a's accepted range [0, 2**33]


def test_a_sample_states_what_it_rules_out() -> None:
    sent = {f"d{i}": [1000 * i + k for k in range(7)] for i in range(7)}  # 49 states
    block = integrity_block(sent, sent, coverage="sample", accepted_total=840, devices_total=218)
    assert block["coverage"] == "sample"
    assert (block["devices_checked"], block["devices_total"], block["accepted_checked"], block["accepted_total"]) == \
        (7, 218, 49, 840)
    bound = block["loss_rate_ruled_out_95"]
    assert bound == pytest.approx(1 - 0.05 ** (1 / 49)) and 0.059 < bound < 0.06
    assert block["statement"] == ("a random sample of 7 of 218 devices read back (49 of 840 accepted states): none "
                                  "lost; a random loss of 5.93% of writes or more would have shown a lost write "
                                  "with 95% probability")


def test_loss_rate_bound_is_the_clopper_pearson_upper_bound() -> None:
    assert loss_rate_ruled_out_95(0, 0) is None
    assert loss_rate_ruled_out_95(0, 299) == pytest.approx(0.01, abs=2e-4)  # the "rule of three": 3/n
    for lost, n in ((1, 50), (5, 400), (30, 1000)):
        p = loss_rate_ruled_out_95(lost, n)
        cdf = sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(lost + 1))
        assert cdf == pytest.approx(0.05, abs=1e-6)
        assert p > lost / n
    assert loss_rate_ruled_out_95(10, 10) == 1.0
    # with 0 lost of n states, a true loss rate at the bound is missed exactly 5% of the time
    n = 49
    assert (1 - loss_rate_ruled_out_95(0, n)) ** n == pytest.approx(0.05)


def test_statement_for_a_sample_with_losses() -> None:
    block = integrity_block({"a": [1, 2, 3, 4], "b": [5, 6, 7, 8]}, {"a": [1, 2, 3, 4], "b": [5, 6]},
                            coverage="sample", accepted_total=100, devices_total=20)
    assert block["lost_writes"] == 2
    assert statement(block).startswith("a random sample of 2 of 20 devices read back (8 of 100 accepted states): "
                                       "2 lost (25% of the sample); a loss rate above ")


# -- which devices -----------------------------------------------------------------------------
def test_reads_are_free_on_loopback_only() -> None:
    assert reads_are_free(None) and reads_are_free("http://127.0.0.1:8080") and reads_are_free("http://localhost")
    assert reads_are_free("http://[::1]:9000/")
    assert not reads_are_free("https://api.losant.com") and not reads_are_free("http://10.0.0.5:80")


def test_sampling_choice() -> None:
    devices = [f"dev{i:05d}" for i in range(1000)]
    assert choose_devices("auto", "http://127.0.0.1:1", devices)[:2] == ("all", devices)
    assert choose_devices("all", "https://api.losant.com", devices)[:2] == ("all", devices)
    cov, chosen, why = choose_devices("auto", "https://api.losant.com", devices, "tag")
    assert cov == "sample" and len(chosen) == DEFAULT_LIVE_SAMPLE == len(set(chosen)) and set(chosen) <= set(devices)
    assert chosen == choose_devices("auto", "https://api.losant.com", devices, "tag")[1], "reproducible"
    assert chosen != choose_devices("auto", "https://api.losant.com", devices, "other")[1]
    assert "integrity.sample" in why
    cov, chosen, _ = choose_devices(25, "http://127.0.0.1:1", devices, "tag")
    assert cov == "sample" and len(chosen) == 25  # an explicit number is honoured even where reads are free
    assert choose_devices(5000, "https://api.losant.com", devices)[:2] == ("all", devices)


# -- the accepted log --------------------------------------------------------------------------
def test_accepted_log_is_compact_and_exact() -> None:
    base = 1_780_000_000_000
    log = AcceptedLog(base)
    log.add("b", [base + 5])
    log.add("a", [base + 3, base + 1])
    log.add("a", [base - 2])  # a batch's earliest state may precede the origin
    assert log.devices() == ["a", "b"] and log.total() == 4
    assert log.times("a").tolist() == [base - 2, base + 1, base + 3]
    assert log.by_device["a"].itemsize == 4
    far = base + 30 * 86_400_000  # beyond 24 days: that device's log widens, nothing is lost
    log.add("a", [base + 7, far])
    assert log.times("a").tolist() == [base - 2, base + 1, base + 3, base + 7, far]
    assert log.times("none").tolist() == []


def test_accepted_log_travels_from_workers_to_the_master() -> None:
    worker, master = AcceptedLog(1000), AcceptedLog(1000)
    worker.add("d", [1001, 1002])
    master.merge(worker.drain())
    worker.add("d", [1003])
    worker.add("e", [999])
    master.merge(worker.drain())
    assert worker.drain() == {}
    assert master.as_dict() == {"d": [1001, 1002, 1003], "e": [999]}


# -- the scenario field ---------------------------------------------------------------------------
def _scenario(**extra: Any) -> dict[str, Any]:
    return {"name": "s", "fleet": {"classes": [{"name": "c", "count": 1, "report_interval": "1s"}]}, **extra}


def test_scenario_field_is_validated() -> None:
    from harness.scenario import ScenarioError, parse_scenario

    assert parse_scenario(_scenario()).integrity.sample == "auto"
    for value in ("all", "none", 25):
        sc = parse_scenario(_scenario(integrity={"sample": value}))
        assert sc.integrity.sample == value
        assert parse_scenario(sc.to_dict()) == sc
    for bad in (0, -3, "some", 2.5, True):
        with pytest.raises(ScenarioError) as exc:
            parse_scenario(_scenario(integrity={"sample": bad}), "f.yaml")
        assert "f.yaml: integrity.sample:" in str(exc.value) and "auto, all, none" in str(exc.value)
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(_scenario(integrity={"smaple": 3}), "f.yaml")
    assert "integrity.smaple" in str(exc.value) and "did you mean 'sample'" in str(exc.value)


# -- the read-back against a real emulator on loopback --------------------------------------------------
@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    from harness.emulator.process import start_in_thread

    handle = start_in_thread(email="integrity@example.com", password="integrity-password-1")
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def fleet(emulator: Any) -> Any:
    from harness.fleet import Secret, plan_devices
    from harness.provision import Login, provision
    from harness.scenario import parse_scenario

    sc = parse_scenario({"name": "integrity", "fleet": {"classes": [
        {"name": "m", "count": 12, "report_interval": "1s", "attributes": {
            "v": {"type": "number", "min": 0, "max": 1}, "w": {"type": "boolean"}}}]}})
    return provision(emulator.url, Login(email="integrity@example.com", password=Secret("integrity-password-1")),
                     "integrity", "t", plan_devices(sc))


def _send(api: Any, app_id: str, device: str, times: list[int]) -> None:
    for i in range(0, len(times), 200):
        api.call("POST", f"/applications/{app_id}/devices/{device}/state", "sending",
                 json=[{"time": t, "data": {"v": 0.5, "w": True}} for t in times[i:i + 200]])


@pytest.fixture(scope="module")
def written(emulator: Any, fleet: Any) -> dict[str, Any]:
    """States sent to every device, then damaged on purpose; returns what the harness "accepted"."""
    from harness.provision import Api

    api = Api(emulator.url, token=str(fleet.user_token))
    now = int(time.time() * 1000) - 3_600_000
    log = AcceptedLog(now)
    ids = [d.id for d in fleet.devices]
    for i, d in enumerate(ids):
        times = [now + 1000 * k + i for k in range(20 + i)]
        _send(api, fleet.application_id, d, times)
        log.add(d, times)
    wiped, faked, extra = ids[0], ids[1], ids[2]
    _send(api, fleet.application_id, wiped, [now + 500_000 + k for k in range(150)])
    log.add(wiped, [now + 500_000 + k for k in range(150)])
    store = emulator.app.store  # the emulator is idle: remove them behind its back, as a lossy target would
    store.db.execute("DELETE FROM states WHERE device_n = ? AND time >= ?", (store.device_num(wiped), now + 500_000))
    log.add(faked, [now + 3, now + 7])  # accepted, says the log; never sent
    _send(api, fleet.application_id, extra, [now + 1500])  # stored, never "accepted"
    ghost = "0123456789abcdef01234567"  # accepted, says the log, for a device the target does not know
    log.add(ghost, [now + 1, now + 2])
    api.close()
    return {"log": log, "wiped": wiped, "faked": faked, "extra": extra, "ghost": ghost,
            "lost": 150 + 2, "total": log.total()}


def test_bulk_read_back_finds_every_lost_write_and_an_unread_device(fleet: Any, written: dict[str, Any]) -> None:
    block = read_back(fleet.base_url, fleet, written["log"], "auto", {"m": "v"})
    assert block["checked"] and block["coverage"] == "partial", block["statement"]
    assert block["lost_writes"] == written["lost"] and len(block["lost"]) == 100
    assert {x["device"] for x in block["lost"]} <= {written["wiped"], written["faked"]}
    assert block["lost"] == sorted(block["lost"], key=lambda x: (x["device"], x["time"]))  # the first 100
    assert (block["devices_total"], block["devices_checked"], block["devices_unread"]) == (13, 12, 1)
    assert block["unread_devices"] == [written["ghost"]]
    assert block["accepted_total"] == written["total"] and block["accepted_checked"] == written["total"] - 2
    assert block["read_back"] == block["accepted_checked"] - written["lost"]
    assert block["found_not_accepted"] == 1
    reads = block["reads"]
    assert reads["bulk_queries"] == 2, reads  # the 12 devices of class m in one query; the unknown one alone
    assert reads["device_reads"] == 3, reads  # only where the bulk answer did not confirm: wiped, faked, ghost
    assert "12 of 13 devices" in block["statement"] and f"{written['lost']} lost" in block["statement"]


def test_bulk_and_device_by_device_reads_agree(fleet: Any, written: dict[str, Any], monkeypatch: Any) -> None:
    import harness.readback as rb

    one_by_one = read_back(fleet.base_url, fleet, written["log"], "all", {"m": "v"}, bulk=False)
    monkeypatch.setattr(rb, "BULK_POINTS", 60)  # many small queries (about 60 states each)
    chunked = read_back(fleet.base_url, fleet, written["log"], "all", {"m": None})
    for block in (one_by_one, chunked):
        assert block["lost_writes"] == written["lost"] and block["devices_unread"] == 1
    assert one_by_one["lost"] == chunked["lost"]
    assert one_by_one["reads"]["bulk_queries"] == 0 and one_by_one["reads"]["device_reads"] == 13
    assert chunked["reads"]["bulk_queries"] >= 6 and chunked["reads"]["device_reads"] == 3


def test_a_sample_reads_only_the_sampled_devices(fleet: Any, written: dict[str, Any]) -> None:
    block = read_back(fleet.base_url, fleet, written["log"], 4, {"m": "v"})
    assert block["coverage"] in ("sample",) and block["devices_checked"] + block["devices_unread"] == 4
    assert block["devices_total"] == 13 and block["accepted_total"] == written["total"]
    assert block["accepted_checked"] < written["total"]
    assert block["statement"].startswith("a random sample of ")


def test_none_and_nothing_accepted_are_not_checked(fleet: Any) -> None:
    assert read_back(fleet.base_url, fleet, AcceptedLog(0), "auto")["statement"] == \
        "integrity not checked: no accepted states were logged"
    log = AcceptedLog(0)
    log.add("x", [1])
    assert read_back(fleet.base_url, fleet, log, "none")["checked"] is False


def test_an_unreachable_target_leaves_devices_unread_not_lost(fleet: Any, written: dict[str, Any], monkeypatch: Any) -> None:
    import harness.readback as rb
    from harness.errors import HarnessError

    def refuse(*_: Any, **__: Any) -> Any:
        raise HarnessError("reading back states of X: cannot reach the target (ConnectError)")

    monkeypatch.setattr(rb.Api, "call", refuse)
    block = read_back(fleet.base_url, fleet, written["log"], "all", {"m": "v"})
    assert block["checked"] and block["lost_writes"] == 0 and block["devices_checked"] == 0
    assert block["devices_unread"] == 13 and block["coverage"] == "partial"
    assert block["reads"]["device_reads"] <= rb.GIVE_UP_AFTER + rb.READ_POOL  # gave up rather than retry every device
    assert "cannot reach the target (ConnectError)" in block["statement"]
