"""``locust -f locustfile.py`` opens the Locust web UI with the default scenario on the embedded emulator.

It takes the same options as ``losant-load run`` (--scenario, --target-url, ...: one table,
``harness/options.py``), and the web UI's form shows the ones meant for it. ``losant-load run
--help`` lists them: Locust answers ``--help`` before it imports a locustfile, so no locustfile's
options appear in ``locust -f locustfile.py --help`` (locustio/locust#2917). Everything lives in
the ``harness`` package.
"""

from harness.locust_entry import Device, Fleet, Gateway, Operator  # noqa: F401
