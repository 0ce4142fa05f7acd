"""How long an OpenAI-family provider asks a client to wait, read from its answer's headers."""

from __future__ import annotations

import email.utils
import math
import re
import time
from typing import Any

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(value: str, scale: float = 1.0) -> float | None:
    """A finite, non-negative number of seconds, or ``None``."""
    try:
        seconds = float(value) * scale
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _duration(value: str) -> float | None:
    """``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m3.5s"`` or plain seconds, as seconds."""
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    parts = _DURATION_RE.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value.strip():
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def _http_date(value: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when.tzinfo is not None else None


def retry_after(headers: Any) -> float | None:
    """Seconds to wait before trying again, from an OpenAI-family answer's headers: ``retry-after-ms``,
    ``retry-after`` (seconds or an HTTP date), else the sooner reset among the exhausted
    ``x-ratelimit-reset-*`` windows (or any window, when none is exhausted); None when none says."""
    ms = headers.get("retry-after-ms")
    seconds = _seconds(ms, 0.001) if ms else None
    value = headers.get("retry-after")
    if seconds is None and value:
        seconds = _seconds(value)
        if seconds is None:
            seconds = _http_date(value)
    if seconds is not None:
        return seconds
    resets = []
    for kind in ("requests", "tokens"):
        reset = headers.get(f"x-ratelimit-reset-{kind}")
        after = _duration(reset) if reset else None
        if after is not None:
            exhausted = headers.get(f"x-ratelimit-remaining-{kind}") == "0"
            resets.append((not exhausted, after))
    return min(resets)[1] if resets else None
