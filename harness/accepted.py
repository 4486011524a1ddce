"""The log of accepted state writes, kept during the run for the integrity read-back.

It lives beside the recorder (users write it on every accepted Send State) and not in
``harness.readback``, which runs after the run and imports the analysis: the users'
stage must import only earlier stages.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping

import numpy as np


class AcceptedLog:
    """Accepted state times per device, compactly: ``array('i')`` of ms after ``base_ms``.

    4 bytes a state plus ~80 bytes a device that sent one (a 100,000-device fleet
    reporting once a minute for an hour: 24 MB). A time that does not fit 32 bits
    (a run longer than 24 days) turns that device's array into ``array('q')``.
    """

    __slots__ = ("base", "by_device")

    def __init__(self, base_ms: int) -> None:
        self.base = int(base_ms)
        self.by_device: dict[str, array] = {}

    def add(self, device_id: str, times_ms: Iterable[int]) -> None:
        log = self.by_device.get(device_id)
        if log is None:
            log = self.by_device[device_id] = array("i")
        base = self.base
        for t in times_ms:
            try:
                log.append(t - base)
            except OverflowError:  # more than 24 days from the origin: this device's log goes 64-bit
                log = self.by_device[device_id] = array("q", log)
                log.append(t - base)

    def times(self, device_id: str) -> np.ndarray:
        """A device's accepted state times (epoch ms), sorted."""
        log = self.by_device.get(device_id)
        if log is None:
            return np.zeros(0, dtype=np.int64)
        return np.sort(np.frombuffer(log, dtype=np.int32 if log.typecode == "i" else np.int64).astype(np.int64)
                       + self.base)

    def devices(self) -> list[str]:
        """Devices with at least one accepted state, sorted."""
        return sorted(d for d, log in self.by_device.items() if len(log))

    def total(self) -> int:
        return sum(len(log) for log in self.by_device.values())

    def drain(self) -> dict[str, list[int]]:
        """What a worker ships to the master: every device's times (epoch ms) since the last drain."""
        base = self.base
        out = {d: [t + base for t in log] for d, log in self.by_device.items() if len(log)}
        self.by_device = {}
        return out

    def merge(self, shipped: Mapping[str, Iterable[int]]) -> None:
        """The master's side of ``drain``."""
        for device, times in shipped.items():
            self.add(device, times)

    def as_dict(self) -> dict[str, list[int]]:
        return {d: self.times(d).tolist() for d in self.devices()}
