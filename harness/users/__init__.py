"""The Locust user classes the harness runs; ``plugin`` sizes them from the scenario.

Their request names in Locust's statistics are operations (``device.sendState``),
never URLs with ids in them.
"""

from harness.users.devices import DeviceUser as _DeviceUser
from harness.users.devices import FleetUser as _FleetUser
from harness.users.devices import GatewayUser as _GatewayUser
from harness.users.operator import OperatorUser as _OperatorUser


class Device(_DeviceUser):
    """A standalone device: authenticates as itself, reports state, polls commands."""


class Gateway(_GatewayUser):
    """A gateway reporting for itself and its peripherals, each paced per peripheral."""


class Fleet(_FleetUser):
    """Many devices driven over one shared connection pool (fleet mode)."""


class Operator(_OperatorUser):
    """A person or backend: queries, commands and events with think time."""


CLASSES = {"standalone": Device, "gateway": Gateway, "multiplexed": Fleet, "operator": Operator}
for _cls in CLASSES.values():
    _cls.fixed_count = 0
    _cls.weight = 1  # Locust refuses classes of weight 0; the plugin pins fixed counts at init
