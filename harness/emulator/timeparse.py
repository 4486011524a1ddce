"""Times in and out of the emulated Losant API, as epoch milliseconds.

Losant accepts times in many shapes (REFERENCE.md §1 "time in"): ISO-8601 or
other ``Date.parse``-able strings, epoch seconds, epoch milliseconds,
``{"$date": "<ISO>"}``, or a negative number meaning "that many ms before now".
Query windows (``start``/``end``) follow a different rule: 0 is now, negative
is relative to now, positive is absolute epoch ms (§1 "relative query times").
Everything here is pure (stdlib only, the clock is a parameter), so callers
and tests decide what "now" is.

>>> parse_input_time("2016-06-13T04:00:00Z", now_ms=0)
1465790400000
>>> format_time(1465790400000)
'2016-06-13T04:00:00.000Z'
>>> resolve_query_time(-60000, now_ms=1_000_000, default=0)
940000
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import math
import re
from typing import Any

__all__ = [
    "SECONDS_BELOW",
    "MIN_MS",
    "MAX_MS",
    "parse_input_time",
    "format_time",
    "resolve_query_time",
]

# A positive input time below this is epoch *seconds*, at or above it epoch
# *milliseconds*. 1e11 s is the year 5138 and 1e11 ms is 1973-03-03, so no
# realistic state time is ambiguous: seconds stay below it until 5138 and
# milliseconds have been above it since 1973. Losant does not document its
# rule (REFERENCE.md §1 [I]).
SECONDS_BELOW = 100_000_000_000

# Times must fit a four-digit year, the range ``format_time`` can print:
# 0001-01-01T00:00:00.000Z .. 9999-12-31T23:59:59.999Z.
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
MIN_MS = -62_135_596_800_000
MAX_MS = 253_402_300_799_999

_EPOCH_ORDINAL = _EPOCH.toordinal()

# The longest time text read: the longest real form, JavaScript's Date.toString() with a
# long zone name, is under 80 characters. Longer text is unreadable without being read:
# the regexes below backtrack polynomially on long runs of spaces ("Mon Jan 1 2016" and
# 20,000 spaces took 2.8 s), and a state's ``time`` may be megabytes long.
MAX_TIME_TEXT = 128
_DAY_MS = 86_400_000

# "\d+\.?\d*" would split a digit run between \d+ and \d* every possible way before
# failing (quadratic: 20,000 digits and an "x" took 38 s); with the dot required
# between them a run has one split.
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

# ISO-8601 as JavaScript's Date.parse reads it: YYYY, YYYY-MM, YYYY-MM-DD,
# optionally followed by T (or a space) and HH:MM[:SS[.fraction]] and a zone.
_ISO_RE = re.compile(
    r"(?P<y>\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2}))?)?"
    r"(?:[Tt ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d+))?)?)?"
    r"\s*(?P<z>[Zz]|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?"
)

# Slash dates, "2016/06/13 04:00:00" (Date.parse reads them; we take UTC).
_SLASH_RE = re.compile(
    r"(?P<y>\d{4})/(?P<mo>\d{1,2})/(?P<d>\d{1,2})"
    r"(?:[ T](?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d+))?)?)?"
    r"\s*(?P<z>[Zz]|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?"
)

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}

# JavaScript Date.prototype.toString() and friends:
# "Mon Jun 13 2016 04:00:00 GMT+0000 (Coordinated Universal Time)",
# "June 13, 2016 04:00:00", "Jun 13 2016".
_JS_RE = re.compile(
    r"(?:[A-Za-z]{3,9},?\s+)?(?P<mon>[A-Za-z]{3,9})\.?\s+(?P<d>\d{1,2}),?\s+(?P<y>\d{4})"
    r"(?:,?\s+(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d+))?)?)?"
    r"\s*(?:(?:GMT|UTC)?(?P<z>[+-]\d{2}:?\d{2})|(?P<zz>GMT|UTC|Z))?"
    r"(?:\s*\([^)]*\))?"
)


def _in_range(ms: int) -> int | None:
    return ms if MIN_MS <= ms <= MAX_MS else None


def _number_ms(value: float, now_ms: int) -> int | None:
    """Epoch ms for a numeric input time, by the magnitude rule."""
    if not math.isfinite(value):
        return None
    if value < 0:
        # "that many milliseconds before now" (REFERENCE.md §1).
        return _in_range(now_ms + round(value))
    if value == 0:
        # Zero ms before now is now; epoch 0 is never a real state time.
        return now_ms
    if value < SECONDS_BELOW:
        return _in_range(round(value * 1000))
    if value > MAX_MS:
        return None
    return round(value)


def _offset_minutes(zone: str | None) -> int:
    """Minutes east of UTC for a zone suffix; no zone means UTC.

    JavaScript reads a date-time without a zone as *local* time; the emulator
    has no meaningful local zone, so we read it as UTC.
    """
    if not zone or zone.upper() in ("Z", "UTC", "GMT"):
        return 0
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:4]) if len(digits) > 2 else 0
    if hours > 23 or minutes > 59:
        raise ValueError(zone)
    return sign * (hours * 60 + minutes)


def _fields_ms(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    fraction: str | None = None,
    zone: str | None = None,
) -> int | None:
    """Epoch ms from calendar fields, None when a field is out of range."""
    try:
        if year < 1:
            return None
        stamp = _dt.datetime(year, month, day, hour, minute, second, tzinfo=_dt.timezone.utc)
        offset = _offset_minutes(zone)
    except ValueError:
        return None
    ms = int((stamp - _EPOCH).total_seconds()) * 1000
    if fraction:
        # Milliseconds are all JavaScript keeps; truncate the rest.
        ms += int((fraction + "00")[:3])
    return _in_range(ms - offset * 60_000)


def _match_fields(m: re.Match[str], month: int | None = None) -> int | None:
    g = m.groupdict()
    return _fields_ms(
        int(g["y"]),
        month if month is not None else int(g.get("mo") or 1),
        int(g.get("d") or 1),
        int(g.get("h") or 0),
        int(g.get("mi") or 0),
        int(g.get("s") or 0),
        g.get("f"),
        g.get("z") or g.get("zz"),
    )


def _string_ms(text: str, now_ms: int) -> int | None:
    text = text.strip()
    if not text or len(text) > MAX_TIME_TEXT:
        return None
    if _NUMBER_RE.fullmatch(text):
        return _number_ms(float(text), now_ms)
    m = _ISO_RE.fullmatch(text)
    if m:
        return _match_fields(m)
    m = _SLASH_RE.fullmatch(text)
    if m:
        return _match_fields(m)
    m = _JS_RE.fullmatch(text)
    if m:
        month = _MONTHS.get(m.group("mon")[:3].lower())
        return None if month is None else _match_fields(m, month)
    return _rfc2822_ms(text)


def _rfc2822_ms(text: str) -> int | None:
    """RFC 2822 (``Mon, 13 Jun 2016 04:00:00 GMT``), as HTTP and e-mail write it."""
    try:
        stamp = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if stamp is None:  # pragma: no cover - older Pythons returned None
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=_dt.timezone.utc)
    delta = stamp - _EPOCH
    return _in_range((delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000)


def parse_input_time(value: Any, now_ms: int) -> int | None:
    """Epoch ms for a state, command or event time; None when unreadable.

    Accepted (REFERENCE.md §1 "time in"):

    - ISO-8601: ``2016-06-13T04:00:00.000Z``, without ms, with an offset
      (``+02:00``, ``+0200``, ``+02``), date only (``2016-06-13``, midnight UTC),
      ``2016-06``, ``2016``. No zone is read as UTC (JavaScript would use
      the server's local zone).
    - Other ``Date.parse`` forms: RFC 2822 ``Mon, 13 Jun 2016 04:00:00 GMT``,
      JavaScript ``Date.toString()``, ``June 13, 2016``, ``2016/06/13 04:00``.
    - A number or numeric string: negative = that many ms before ``now_ms``;
      0 = now; below ``SECONDS_BELOW`` (1e11) = epoch seconds (fractions
      kept to the ms); otherwise epoch ms.
    - ``{"$date": <any of the above>}`` and ``{"$date": {"$numberLong": "<ms>"}}``.

    None, booleans, NaN, infinities, other types and times outside years
    1..9999 give None; callers treat None as "now".

    >>> parse_input_time(1465790400, now_ms=0)
    1465790400000
    >>> parse_input_time(-1000, now_ms=5000)
    4000
    >>> parse_input_time({"$date": "2016-06-13"}, now_ms=0)
    1465776000000
    >>> parse_input_time("yesterday", now_ms=0) is None
    True
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return _number_ms(float(value), now_ms) if isinstance(value, float) else _int_ms(value, now_ms)
    if isinstance(value, str):
        return _string_ms(value, now_ms)
    if isinstance(value, dict) and set(value) == {"$date"}:
        inner = value["$date"]
        if isinstance(inner, dict) and set(inner) == {"$numberLong"}:
            inner = inner["$numberLong"]
        if isinstance(inner, dict):
            return None
        return parse_input_time(inner, now_ms)
    return None


def _int_ms(value: int, now_ms: int) -> int | None:
    """Integers exactly (floats lose precision past 2**53)."""
    if value < 0:
        return _in_range(now_ms + value)
    if value == 0:
        return now_ms
    if value < SECONDS_BELOW:
        return value * 1000
    return value if value <= MAX_MS else None


def format_time(ms: int) -> str:
    """ISO-8601 UTC with milliseconds, the shape Losant answers with.

    Computed from integer day and ms-of-day parts rather than through
    ``datetime.strftime`` because it runs once per returned point.

    >>> format_time(0)
    '1970-01-01T00:00:00.000Z'
    >>> format_time(-1)
    '1969-12-31T23:59:59.999Z'
    """
    ms = int(ms)
    if not MIN_MS <= ms <= MAX_MS:
        raise ValueError(f"time {ms} ms is outside years 1..9999")
    days, rem = divmod(ms, _DAY_MS)
    day = _dt.date.fromordinal(_EPOCH_ORDINAL + days)
    secs, milli = divmod(rem, 1000)
    hour, secs = divmod(secs, 3600)
    minute, sec = divmod(secs, 60)
    return (
        f"{day.year:04d}-{day.month:02d}-{day.day:02d}"
        f"T{hour:02d}:{minute:02d}:{sec:02d}.{milli:03d}Z"
    )


def resolve_query_time(value: Any, now_ms: int, default: int) -> int:
    """Absolute epoch ms for a query ``start``/``end``; ValueError for garbage.

    Rule (REFERENCE.md §1 "relative query times"): None (or an empty string,
    as a bare ``start=`` query parameter arrives) takes ``default``, which is
    then resolved by the same rule; 0 is now; a negative number is that many
    ms before now; a positive number is absolute epoch ms (no seconds
    guessing here: composite state's default start of 1 means 1 ms after the
    epoch). Numeric strings read as numbers; other strings (and ``$date``
    objects) are read as times by ``parse_input_time``. Fractional ms round.

    >>> resolve_query_time(None, now_ms=9000, default=0)
    9000
    >>> resolve_query_time("1465790400000", now_ms=0, default=0)
    1465790400000
    >>> resolve_query_time("2016-06-13T04:00:00Z", now_ms=0, default=0)
    1465790400000
    """
    raw = value
    if isinstance(value, str) and len(value.strip()) > MAX_TIME_TEXT:
        raise ValueError(f"time text of {len(value)} characters is too long to be a time")
    if value is None or (isinstance(value, str) and not value.strip()):
        value = default
    if isinstance(value, bool):
        raise ValueError(f"time {raw!r} must be a number of ms or a date string, not a boolean")
    if isinstance(value, str) and _NUMBER_RE.fullmatch(value.strip()):
        text = value.strip()
        value = int(text) if text.lstrip("+-").isdigit() else float(text)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"time {raw!r} is not a finite number")
        number = int(value) if isinstance(value, int) else round(value)
        ms = now_ms + number if number <= 0 else number
        if not MIN_MS <= ms <= MAX_MS:
            raise ValueError(f"time {raw!r} is outside years 1..9999")
        return ms
    if isinstance(value, (str, dict)):
        parsed = parse_input_time(value, now_ms)
        if parsed is not None:
            return parsed
    raise ValueError(
        f"time {raw!r} is not readable: expected epoch ms (0 = now, negative = ms before now) "
        "or an ISO-8601 date string"
    )
