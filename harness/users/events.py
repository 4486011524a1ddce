"""The scenario's timed harness actions (``events``): one user waits for each and performs it.

Why a user of its own rather than an operator's weighted action: a reconnect storm must
happen once, at a stated moment of the run, whatever the operators' think times; the
sample it records (planned = the event's time, sent = when it went) shows how late it was.

``drop_mqtt``: ``DELETE /_emulator/mqtt?applicationId=...`` on the embedded emulator (its
admin endpoint, loopback only) closes every MQTT connection of the run's application, as an
outage of the broker would. Recorded as ``mqtt.drop`` (key = application id); the MQTT
users label the losses seen while it runs, and ``DROP_GRACE_S`` after its answer, as
reason 5 (dropped on purpose) through ``MqttHub.drop_until``, and the MQTT judge
(``harness/analysis/mqtt.py``) explains the broker-side closes its bounds cover.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from locust import task

from harness.scenario.model import ScenarioEvent
from harness.users.base import LosantUser

#: Losses seen this long after the drop's answer are still the drop's (the clients notice a
#: closed socket when their greenlet next runs, later on a busy generator).
DROP_GRACE_S = 2.0
DROP_PENDING_S = 60.0  # while the DELETE is in flight: at most this long


class EventsUser(LosantUser):
    abstract = True

    def on_start(self) -> None:
        self.done = 0

    @task
    def run_events(self) -> None:
        ctx = self.ctx
        events = ctx.scenario.events
        while self.done < len(events):
            event = events[self.done]
            at = ctx.start + event.at
            delay = at - time.time()
            if delay > 0:
                gevent.sleep(delay)
            getattr(self, "do_" + event.action)(event, at)
            self.done += 1
        gevent.sleep(3600.0)  # nothing left to do: idle until the run stops this user

    def do_drop_mqtt(self, event: ScenarioEvent, planned: float) -> None:
        ctx = self.ctx
        app = ctx.fleet.application_id
        hub: Any = getattr(ctx, "mqtt", None)
        if hub is not None:
            hub.drop_until = time.time() + DROP_PENDING_S
        try:
            self.call("mqtt.drop", "DELETE", f"/_emulator/mqtt?applicationId={app}", None, app, planned)
        finally:
            if hub is not None:
                hub.drop_until = time.time() + DROP_GRACE_S
