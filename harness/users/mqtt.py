"""MQTT devices: one broker connection each, states published on their open-loop timelines,
commands pushed by the broker, reconnects with back-off.

A user drives a chunk of a transport-``mqtt`` class (``DEVICES_PER_MQTT_USER`` devices,
whatever the fleet mode): one ``Link`` (paho's engine and a greenlet, ``mqtt_link.py``) per
device that connects itself (a gateway publishes for its peripherals over its own
connection), one connector greenlet, and the timeline loop.

**Connecting.** The connector takes links in the order they want to connect (at the start
all at once; after a loss, when the back-off ends) and asks the ledger for each CONNECT
under ``mqtt.newConnections`` (respect mode): 300 per 15 s per application, so a fleet's
ramp-up is planned, not refused; the CONNECT is charged until its CONNACK. The sample's
planned time is the last time the ledger named (the slot), or the back-off's end.

**Publishing.** Each state due on the timeline is one PUBLISH ``{"time", "data"}`` on
``losant/<id>/state`` at QoS 1, admitted by the ledger under ``mqtt.publishIn`` (device and
topic) and ``mqtt.connectionMessages`` (the connection) and charged until its PUBACK. A
PUBACKed state is accepted: it goes to the read-back log like a REST state. A state due
before the device's first connection is skipped (as a REST user skips sends planned before
it started); one due while it is disconnected, or that the ledger cannot fit before the
device's next state, is dropped and counted (``dropped``).

**Probing** (``throttle: probe`` naming ``mqtt.publishIn``): each device that connects itself
publishes no timeline; it runs rounds on its own state topic instead, as the REST operators'
probe rounds do (``harness.users.probes``): ``count + 1`` states back to back, each
``PROBE_GAP`` after the previous PUBACK (so the broker's order is certain), the last one over
the count. The broker should drop it and disconnect the device; the device then reconnects
once during the ban it should have drawn (half the first offence's ban after the loss) and
once just after the longest ban the policy allows for its offences so far
(``MqttPolicy.ban_for``), then waits until the round's messages have left the window
(window + 1 s) before the next round. The judge (``harness/analysis/mqtt.py``) decides from
the samples whether the disconnect, the refusal and the acceptance were as documented.

**Sampling visibility.** Every ``VISIBILITY_EVERY``-th acknowledged state is looked for with
REST last-value queries (backing off from 50 ms to 1 s, for up to ``VISIBILITY_TIMEOUT``),
at most ``VISIBILITY_CHECKS`` at a time per user: ``mqtt.stateVisible``.

Samples: see ``harness/record.py`` (the MQTT operations).
"""

from __future__ import annotations

import heapq
import math
import random
import time
from datetime import datetime
from time import perf_counter
from typing import Any

import gevent
import gevent.event
from gevent.lock import BoundedSemaphore
import orjson
from locust import task

from harness.errors import ConfigError
from harness.record import CONNECTION, ERROR_KINDS, LOCUST_MQTT_TYPE, NO_ERROR, OTHER, TIMEOUT
from harness.schedule import backoff_delay
from harness.session import Reporter
from harness.users.base import LosantUser
from harness.users.mqtt_hub import MqttHub
from harness.users.mqtt_link import BROKER_CLOSED, CLIENT_CLOSED, KEEPALIVE_TIMEOUT, TAKEN_OVER, BrokerAddress, Link

