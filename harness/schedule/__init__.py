"""Pure pacing: open-loop timelines (when a device should send) and the throttle ledger
(when it may). No clock, no sleeping, no I/O: callers pass times in and get times out.

>>> from harness.schedule import Ledger, DeviceTimeline, FleetTimeline, spread_phases
"""

from harness.schedule.ledger import EPSILON, MODES, NO_TICKET, Ledger, Mode, Rule, Ticket, plan_rule
from harness.schedule.mqtt import MQTT_OPERATIONS, backoff_delay, full_connection_seconds
from harness.schedule.timeline import (
    Action, DeviceTimeline, Due, FleetTimeline, class_timelines, device_streams, fleet_streams, spread_phases, stable_seed, unit,
)

__all__ = [
    "EPSILON", "MODES", "NO_TICKET", "Action", "DeviceTimeline", "Due", "FleetTimeline", "Ledger", "Mode", "Rule", "Ticket",
    "MQTT_OPERATIONS", "backoff_delay", "full_connection_seconds",
    "class_timelines", "device_streams", "fleet_streams", "plan_rule", "spread_phases", "stable_seed", "unit",
]
