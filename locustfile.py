"""``locust -f locustfile.py`` opens the Locust web UI with the default scenario on the embedded emulator.

The harness's options (--scenario, --target-url, ...) appear in ``locust --help`` and
in the web UI's form. Everything lives in the ``harness`` package.
"""

from harness.locust_entry import Device, Fleet, Gateway, Operator  # noqa: F401