VISIBILITY_EVERY = 50  # one acknowledged state in this many is looked for over REST
VISIBILITY_CHECKS = 4  # at most this many look-ups at a time per user
VISIBILITY_TIMEOUT = 10.0  # seconds: a state not seen by then is recorded as never seen
STOP_ACK_WAIT = 2.0  # seconds the stop waits for PUBACKs in flight before closing
STOP_COMMAND_WAIT = 1.0  # seconds the stop waits for commands in flight to arrive
CONNECTION_ERRORS = (BROKER_CLOSED, KEEPALIVE_TIMEOUT, TAKEN_OVER)
#: Seconds a CONNECT or PUBLISH keeps counting in the ledger past its answer: the ledger needs no margin
#: (harness.schedule.ledger), but the judge's timing bounds do, to prove a window held less than its count
#: rather than leave it undecided (5 ms of 15 s: 0.03 % of the rate).
DECIDABLE = 0.005
#: CONNECTs the process keeps waiting for their CONNACK at most (all users together): with the
#: new-connection limit raised (benchmarks, a storm on purpose), 10,000 at once overflowed the
#: emulator's listen backlog and most attempts timed out. (The 41 s that 1,000 at once took, where
#: 200 took 5 s, was measured while paho still bound every socket to port 0 before connecting, the
#: main cost then: ``mqtt_link._Client``.) The documented limit never gets near it.
MAX_CONNECTING = 200
PROBE_GAP = 0.005  # seconds after a PUBACK before a round's next message: the broker's order is then certain
PROBE_ACK_WAIT = 5.0  # seconds a round waits for one PUBACK before it gives up the round
PROBE_BAN_MARGIN = 0.25  # seconds past the longest ban the policy allows before the after-ban reconnect
PROBE_LIMIT = "mqtt.publishIn"


def broker_address(ctx: Any) -> BrokerAddress:
    """The run's broker: the embedded emulator's (``RunContext.mqtt_url``) or the scenario's."""
    url = getattr(ctx, "mqtt_url", "") or ctx.scenario.target.mqtt_url
    if not url:
        raise ConfigError("transport: mqtt needs a broker: the embedded emulator was started without one "
                          "(--no-mqtt?), and target.mqtt_url is not set")
    return BrokerAddress.parse(url)


class MqttOutcome(Exception):
    """What Locust's statistics show for an MQTT sample that is not a success (its error kind and status)."""


