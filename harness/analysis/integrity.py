"""Lost writes: states the target accepted but does not return when read back.

Pure comparison; the harness logs the state times (ms) of accepted Send State calls
per sampled device (a batch call carries several) and reads the devices' state
history back after the run (``harness/readback.py``).

Times are compared as multisets: if the same time was accepted twice and read back
once, one write is lost. A device missing from ``read_back`` was not read (its
read failed or was skipped) and is not counted as lost; an empty list means it was
read and nothing came back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class LostWrite:
    device: str
    time: int  # state time, epoch milliseconds


def find_lost_writes(sent: dict[str, list[int]], read_back: dict[str, list[int]]) -> list[LostWrite]:
    """Every accepted state time the read-back lacks, sorted by device then time.

    >>> find_lost_writes({"d1": [1000, 2000, 3000]}, {"d1": [1000, 3000]})
    [LostWrite(device='d1', time=2000)]
    """
    lost: list[LostWrite] = []
    for device in sorted(sent):
        if device not in read_back:
            continue
        missing = Counter(sent[device]) - Counter(read_back[device])
        lost.extend(LostWrite(device, t) for t in sorted(missing.elements()))
    return lost


def integrity_block(sent: dict[str, list[int]], read_back: dict[str, list[int]] | None,
                    lost: list[LostWrite] | None = None, max_listed: int = 100) -> dict[str, Any]:
    """The summary's ``integrity`` section; ``read_back=None`` means not checked."""
    if read_back is None:
        return {"checked": False, "reason": "no read-back was done"}
    lost = find_lost_writes(sent, read_back) if lost is None else lost
    read = [d for d in sent if d in read_back]
    return {
        "checked": True,
        "devices": len(read),
        "unread_devices": sorted(d for d in sent if d not in read_back),
        "accepted": sum(len(sent[d]) for d in read),
        "read_back": sum(len(read_back[d]) for d in read),
        "lost_writes": len(lost),
        "lost": [{"device": lw.device, "time": lw.time} for lw in lost[:max_listed]],
    }
