"""Losant's MQTT broker, emulated in the emulator's own event loop (REFERENCE section 9).

``codec`` frames packets with amqtt's packet classes; ``topics`` decides who may publish
and subscribe where; ``status`` writes connect and disconnect into the device's
``connectionInfo`` and connection log; ``broker`` holds the sessions, enforces the MQTT
rows of ``harness.limits`` with disconnect and ban, stores states through the REST
store and pushes REST commands; ``serve`` runs it beside uvicorn.
"""
