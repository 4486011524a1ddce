"""The scenario's own checks on top of the shared toolkit (``harness.checking``).

A scenario adds two things no other input file has: fields that smell of credentials,
refused with the environment variable to set instead (a scenario file is committed and
shared; a password in it leaks), and device tags within Losant's per-device cap.
"""

from __future__ import annotations

from typing import Sequence

from harness.checking import DURATION_HINT, Checker, InputError, join_path, parse_duration
from harness.scenario.model import CREDENTIAL_ENV

__all__ = ["ATTRIBUTES_MAX", "DURATION_HINT", "SECRET_FIELDS", "TAGS_MAX", "ScenarioChecker", "ScenarioError",
           "join_path", "parse_duration"]

_USER, _TOKEN, _KEY = CREDENTIAL_ENV["user"], CREDENTIAL_ENV["token"], CREDENTIAL_ENV["key"]
#: Field names that smell of credentials → the environment variable to use instead.
SECRET_FIELDS = {
    "email": _USER[0], "password": _USER[1], "token": _TOKEN[0], "api_token": _TOKEN[0],
    "access_key": _KEY[0], "key": _KEY[0], "secret": _KEY[1], "access_secret": _KEY[1],
}
TAGS_MAX = 98  # Losant allows 100 tags per device; the harness adds the run tag and the class tag
ATTRIBUTES_MAX = 256

#: A malformed scenario: the one error type of every input file (``problems``: one line each).
ScenarioError = InputError


class ScenarioChecker(Checker):
    """``Checker`` that refuses credentials in the file and knows Losant's device tags."""

    def unknown(self, path: str, key: str, allowed: Sequence[str], what: str = "field",
                expected: str | None = None) -> None:
        env = SECRET_FIELDS.get(key.lower())
        if env:
            self.add(path, f"credentials are never read from scenario files; remove it and set {env} in the "
                           "environment (target.auth picks which: " +
                           "; ".join(f"{a} → {' + '.join(v)}" for a, v in CREDENTIAL_ENV.items()) + ")")
            return
        super().unknown(path, key, allowed, what, expected)

    def tags(self, path: str, value: object) -> dict[str, str]:
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
