"""Scenario files: parse and validate YAML into frozen dataclasses (see docs/SCENARIOS.md).

>>> from harness.scenario import load_scenario
>>> s = load_scenario("scenarios/smoke.yaml")      # doctest: +SKIP
>>> s.total_devices, s.fleet.classes[0].report_interval   # doctest: +SKIP
"""

from harness.scenario.generators import (
    AttributeGenerator, StateGenerator, device_rng, make_generator, make_state_generator,
)
from harness.scenario.model import (
    ACTION_OBJECTS, ACTION_OPERATIONS, CREDENTIAL_ENV, DEVICE_OPERATIONS, DEVICES_PER_FLEET_USER, DEVICES_PER_MQTT_USER, HARNESS_OPERATIONS, AttributeSpec, DeviceClass, FleetSpec, OperatorAction, OperatorsSpec,
    PacingSpec, PlannedDevice, PlatformObjects, Scenario, Target, check_distributable, format_duration, mqtt_groups_per_user,
    user_counts,
)
from harness.scenario.parse import ScenarioError, load_scenario, parse_duration, parse_scenario

__all__ = [
    "ACTION_OBJECTS", "ACTION_OPERATIONS", "CREDENTIAL_ENV", "DEVICE_OPERATIONS", "DEVICES_PER_FLEET_USER", "DEVICES_PER_MQTT_USER", "HARNESS_OPERATIONS", "AttributeGenerator", "AttributeSpec", "DeviceClass", "FleetSpec",
    "OperatorAction", "OperatorsSpec", "PacingSpec", "PlannedDevice", "PlatformObjects", "Scenario", "ScenarioError",
    "StateGenerator", "Target", "check_distributable", "device_rng", "format_duration", "load_scenario", "make_generator",
    "make_state_generator", "mqtt_groups_per_user", "parse_duration", "parse_scenario", "user_counts",
]
