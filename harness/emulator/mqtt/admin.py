"""``/_emulator/mqtt`` (with ``--admin``, loopback clients only): the broker's counters, and a reconnect storm on demand.

``GET`` answers ``Broker.snapshot()`` (connected devices, bans, disconnects by reason,
refusals, states, payloads, arrival-to-commit percentiles of QoS 1 states; ``?reset=true``
starts a new latency series after answering). ``DELETE`` closes every device connection, or those of one
application with ``?applicationId=``, as an outage of the broker would, and answers
``{"dropped": n, "devices": [ids]}``: the harness's reconnect-storm scenario drives it and labels
exactly those devices' losses as its own (``harness.users.mqtt_hub``). Other clients get the 404 of an unknown path.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import orjson

from ..faults import Receive, Scope, Send, send_error
from ..http import from_loopback
from .broker import Broker


class MqttAdmin:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not from_loopback(scope):
            await send_error(send, 404, "NotFound", f"Path {scope['path']} was not found")
            return
        method = scope["method"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if method == "GET":
            await _json(send, self.broker.snapshot(reset_latency=(query.get("reset") or [""])[0] == "true"))
        elif method == "DELETE":
            app_id = (query.get("applicationId") or [None])[0]
            devices = self.broker.drop_connections(app_id)
            await _json(send, {"dropped": len(devices), "devices": devices})
        else:
            await send_error(send, 405, "MethodNotAllowed", f"Method {method} is not allowed on /_emulator/mqtt; allowed: DELETE, GET")


async def _json(send: Send, payload: Any) -> None:
    body = orjson.dumps(payload)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
