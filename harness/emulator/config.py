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
    password: str = field(default=DEFAULT_PASSWORD, repr=False)
    #: more accounts besides the login, (email, password) each (users.py); never in repr
    users: tuple[tuple[str, str], ...] = field(default=(), repr=False)
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
    # connection hygiene (guard.py, docs/LIMITS.md "Connections"): enforced by the serving
    # protocol, so only the CLI and start_in_thread apply them, never create_app alone
    idle_timeout_s: float = 5.0  # no byte of a first request for this long: closed
    keepalive_timeout_s: float = 60.0  # answered and then no byte of the next request for this long: closed
    header_timeout_s: float = 10.0  # request line and headers must arrive within this
    body_timeout_s: float = 30.0  # the body must arrive within this after its headers
    max_header_bytes: int = 64 * 1024  # request line + headers; over it 431
    max_body_in_flight_bytes: int = 64 * MiB  # request bodies held at once, all connections; over it 503
    max_connections: int = 0  # 0 = from the open-file limit (guard.default_max_connections)

    @property
    def effective_job_seconds(self) -> float:
        return self.job_seconds if self.job_seconds is not None else self.limits.job_seconds