class MqttFleetUser(LosantUser):
    """Drives a chunk of MQTT devices (``harness.users.Mqtt``)."""

    abstract = True
    claim_kind = "mqtt"

    def record_sample(self, op: int, key: int, planned: float, sent: float, latency: float, status: int,
                      nbytes: int, error: int) -> None:
        """The run's recorder, and Locust's statistics too.

        Why the second: the web UI's statistics and charts and ``locust_stats.csv`` show only what
        Locust's request event reports, and MQTT messages are not HTTP requests; without it an MQTT
        fleet's traffic is invisible there (the recorder, the verdict and the report have every
        sample either way).
        """
        self.rec.record(op, key, planned, sent, latency, status, nbytes, error)
        name = self.op_names[op]
        self.fire_request(request_type=LOCUST_MQTT_TYPE, name=name, response_time=latency * 1000.0,
                          response_length=nbytes, context={},
                          exception=None if error == NO_ERROR else MqttOutcome(f"{ERROR_KINDS[error]}: {status}"))

    def on_start(self) -> None:
        ctx = self.ctx
        self.units = ctx.claim(self.claim_kind)
        self.reporters: list[Reporter] = ctx.reporters_for(self.units)
        hub = ctx.mqtt
        if hub is None:
            hub = ctx.mqtt = MqttHub(broker_address(ctx), ctx.fleet.run_tag)
        self.hub: MqttHub = hub
        fleet = ctx.fleet
        self.rec = ctx.recorder
        self.op_codes = {name: self.rec.op_code(name) for name in (
            "mqtt.connect", "mqtt.publishState", "mqtt.commandDelivery", "mqtt.stateVisible", "mqtt.disconnect")}
        self.op_names = {code: name for name, code in self.op_codes.items()}
        self.fire_request = self.environment.events.request.fire
        self.links: dict[str, Link] = {}
        for r in self.reporters:
            if r.auth_id not in self.links:
                self.links[r.auth_id] = Link(r.auth_id, hub.address, fleet.access_key, str(fleet.access_secret), self,
                                             hub.tls_context)
        self.key_codes: dict[str, int] = {d: self.rec.key_code(d) for d in self.links}
        # a gateway receives its peripherals' commands on its own connection: keyed, like its publishes, by the
        # connecting device and the topic (what the broker counts mqtt.publishOut by)
        self.peripherals: dict[str, Link] = {}
        for r in self.reporters:
            if r.device.id != r.auth_id and r.device.id not in self.peripherals:
                link = self.links[r.auth_id]
                topic = f"losant/{r.device.id}/command"
                link.command_topics.append(topic)
                self.peripherals[r.device.id] = link
                self.key_codes[r.device.id] = self.rec.key_code(f"{r.auth_id}:{topic}")
        self.topics = [f"losant/{r.device.id}/state" for r in self.reporters]
        # what the broker counts mqtt.publishIn by: the connecting device (a gateway for its peripherals) and topic
        self.topic_keys = [f"{r.auth_id}:{t}" for r, t in zip(self.reporters, self.topics)]
        self.state_keys = [self.rec.key_code(k) for k in self.topic_keys]
        #: mid -> (reporter index, planned, sent, t0, time ms, payload bytes, ledger ticket), per link
        self.pending: dict[str, dict[int, tuple[int, float, float, float, int, int, Any]]] = {
            d: {} for d in self.links}
        tags = {r.device.id: ctx.classes[r.device.class_name].tags for r in self.reporters}
        hub.join(list(self.links.values()), tags, self.peripherals)
        self.rng = random.Random()
        self.queue: list[tuple[float, int, str]] = []  # (wanted at, order, device id): connects to make
        self.order = 0
        self.wake = gevent.event.Event()
        if hub.connecting is None:
            hub.connecting = BoundedSemaphore(MAX_CONNECTING)
        self.connecting = hub.connecting
        self.greenlets: list[Any] = []
        self.acked = 0
        self.checking = 0
        self.tokens: dict[str, str | None] = {}
        self.stopped = False
        self.first_connects = 0
        # probe mode: the devices that connect themselves push mqtt.publishIn past its count in rounds
        self.probe = ctx.probing and PROBE_LIMIT in ctx.scenario.pacing.probe_limits
        self.probing = {i for i, r in enumerate(self.reporters) if self.probe and r.device.id == r.auth_id}
        self.awaiting: dict[str, tuple[int, gevent.event.AsyncResult]] = {}  # a round's PUBACK awaited, per device
        self.reconnect_plan: dict[str, list[float]] = {}  # probe: reconnect times after a disconnect
        self.offences: dict[str, int] = {}  # probe: broker-side disconnects per device (the ban's growth)
        now = time.time()
        for device_id in self.links:
            self.enqueue(device_id, now)
        ctx.on_user_ready()

    # -- connecting ---------------------------------------------------------------------------------
    def enqueue(self, device_id: str, at: float) -> None:
        self.order += 1
        heapq.heappush(self.queue, (at, self.order, device_id))
        self.wake.set()

    def connector(self) -> None:
        """Take links in the order they want to connect; each CONNECT as the ledger allows."""
        ctx = self.ctx
        ledger = ctx.ledger
        keys = {"application": ctx.fleet.application_id}
        queue = self.queue
        slot = -math.inf  # the last time the ledger named for a CONNECT
        while not self.stopped:
            if not queue:
                self.wake.clear()
                self.wake.wait()
                continue
            wanted = queue[0][0]
            now = time.time()
            if wanted > now:
                self.wake.clear()
                self.wake.wait(wanted - now)  # an earlier want (a new loss) wakes it
                continue
            _, _, device_id = heapq.heappop(queue)
            self.connecting.acquire()  # before the ledger: a CONNECT is charged from its admission
            now = time.time()
            # a link queued behind the ledger's slots waited for the limit, not for the generator
            planned = max(wanted, slot)
            ticket: Any = ()
            if ctx.paced:
                while True:
                    ticket = ledger.admit("mqtt.connect", keys, now)
                    if ticket.__class__ is tuple:
                        break
                    planned = slot = ticket
                    gevent.sleep(ticket - now)
                    now = time.time()
                    if self.stopped:
                        return
            g = gevent.spawn(self.attempt, self.links[device_id], planned, ticket)
            self.greenlets.append(g)
            if len(self.greenlets) > 4 * len(self.links):
                self.greenlets = [x for x in self.greenlets if not x.dead]

    def attempt(self, link: Link, planned: float, ticket: Any) -> None:
        """One connection attempt, then the connection's life; a loss or refusal queues the next."""
        first = not link.ever_connected
        self.hub.attempting(link.device_id)
        try:
            status, error, sent, latency = link.connect()
        except Exception:  # noqa: BLE001 - a client bug must not end the device: counted, retried
            sent = time.time()
            status, error, latency = 0, OTHER, 0.0
        finally:
            self.connecting.release()
        if ticket:
            self.ctx.ledger.done(ticket, time.time() + DECIDABLE)
        self.record_sample(self.op_codes["mqtt.connect"], self.key_codes[link.device_id], min(planned, sent), sent,
                        latency, status, 0, error)
        if status == 200:
            self.hub.connected += 1
            if self.stopped:
                link.close(CLIENT_CLOSED)
                return
            if first:
                self.first_connects += 1
                if self.first_connects == len(self.links):  # every client exists: freeze them out of the GC's walks
                    self.ctx.on_user_ready()
            link.serve()
        if not self.stopped and not link.connected:
            plan = self.reconnect_plan.get(link.device_id)
            if plan:  # a probe's check of the ban: once during it, once after it
                self.enqueue(link.device_id, plan.pop(0))
                return
            link.attempts += 1
            self.enqueue(link.device_id, time.time() + backoff_delay(link.attempts, self.rng.random()))

    # -- link events ----------------------------------------------------------------------------------
    def on_lost(self, link: Link, reason: int, at: float) -> None:
        hub = self.hub
        hub.connected -= 1
        hub.disconnects += 1
        waiter = self.awaiting.pop(link.device_id, None)
        if waiter is not None:
            waiter[1].set(False)
        if self.probe and reason == BROKER_CLOSED and not self.stopped and not hub.drop_in_flight:
            self.plan_ban_check(link.device_id, at)
        code, key = self.op_codes["mqtt.disconnect"], self.key_codes[link.device_id]

        def record(final: int) -> None:
            self.record_sample(code, key, at, at, 0.0, final, 0, CONNECTION if final in CONNECTION_ERRORS else NO_ERROR)

        hub.label_loss(link.device_id, reason, record)  # a drop the harness asked for: from the broker's answer
        pending = self.pending[link.device_id]
        if pending:
            ledger = self.ctx.ledger
            code = self.op_codes["mqtt.publishState"]
            for index, planned, sent, t0, _, nbytes, ticket in pending.values():
                if ticket:
                    ledger.done(ticket, at + DECIDABLE)
                self.record_sample(code, self.state_keys[index], planned, sent, perf_counter() - t0, 0, nbytes, CONNECTION)
            pending.clear()

    def on_puback(self, link: Link, mid: int, at: float) -> None:
        entry = self.pending[link.device_id].pop(mid, None)
        if entry is None:
            return
        index, planned, sent, t0, time_ms, nbytes, ticket = entry
        latency = perf_counter() - t0
        if ticket:
            self.ctx.ledger.done(ticket, at + DECIDABLE)
        self.record_sample(self.op_codes["mqtt.publishState"], self.state_keys[index], planned, sent, latency, 200,
                        nbytes, NO_ERROR)
        self.hub.published += 1
        device_id = self.reporters[index].device.id
        self.ctx.accepted_states(device_id, [time_ms])
        waiter = self.awaiting.get(link.device_id)
        if waiter is not None and waiter[0] == mid:
            del self.awaiting[link.device_id]
            waiter[1].set(True)
        self.acked += 1
        if self.acked % VISIBILITY_EVERY == 0 and self.checking < VISIBILITY_CHECKS and not self.stopped:
            self.checking += 1
            gevent.spawn(self.check_visible, device_id, time_ms, sent)

    def on_message(self, link: Link, topic: str, payload: bytes, at: float) -> None:
        parts = topic.split("/")
        receiver = parts[1] if len(parts) == 3 and parts[0] == "losant" and parts[2] == "command" else link.device_id
        if receiver not in self.key_codes:
            receiver = link.device_id
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(message, dict):
            return
        body = message.get("payload")
        sent = body.get("sent") if isinstance(body, dict) else None
        if isinstance(sent, (int, float)) and not isinstance(sent, bool):
            self.hub.received(receiver, str(body.get("cmd")))  # type: ignore[union-attr]
        else:  # not stamped by an operator of this run: the platform's own time of the command
            sent = _epoch(message.get("time"))
            if sent is None:
                return
        self.record_sample(self.op_codes["mqtt.commandDelivery"], self.key_codes[receiver], sent, sent,
                        max(0.0, at - sent), 200, len(payload), NO_ERROR)

    # -- publishing -----------------------------------------------------------------------------------
    def publish(self, index: int, planned: float, latest: float) -> None:
        r = self.reporters[index]
        link = self.links[r.auth_id]
        if not link.connected:
            if link.ever_connected:
                self.ctx.dropped += 1
            return
        ctx = self.ctx
        ticket: Any = ()
        if ctx.paced:
            keys = link.keys.get(r.device.id)
            if keys is None:
                keys = link.keys[r.device.id] = {"device_topic": self.topic_keys[index], "connection": link.conn_key}
            now = time.time()
            ticket = ctx.ledger.admit("mqtt.publishState", keys, now)
            if ticket.__class__ is not tuple:
                if ticket > latest:
                    ctx.dropped += 1
                else:
                    gevent.spawn_later(ticket - now, self.publish, index, ticket, latest)
                return
        self.send_state(index, link, planned, ticket)

    def send_state(self, index: int, link: Link, planned: float, ticket: Any) -> int | None:
        """PUBLISH the reporter's next state (admitted already); its message id, None when it could not go."""
        r = self.reporters[index]
        time_ms = int(planned * 1000)
        payload = orjson.dumps({"time": time_ms, "data": r.state()})
        sent = time.time()
        t0 = perf_counter()
        mid = link.publish(self.topics[index], payload)
        if mid is None:
            if ticket:
                self.ctx.ledger.done(ticket, time.time() + DECIDABLE)
            self.record_sample(self.op_codes["mqtt.publishState"], self.state_keys[index], planned, sent,
                            perf_counter() - t0, 0, len(payload), CONNECTION)
            return None
        self.pending[link.device_id][mid] = (index, planned, sent, t0, time_ms, len(payload), ticket)
        return mid

    # -- probing ------------------------------------------------------------------------------------
    def plan_ban_check(self, device_id: str, lost_at: float) -> None:
        """After a broker-side disconnect of a probing device: reconnect once inside the shortest ban
        (the first offence's) and once past the longest its offences so far can have drawn."""
        policy = self.ctx.limits.mqtt_policy
        k = self.offences[device_id] = self.offences.get(device_id, 0) + 1
        self.reconnect_plan[device_id] = [lost_at + policy.ban_seconds / 2.0,
                                          lost_at + policy.ban_for(k) + PROBE_BAN_MARGIN]

    def probe_device(self, index: int) -> None:
        """Rounds of count + 1 states, one window + 1 s apart, whenever the device is connected."""
        link = self.links[self.reporters[index].auth_id]
        limit = self.ctx.limits.mqtt_limit(PROBE_LIMIT)
        pause = float(limit.window or 15.0) + 1.0
        next_round = 0.0
        while not self.stopped:
            now = time.time()
            if not link.connected or now < next_round:
                gevent.sleep(min(0.05, max(next_round - now, 0.001)) if link.connected else 0.05)
                continue
            next_round = self.probe_round(index, link, limit.count + 1) + pause

    def probe_round(self, index: int, link: Link, n: int) -> float:
        """``n`` states back to back, each after the previous PUBACK; the last one's send time."""
        ctx = self.ctx
        keys = {"device_topic": self.topic_keys[index], "connection": link.conn_key}
        last = time.time()
        for _ in range(n):
            if self.stopped or not link.connected:
                break
            ticket: Any = ()
            if ctx.paced:  # the limits the probe leaves alone (the connection's messages) are still kept
                now = time.time()
                ticket = ctx.ledger.admit("mqtt.publishState", keys, now)
                while ticket.__class__ is not tuple:
                    gevent.sleep(max(0.0, ticket - now))
                    now = time.time()
                    ticket = ctx.ledger.admit("mqtt.publishState", keys, now)
            waiter = gevent.event.AsyncResult()
            last = time.time()
            mid = self.send_state(index, link, last, ticket)
            if mid is None:
                break
            self.awaiting[link.device_id] = (mid, waiter)
            try:
                acked = waiter.get(timeout=PROBE_ACK_WAIT)
            except gevent.Timeout:
                acked = False
            if not acked:
                self.awaiting.pop(link.device_id, None)
                break
            gevent.sleep(PROBE_GAP)
        return last

    @task
    def drive(self) -> None:
        ctx = self.ctx
        self.greenlets.append(gevent.spawn(self.connector))
        for index in sorted(self.probing):
            self.greenlets.append(gevent.spawn(self.probe_device, index))
        probing = self.probing
        timeline = ctx.timeline_for(self.units)
        reporters = self.reporters
        while True:
            nxt = timeline.next_time()
            if nxt is None:
                gevent.sleep(1.0)
                continue
            delay = min(nxt, time.time() + 1.0) - time.time()
            if delay > 0:
                gevent.sleep(delay)
            for planned, index, _action in timeline.pop_due(time.time()):
                if index not in probing:  # a probing device's messages are its rounds
                    self.publish(index, planned, planned + reporters[index].interval)

    # -- visibility -----------------------------------------------------------------------------------
    def check_visible(self, device_id: str, time_ms: int, sent: float) -> None:
        """Poll a REST last-value query until it returns the state (or a later one)."""
        try:
            token = self.tokens.get(device_id)
            if token is None:
                token = self.tokens[device_id] = self.authenticate_device(device_id)
            path = f"/applications/{self.ctx.fleet.application_id}/data/last-value-query"
            body = {"deviceIds": [device_id]}
            deadline = sent + VISIBILITY_TIMEOUT
            delay = 0.05
            seen_at: float | None = None
            while not self.stopped:
                status, answer = self.call("data.lastValueQuery", "POST", path, token, self.ctx.fleet.application_id,
                                           body=body)
                now = time.time()
                entry = answer.get(device_id) if isinstance(answer, dict) else None
                found = _epoch(entry.get("time")) if isinstance(entry, dict) else None
                if found is not None and found * 1000 >= time_ms - 0.5:
                    seen_at = now
                    break
                if now + delay > deadline:
                    break
                gevent.sleep(delay)
                delay = min(1.0, delay * 2)
            if seen_at is not None:
                self.record_sample(self.op_codes["mqtt.stateVisible"], self.key_codes.get(device_id) or self.rec.key_code(
                    device_id), sent, sent, seen_at - sent, 200, 0, NO_ERROR)
            elif not self.stopped:
                self.record_sample(self.op_codes["mqtt.stateVisible"], self.rec.key_code(device_id), sent, sent,
                                time.time() - sent, 0, 0, TIMEOUT)
        finally:
            self.checking -= 1

    # -- stopping -------------------------------------------------------------------------------------
    def on_stop(self) -> None:
        if getattr(self, "links", None) is None:
            return
        self.stopped = True
        self.hub.stopping = True
        self.wake.set()
        ctx = self.ctx
        deadline = time.time() + STOP_ACK_WAIT
        while any(self.pending.values()) and time.time() < deadline:
            gevent.sleep(0.02)
        deadline = time.time() + STOP_COMMAND_WAIT
        receivers = [*self.links, *self.peripherals]
        while any(d in self.hub.awaited for d in receivers) and time.time() < deadline:
            gevent.sleep(0.02)
        for link in self.links.values():
            link.close(CLIENT_CLOSED)
        now = time.time()
        for device_id, sent in self.hub.overdue(receivers):
            self.record_sample(self.op_codes["mqtt.commandDelivery"], self.key_codes[device_id], sent, sent, now - sent,
                            0, 0, TIMEOUT)
        gevent.killall([g for g in self.greenlets if not g.dead], block=False)
        self.hub.leave(list(self.links.values()), list(self.peripherals))
        ctx.release(self.units)


def _epoch(value: Any) -> float | None:
    """Epoch seconds of an ISO time string or ``{"$date": ...}``; None when it is neither."""
    if isinstance(value, dict):
        value = value.get("$date")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) / 1000.0
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
