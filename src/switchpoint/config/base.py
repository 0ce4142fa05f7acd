"""Shared pieces of the config: secrets, capability names, the closed struct bases."""

from __future__ import annotations

import re
from typing import Literal

import msgspec

Family = Literal["openai", "anthropic", "gemini", "bedrock", "vertex"]
Capability = Literal[
    "tools", "vision", "json_schema", "streaming", "embeddings", "thinking", "audio", "video"
]
#: The default capabilities of a chat deployment; ``audio`` and ``video`` inputs are declared.
ALL_CAPABILITIES: tuple[Capability, ...] = ("tools", "vision", "json_schema", "streaming", "thinking")

_SECRET_RE = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")


class Secret:
    """A resolved secret. ``str()`` and ``repr()`` never show the value."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__


# --- the file's shape (closed: unknown keys are errors) -------------------------------------


class _Base(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class _Frozen(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True, omit_defaults=True):
    pass


def error_path(msg: str, prefix: str) -> str:
    # msgspec says "... - at `$.a.b`"; turn that into "prefix.a.b: ..."
    m = re.search(r" - at `\$(.*)`$", msg)
    if not m:
        return f"{prefix}: {msg}"
    return f"{prefix}{m.group(1)}: {msg[: m.start()]}"
