"""One collecting checker for every file the tool reads: scenario, criteria, limits, faults.

A person who wrote a file by hand has only the terminal to go on, and one error per
attempt turns five typos into five runs. So each ``Checker`` helper checks one value,
records ``<file>: <field path>: <value> is not allowed; expected <what is>`` (with a
"did you mean" when a name is close to a known one) and returns a fallback, so
parsing goes on; ``check()`` then raises one ``InputError`` listing every problem,
one per line. The CLI and the emulator turn it (a ``ConfigError``) into the message
and exit code 2.

This module imports nothing of the harness but ``harness.errors``, so the emulator
(which must stay apart from the harness) checks its ``--limits`` and ``--faults``
files with the same toolkit.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence, TypeVar, overload

import yaml

from harness.errors import ConfigError

T = TypeVar("T")

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_HINT = "a duration like 10s, 500ms, 2m"


class InputError(ConfigError):
    """Every problem found in one input file; ``problems`` holds one line per problem."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


def did_you_mean(word: object, choices: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` when ``word`` is close to one of ``choices``, else ``""``.

    >>> did_you_mean("duraton", ["duration", "seed"]), did_you_mean("zzz", ["duration"])
    (" (did you mean 'duration'?)", '')
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def join_path(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def parse_duration(value: object) -> float:
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


def range_text(kind: str, lo: float | None, hi: float | None, lo_open: bool = False) -> str:
    """What a bounded number may be, in one wording for every file: ``a number from 0 to 1``."""
    if lo is not None and hi is not None:
        return f"{kind} {'>' if lo_open else 'from'} {lo:g}{' and <=' if lo_open else ' to'} {hi:g}"
    if lo is not None:
        return f"{kind} {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{kind} <= {hi:g}"
    return kind


def read_yaml(path: str | Path, what: str) -> Any:
    """The YAML document of a file, or an ``InputError`` naming the file (``what``: "limits file")."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError([f"{p}: cannot read {what} ({exc.strerror})"]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError([f"{p}: not valid YAML ({_yaml_problem(exc)})"]) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: where the parser stopped and why (its own text spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return (str(exc).splitlines() or ["unknown error"])[0]


class Checker:
    """Collects the problems of one file; each helper returns the checked value or a fallback.

    ``under(path)`` gives a checker for a section (criteria inside a scenario, ``mqtt``
    inside a limits file) that writes into the same list, so a section parser works
    alone (``check()`` raises) or as part of a bigger file.
    """

    def __init__(self, source: str, prefix: str = "") -> None:
        self.source = source
        self.prefix = prefix
        self.problems: list[str] = []

    @classmethod
    def at(cls, where: str) -> Checker:
        """A checker from ``"<file>: <section path>"`` (the form the messages print)."""
        source, sep, prefix = where.rpartition(": ")
        return cls(source, prefix) if sep else cls("", where)

    def under(self, path: str) -> Checker:
        child = copy.copy(self)  # the same class and the same problems list
        child.prefix = join_path(self.prefix, path) if path else self.prefix
        return child

    def check(self) -> None:
        """Raise one ``InputError`` listing every problem, if there is any."""
        if self.problems:
            raise InputError(self.problems)

    # ---- recording --------------------------------------------------------------
    def add(self, path: str, message: str) -> None:
        full = join_path(self.prefix, path) if path else self.prefix
        where = f"{self.source}: {full}" if self.source and full else (self.source or full)
        self.problems.append(f"{where}: {message}" if where else message)

    def bad(self, path: str, value: object, expected: str, hint: str = "") -> None:
        self.add(path, f"{value!r} is not allowed{hint}; expected {expected}")

    def unknown(self, path: str, key: str, allowed: Sequence[str], what: str = "field",
                expected: str | None = None) -> None:
        """An unknown name at ``path`` (which ends with it): a hint when one is close, then what is allowed
        (``expected`` in words instead of the list when the list is too long to print)."""
        tail = f"expected {expected}" if expected else f"allowed: {', '.join(allowed)}"
        self.add(path, f"unknown {what}{did_you_mean(key, allowed)}; {tail}")

    # ---- shapes -----------------------------------------------------------------
    def mapping(self, path: str, value: object, allowed: Sequence[str] | None, expected: str = "a mapping"
                ) -> dict[str, Any]:
        """``value`` as a dict with unknown keys reported (None → {}; ``allowed`` None: any key)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.bad(path, value, expected)
            return {}
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    self.unknown(join_path(path, key), str(key), allowed)
        return value

    def required(self, path: str, data: dict[str, Any], key: str, expected: str) -> bool:
        if data.get(key) is None:
            self.add(join_path(path, key), f"is required; expected {expected}")
            return False
        return True

    # ---- values -----------------------------------------------------------------
    def choice(self, path: str, value: object, choices: Sequence[object], default: T) -> Any:
        """One of ``choices`` (a hint when a string is close to one); ``default`` when absent or wrong.

        Typed ``Any`` because callers store it in ``Literal`` fields that a tuple cannot express."""
        if value is None:
            return default
        if value not in choices:
            hint = did_you_mean(value, choices) if isinstance(value, str) else ""
            self.bad(path, value, "one of " + " | ".join(str(c) for c in choices), hint)
            return default
        return value

    @overload
    def number(self, path: str, value: object, default: T, *, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False, integer: Literal[True]) -> int | T: ...

    @overload
    def number(self, path: str, value: object, default: T, *, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False, integer: Literal[False] = False) -> float | T: ...

    def number(self, path: str, value: object, default: T, *, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False, integer: bool = False) -> float | T:
        """A finite number in [lo, hi] (``lo_open``: lo excluded); whole numbers only with ``integer``."""
        if value is None:
            return default
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or (integer and not float(value).is_integer())
                or (lo is not None and (value <= lo if lo_open else value < lo))
                or (hi is not None and value > hi)):
            self.bad(path, value, range_text("a whole number" if integer else "a number", lo, hi, lo_open))
            return default
        return int(value) if integer else float(value)

    def duration(self, path: str, value: object, default: T, *, positive: bool = True) -> float | T:
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

    def string(self, path: str, value: object, default: T, pattern: re.Pattern[str] | None = None,
               expected: str = "a string") -> str | T:
        if value is None:
            return default
        if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
            self.bad(path, value, expected)
            return default
        return value

    def boolean(self, path: str, value: object, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.bad(path, value, "true or false")
            return default
        return value
