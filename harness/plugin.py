"""Locust wiring: the harness's options on Locust's parser, and its life cycle on Locust's ``init``.

``locust -f locustfile.py`` (web UI) and ``losant-load run`` (which hands over to Locust's own
main with ``harness/locust_entry.py``) both import this module, so a run behaves the same
either way. The options come from ``harness.options`` (one table for both), the life cycle is
``harness.lifecycle.Lifecycle``, made once per Locust environment at ``init`` and kept on it.
"""

from __future__ import annotations

from typing import Any

from locust import events

from harness.lifecycle import Lifecycle
from harness.options import add_to_locust


def add_arguments(parser: Any, **_: Any) -> None:
    add_to_locust(parser)  # Locust's own parser: only it knows include_in_web_ui


def on_init(environment: Any, runner: Any = None, **_: Any) -> None:
    Lifecycle(environment).init(runner)


events.init_command_line_parser.add_listener(add_arguments)
events.init.add_listener(on_init)
