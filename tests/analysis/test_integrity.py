"""Lost writes: accepted state times missing from the read-back."""

from __future__ import annotations

from harness.analysis.integrity import LostWrite, find_lost_writes, integrity_block


def test_lost_writes_are_listed_per_device_and_time() -> None:
    sent = {"b": [3000, 1000, 2000], "a": [5, 6]}
    read = {"a": [5, 6, 7], "b": [1000]}
    assert find_lost_writes(sent, read) == [LostWrite("b", 2000), LostWrite("b", 3000)]


def test_duplicates_are_a_multiset() -> None:
    assert find_lost_writes({"a": [1, 1, 2]}, {"a": [1, 2]}) == [LostWrite("a", 1)]


def test_unread_device_is_not_lost_but_empty_read_is() -> None:
    sent = {"a": [1, 2], "b": [3]}
    assert find_lost_writes(sent, {"b": []}) == [LostWrite("b", 3)]
    block = integrity_block(sent, {"b": []})
    assert block["checked"] and block["unread_devices"] == ["a"]
    assert (block["devices"], block["accepted"], block["read_back"], block["lost_writes"]) == (1, 1, 0, 1)
    assert block["lost"] == [{"device": "b", "time": 3}]


def test_not_checked() -> None:
    assert integrity_block({"a": [1]}, None)["checked"] is False
    assert find_lost_writes({}, {}) == []
