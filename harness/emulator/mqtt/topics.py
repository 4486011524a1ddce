"""Which topics a device may publish and subscribe to (REFERENCE 4.3, 5.3 and 9).

Losant's own topics are ``losant/<deviceId>/state`` (publish: the device itself, or a
gateway for its peripherals) and ``losant/<deviceId>/command`` (subscribe: the same
devices); every other ``losant/...`` topic is refused. Any other topic is a custom topic,
governed by the access key's ``filterType``: ``none`` (the default) refuses all, ``all``
allows all, ``whitelist`` only what matches ``pubTopics`` / ``subTopics``, ``blacklist``
everything else [I from the docs' option list].
"""

from __future__ import annotations

from typing import Any

PREFIX = "losant/"


def valid_filter(pattern: str) -> bool:
    """An MQTT 3.1.1 topic filter: ``#`` only as a whole last level, ``+`` only as a whole level."""
    if not pattern or "\0" in pattern:
        return False
    levels = pattern.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def matches(pattern: str, topic: str) -> bool:
    """Whether the topic filter ``pattern`` matches the topic name ``topic`` (MQTT 3.1.1 4.7)."""
    if pattern == topic:
        return True
    p_levels, t_levels = pattern.split("/"), topic.split("/")
    if t_levels[0].startswith("$") and p_levels[0] in ("#", "+"):
        return False
    for i, level in enumerate(p_levels):
        if level == "#":
            return True
        if i >= len(t_levels) or (level != "+" and level != t_levels[i]):
            return False
    return len(p_levels) == len(t_levels)


def device_topic(topic: str) -> tuple[str, str] | None:
    """(device id, kind) of ``losant/<id>/<kind>``; None for any other shape."""
    if not topic.startswith(PREFIX):
        return None
    parts = topic.split("/")
    if len(parts) != 3 or not parts[1]:
        return None
    return parts[1], parts[2]


def custom_allowed(key: dict[str, Any], topic: str, direction: str) -> bool:
    """Whether the access key lets its devices use a custom topic (or filter) in ``direction`` "pub" or "sub"."""
    if topic.startswith(PREFIX) or topic == "losant":
        return False
    mode = key.get("filterType") or "none"
    if mode == "all":
        return True
    if mode == "none":
        return False
    listed = key.get("pubTopics" if direction == "pub" else "subTopics") or []
    hit = any(matches(pattern, topic) for pattern in listed if valid_filter(pattern))
    return hit if mode == "whitelist" else not hit
