"""The Locust user classes the harness runs; ``plugin`` sizes them from the scenario.

Their request names in Locust's statistics are operations (``device.sendState``),
never URLs with ids in them.
"""

from harness.users.devices import DeviceUser as _DeviceUser
from harness.users.devices import FleetUser as _FleetUser
from harness.users.devices import GatewayUser as _GatewayUser
from harness.users.events import EventsUser as _EventsUser
from harness.users.mqtt import MqttFleetUser as _MqttFleetUser
from harness.users.operator import OperatorUser as _OperatorUser


class Device(_DeviceUser):
    """A standalone device: authenticates as itself, reports state, polls commands."""


class Gateway(_GatewayUser):
    """A gateway reporting for itself and its peripherals, each paced per peripheral."""


class Fleet(_FleetUser):
    """Many devices driven over one shared connection pool (fleet mode)."""


class Mqtt(_MqttFleetUser):
    """MQTT devices: a broker connection each, states published, commands pushed (a chunk per user)."""


class Operator(_OperatorUser):
    """A person or backend: queries, commands and events with think time."""


class Events(_EventsUser):
    """The scenario's timed harness actions (``events``: a reconnect storm at a stated time)."""


CLASSES = {"standalone": Device, "gateway": Gateway, "multiplexed": Fleet, "mqtt": Mqtt, "operator": Operator,
           "events": Events}
for _cls in CLASSES.values():
    _cls.fixed_count = 0
    _cls.weight = 1  # Locust refuses classes of weight 0; the plugin pins fixed counts at init
