"""The scenario's timed harness actions (``events``): one user waits for each and performs it.

Why a user of its own rather than an operator's weighted action: a reconnect storm must
happen once, at a stated moment of the run, whatever the operators' think times; the
sample it records (planned = the event's time, sent = when it went) shows how late it was.

``drop_mqtt``: ``DELETE /_emulator/mqtt?applicationId=...`` on the embedded emulator (its
admin endpoint, loopback only) closes every MQTT connection of the run's application, as an
outage of the broker would. Recorded as ``mqtt.drop`` (key = application id). The answer
lists the devices whose connection the broker closed; the MQTT users' losses wait while the
DELETE is in flight (``MqttHub.begin_drop``) and those of the listed devices are labelled
reason 5 (dropped on purpose), the others keep theirs (``MqttHub.end_drop``): from what the
broker did, not from a time window. Where the answer cannot tell (no list, or a device lost
twice while it ran) the losses stay reason 1 and the MQTT judge (``harness/analysis/mqtt.py``)
explains those its timing bounds cover with the ``mqtt.drop`` sample.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from locust import task

from harness.scenario.model import ScenarioEvent
from harness.users.base import LosantUser


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
        hub: Any = ctx.mqtt
        if hub is not None:
            hub.begin_drop()
        devices = None
        try:
            status, answer = self.call("mqtt.drop", "DELETE", f"/_emulator/mqtt?applicationId={app}", None, app,
                                       planned)
            listed = answer.get("devices") if 200 <= status < 300 and isinstance(answer, dict) else None
            if isinstance(listed, list):
                devices = [str(d) for d in listed]
        finally:
            if hub is not None:
                hub.end_drop(devices)
