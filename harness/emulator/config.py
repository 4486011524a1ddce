"""Emulator settings in one object, resolved once by the CLI (or a test) and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.limits import LimitsTable

DEFAULT_EMAIL = "admin@emulator.local"
DEFAULT_PASSWORD = "emulator-password"
MiB = 1024 * 1024


@dataclass
class EmulatorConfig:
    """What the app needs to run; every [I] choice of docs/LIMITS.md that is not a limit lives here.

    ``job_seconds`` overrides the limits table's simulated job duration when set.
    ``test_drop_fraction`` and ``test_delay_ms`` are fault injection for harness tests only.
    ``faults`` (a ``faults.FaultPlan``), ``admin`` and ``max_in_flight`` configure the serving
    front (faults_admin.front), never the app itself: see docs/RELIABILITY.md.
    """

    email: str = DEFAULT_EMAIL
    password: str = DEFAULT_PASSWORD
    db_path: str | None = None  # None: scratch (scratch_db) or in memory (in-process tests)
    scratch_db: bool = False  # without db_path: an unlinked temporary file, freed when the process ends
    limits: LimitsTable = field(default_factory=LimitsTable)
    job_seconds: float | None = None
    max_body_bytes: int = 10 * MiB
    max_per_page: int = 1000
    default_token_ttl_s: float = 0.0  # 0 = user/device tokens never expire unless tokenTTL asks
    test_drop_fraction: float = 0.0
    test_delay_ms: int = 0
    faults: Any = None  # faults.FaultPlan | None, from --faults FILE
    admin: bool = False  # serve /_emulator/faults to loopback clients
    max_in_flight: int = 0  # beyond N concurrent requests answer 503 (0 = no cap)

    @property
    def effective_job_seconds(self) -> float:
        return self.job_seconds if self.job_seconds is not None else self.limits.job_seconds
