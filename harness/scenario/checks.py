"""The validation toolkit of the scenario loader: durations and a problem collector.

``Checker`` helpers check one value, append ``<file>: <field path>: <value> is not
allowed; expected <what is>`` when it is wrong and return a fallback, so parsing goes
on and the author sees every problem in one go.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Sequence, TypeVar

from harness.errors import ConfigError
from harness.scenario.model import CREDENTIAL_ENV

T = TypeVar("T")

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_HINT = "a duration like 10s, 500ms, 2m"

#: Field names that smell of credentials → the environment variable to use instead.
SECRET_FIELDS = {
    "password": "LOSANT_PASSWORD", "email": "LOSANT_EMAIL", "token": "LOSANT_API_TOKEN",
    "api_token": "LOSANT_API_TOKEN", "secret": "LOSANT_ACCESS_SECRET",
    "access_secret": "LOSANT_ACCESS_SECRET", "access_key": "LOSANT_ACCESS_KEY", "key": "LOSANT_ACCESS_KEY",
}
TAGS_MAX = 98  # Losant allows 100 tags per device; the harness adds the run tag and the class tag
ATTRIBUTES_MAX = 256

def parse_duration(value: Any) -> float:
    """Seconds from a number or a string with a unit; ``ConfigError`` (a ValueError) otherwise.

    >>> parse_duration("500ms"), parse_duration("2m"), parse_duration(1.5)
    (0.5, 120.0, 1.5)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ConfigError(f"{value!r} is not allowed; expected {DURATION_HINT}")


class ScenarioError(ConfigError):
    """A scenario is malformed; ``problems`` holds one line per problem found."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class Checker:
    """Collects problems; each helper returns the checked value or a fallback."""

    def __init__(self, source: str):
        self.source = source
        self.problems: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{self.source}: {path}: {message}" if path else f"{self.source}: {message}")

    def bad(self, path: str, value: Any, expected: str) -> None:
        self.add(path, f"{value!r} is not allowed; expected {expected}")

    def mapping(self, path: str, value: Any, allowed: Sequence[str]) -> dict[str, Any]:
        """``value`` as a dict with unknown keys reported (None → {})."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.bad(path, value, "a mapping")
            return {}
        for key in value:
            if key not in allowed:
                self.unknown(join_path(path, key), str(key), allowed)
        return value

    def unknown(self, path: str, key: str, allowed: Sequence[str]) -> None:
        env = SECRET_FIELDS.get(key.lower())
        if env:
            self.add(path, f"credentials are never read from scenario files; remove it and set {env} in the "
                           "environment (target.auth picks which: " +
                           "; ".join(f"{a} → {' + '.join(v)}" for a, v in CREDENTIAL_ENV.items()) + ")")
            return
        close = difflib.get_close_matches(key, list(allowed), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        self.add(path, f"unknown field{hint}; allowed: {', '.join(allowed)}")

    def required(self, path: str, data: dict[str, Any], key: str, expected: str) -> bool:
        if data.get(key) is None:
            self.add(join_path(path, key), f"is required; expected {expected}")
            return False
        return True

    def choice(self, path: str, value: Any, choices: Sequence[str], default: T) -> Any:
        if value is None:
            return default
        if value not in choices:
            self.bad(path, value, "one of " + " | ".join(choices))
            return default
        return value

    def number(self, path: str, value: Any, default: T, *, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False, integer: bool = False) -> Any:
        """A number in [lo, hi] (``lo_open``: lo excluded); integers only with ``integer``."""
        if value is None:
            return default
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and integer:
            ok = float(value).is_integer()
        if ok and lo is not None:
            ok = value > lo if lo_open else value >= lo
        if ok and hi is not None:
            ok = value <= hi
        if not ok:
            self.bad(path, value, _range_text("a whole number" if integer else "a number", lo, hi, lo_open))
            return default
        return int(value) if integer else float(value)

    def duration(self, path: str, value: Any, default: T, *, positive: bool = True) -> Any:
        if value is None:
            return default
        try:
            seconds = parse_duration(value)
        except ValueError:
            self.bad(path, value, DURATION_HINT)
            return default
        if seconds < 0 or (positive and seconds == 0):
            self.bad(path, value, DURATION_HINT + (" greater than 0" if positive else " of 0 or more"))
            return default
        return seconds

    def string(self, path: str, value: Any, default: T, pattern: re.Pattern[str] | None = None,
               expected: str = "a string") -> Any:
        if value is None:
            return default
        if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
            self.bad(path, value, expected)
            return default
        return value

    def boolean(self, path: str, value: Any, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.bad(path, value, "true or false")
            return default
        return value

    def tags(self, path: str, value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.bad(path, value, "a mapping of tag key to value, like {site: plant-1}")
            return {}
        out: dict[str, str] = {}
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, (str, int, float)) or str(v) == "":
                self.bad(join_path(path, str(k)), v, "a non-empty string (quote yes/no/true/false)")
                continue
            out[str(k)] = str(v)
        if len(out) > TAGS_MAX:
            self.add(path, f"{len(out)} tags is too many; expected at most {TAGS_MAX} (the harness adds 2)")
        return out


def join_path(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _range_text(kind: str, lo: float | None, hi: float | None, lo_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"{kind} {'>' if lo_open else 'from'} {lo:g}{' and <=' if lo_open else ' to'} {hi:g}"
    if lo is not None:
        return f"{kind} {'>' if lo_open else '>='} {lo:g}"
    return kind
