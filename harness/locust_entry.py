"""The locustfile inside the package, so ``losant-load run`` works from any folder.

It registers the harness's options and life cycle, and exposes the user classes (Locust wants
at least one in a locustfile; init replaces them with the ones the scenario sizes,
``harness.prepare.sized_classes``, made from every class in ``harness.users.CLASSES``).
"""

from harness import plugin  # noqa: F401  (registers the options and the run's life cycle)
from harness.users import Device, Fleet, Gateway, Operator  # noqa: F401
