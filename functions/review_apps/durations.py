"""Durations as people write them in YAML and settings: `90s`, `30m`, `2h`, `1h30m`, `1d`."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_PART = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class DurationError(ValueError):
    pass


def parse_duration(text: str | int) -> int:
    """Seconds in `text`; a bare integer means seconds."""
    if isinstance(text, bool):
        raise DurationError("is not a duration; write it like 45m, 2h or 1h30m")
    if isinstance(text, int):
        seconds = text
    else:
        raw = str(text).strip().lower().replace(" ", "")
        if raw.isdigit():
            seconds = int(raw)
        else:
            parts = _PART.findall(raw)
            if not raw or "".join(n + u for n, u in parts) != raw:
                raise DurationError("is not a duration; write it like 45m, 2h or 1h30m")
            seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise DurationError("must be longer than zero")
    return seconds


def format_duration(seconds: int) -> str:
    """`5400` → `1h30m`; the inverse of parse_duration for whole minutes and hours."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if secs or not out:
        out += f"{secs}s"
    return out


def format_utc(epoch: int) -> str:
    """A moment as the MR note shows it: `2026-11-26 21:30 UTC`."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
