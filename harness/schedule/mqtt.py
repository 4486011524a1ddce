"""MQTT pacing: which broker rows a harness MQTT operation draws on, reconnect back-off, connection plan.

Pure like the rest of ``harness.schedule``: times in, times out. The broker counts
messages and connections, not REST calls (``LimitsTable.mqtt``); the ledger paces the
harness's two MQTT sends by those rows, keyed as the broker keys them:

- ``mqtt.connect`` (one CONNECT) by ``mqtt.newConnections`` per application: charged
  from the CONNECT until its CONNACK (or failure), as a REST call is until its answer,
  so the broker's decision instant lies inside the charged interval;
- ``mqtt.publishState`` (one PUBLISH of a state) by ``mqtt.publishIn`` per
  (device, topic) and ``mqtt.connectionMessages`` per connection, charged until PUBACK.

Commands the broker pushes to a device also count towards ``mqtt.publishOut`` and the
connection's messages; the harness cannot pace those (the operator's REST calls are paced
by their own rows), so a scenario must keep command rates well under them.
"""

from __future__ import annotations

import math

#: Harness MQTT operation -> the broker rows (``LimitsTable.mqtt`` names) that count it.
MQTT_OPERATIONS: dict[str, tuple[str, ...]] = {
    "mqtt.connect": ("mqtt.newConnections",),
    "mqtt.publishState": ("mqtt.publishIn", "mqtt.connectionMessages"),
}
#: Reconnect back-off: the first delay, its growth per failed attempt, and its cap (seconds).
BACKOFF_BASE = 1.0
BACKOFF_FACTOR = 2.0
BACKOFF_CAP = 60.0


def backoff_delay(attempt: int, u: float, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP,
                  factor: float = BACKOFF_FACTOR) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (1 = the first after a loss).

    Exponential with "equal jitter": half the capped step is fixed, half drawn from ``u``
    (uniform in [0, 1)), so a fleet that lost its connections at once spreads its retries
    over half a step while no device retries sooner than half the step (the broker's ban
    after a rate disconnect is 30 s: early retries would only be refused).

    >>> [backoff_delay(n, 0.0) for n in (1, 2, 3, 8)]
    [0.5, 1.0, 2.0, 30.0]
    >>> backoff_delay(30, 0.999999) <= BACKOFF_CAP
    True
    """
    if attempt < 1:
        raise ValueError(f"attempt {attempt!r}: expected >= 1")
    if not 0.0 <= u < 1.0:
        raise ValueError(f"u {u!r}: expected 0 <= u < 1")
    step = min(cap, base * factor ** min(attempt - 1, 64))
    return step / 2.0 + step / 2.0 * u


def full_connection_seconds(devices: int, count: int, window: float) -> float:
    """The least time ``devices`` new connections take within ``count`` per ``window`` s
    (the first ``count`` at once, each further ``count`` one window later).

    >>> full_connection_seconds(10_000, 300, 15.0), full_connection_seconds(300, 300, 15.0)
    (495.0, 0.0)
    """
    if devices <= 0:
        return 0.0
    return (math.ceil(devices / count) - 1) * window
