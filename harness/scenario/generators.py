"""Attribute value generators: one closure per (device, attribute), like locust's wait_time.

A generator is built once per device with that device's own ``random.Random`` so a
random walk keeps its position per device and a run is reproducible from its seed::

    >>> import random
    >>> from harness.scenario.model import AttributeSpec
    >>> walk = make_generator(AttributeSpec("t", "random_walk", -10, 50, start=20, step=0.5), random.Random(1))
    >>> 19.5 <= walk() <= 20.5
    True
"""

from __future__ import annotations

import hashlib
import random
from typing import Callable, Sequence

from harness.scenario.model import AttributeSpec

Value = float | int | bool | str
AttributeGenerator = Callable[[], Value]
StateGenerator = Callable[[], dict[str, Value]]


def make_generator(spec: AttributeSpec, rng: random.Random) -> AttributeGenerator:
    """A callable returning the attribute's next value (state lives in the closure)."""
    if spec.type == "random_walk":
        lo = spec.min if spec.min is not None else float("-inf")
        hi = spec.max if spec.max is not None else float("inf")
        step = spec.step or 0.0
        position = [spec.start if spec.start is not None else 0.0]

        def walk() -> Value:
            # One uniform step in [-step, +step], clamped to the bounds: the value
            # moves like a slowly drifting sensor and never leaves [min, max].
            position[0] = min(hi, max(lo, position[0] + rng.uniform(-step, step)))
            return position[0]
        return walk
    if spec.type == "number":
        lo, hi = spec.min or 0.0, spec.max if spec.max is not None else 1.0
        if spec.integer:
            ilo, ihi = int(-(-lo // 1)), int(hi // 1)  # ceil(min), floor(max)
            return lambda: rng.randint(ilo, max(ilo, ihi))
        return lambda: rng.uniform(lo, hi)
    if spec.type == "boolean":
        p = 0.5 if spec.p_true is None else spec.p_true
        return lambda: rng.random() < p
    if spec.type == "string":
        values = spec.values or ("",)
        return lambda: rng.choice(values)
    raise ValueError(f"unknown generator type {spec.type!r}")


def device_rng(seed: int, device_name: str) -> random.Random:
    """A device's own generator, the same in every process for the same (seed, name).

    Python's ``hash()`` is salted per process; a digest is not, so Locust workers agree.
    """
    digest = hashlib.blake2b(f"{seed}:{device_name}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def make_state_generator(attributes: Sequence[AttributeSpec], rng: random.Random) -> StateGenerator:
    """A callable returning one state's ``data`` mapping: every attribute's next value."""
    gens = [(a.name, make_generator(a, rng)) for a in attributes]
    return lambda: {name: gen() for name, gen in gens}
