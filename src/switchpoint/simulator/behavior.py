"""Scripted behaviour of the simulated provider: timing and fault injection.

A :class:`Behavior` can come from four places; the first one that sets a field wins:
request header ``x-sim-<field>`` > directive ``[[sim field=value …]]`` in the last user
message > the model's entry in :class:`SimConfig` > ``SimConfig.default``. The merged
result is a concrete :class:`Plan`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

import msgspec

from .common import SimError

NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Count = Annotated[int, msgspec.Meta(ge=0)]
ErrorStatus = Annotated[int, msgspec.Meta(ge=400, le=599)]
Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]

DEFAULT_OUTPUT_TOKENS = 24
HANG_LIMIT_S = 3600.0


class Behavior(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """What the simulator does for a request; ``None`` means "not set here"."""

    latency_ms: NonNegative | None = None
    """Delay before the response starts (headers included)."""
    ttft_ms: NonNegative | None = None
    """Streams: delay before the first content chunk. Non-streamed answers wait it too."""
    tokens_per_s: NonNegative | None = None
    """Stream pacing; 0 sends every piece at once."""
    output_tokens: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None
    status: ErrorStatus | None = None
    """Answer this HTTP error status, in the wire's own error format."""
    retry_after_s: NonNegative | None = None
    """Sets ``Retry-After`` on 429, 503 and 529 answers."""
    fail_rate: Probability | None = None
    """Probability of answering ``fail_status`` (seeded RNG)."""
    fail_status: ErrorStatus | None = None
    hang: bool | None = None
    """Never answer; wait until the client goes away (at most an hour)."""
    cut_after: Count | None = None
    """Drop the connection after this many content chunks, without the terminal event."""
    malformed: bool | None = None
    """Answer a body (or a stream frame) that is not valid JSON."""
    bad_json_rate: Probability | None = None
    """Probability that a JSON answer (JSON mode, a schema, a tool call's arguments) is cut
    short, so it no longer parses; the wire's framing stays valid (seeded RNG)."""
    stall_ms: NonNegative | None = None
    """Streams: pause this long before content chunk number ``stall_after``."""
    stall_after: Count | None = None


FIELDS: frozenset[str] = frozenset(Behavior.__struct_fields__)


class SimConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Configuration of one simulator instance."""

    default: Behavior = msgspec.field(default_factory=Behavior)
    models: dict[str, Behavior] = msgspec.field(default_factory=dict)
    """Per-model behaviour, by the exact model name of the request."""
    seed: int = 0
    require_auth: bool = True
    embedding_dimensions: Annotated[int, msgspec.Meta(ge=1, le=8192)] = 256
    model_ids: list[str] = msgspec.field(
        default_factory=lambda: ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
    )
    """Listed by ``GET /openai/v1/models`` (with the keys of ``models``)."""
    cache_entries: Annotated[int, msgspec.Meta(ge=0)] = 4096
    """Bound of the prompt-prefix cache (entries)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A fully resolved behaviour, in seconds."""

    latency_s: float = 0.0
    ttft_s: float = 0.0
    tokens_per_s: float = 0.0
    output_tokens: int = DEFAULT_OUTPUT_TOKENS
    status: int = 0
    retry_after_s: float | None = None
    fail_rate: float = 0.0
    fail_status: int = 500
    hang: bool = False
    cut_after: int | None = None
    malformed: bool = False
    bad_json_rate: float = 0.0
    stall_s: float = 0.0
    stall_after: int = 1

    @property
    def paced(self) -> bool:
        """True when the stream has to wait between frames (so it is sent frame by frame)."""
        return self.ttft_s > 0 or self.tokens_per_s > 0 or self.stall_s > 0


def merge(top: Behavior, base: Behavior) -> Behavior:
    """Fields of ``top`` where set, else those of ``base``."""
    values = {}
    for name in Behavior.__struct_fields__:
        value = getattr(top, name)
        values[name] = getattr(base, name) if value is None else value
    return Behavior(**values)


def to_plan(b: Behavior) -> Plan:
    return Plan(
        latency_s=(b.latency_ms or 0.0) / 1000,
        ttft_s=(b.ttft_ms or 0.0) / 1000,
        tokens_per_s=b.tokens_per_s or 0.0,
        output_tokens=b.output_tokens or DEFAULT_OUTPUT_TOKENS,
        status=b.status or 0,
        retry_after_s=b.retry_after_s,
        fail_rate=b.fail_rate or 0.0,
        fail_status=b.fail_status or 500,
        hang=bool(b.hang),
        cut_after=b.cut_after,
        malformed=bool(b.malformed),
        bad_json_rate=b.bad_json_rate or 0.0,
        stall_s=(b.stall_ms or 0.0) / 1000,
        stall_after=1 if b.stall_after is None else b.stall_after,
    )


def _convert(raw: dict[str, str], where: str) -> Behavior:
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise SimError(400, f"invalid simulator {where}: unknown field {unknown[0]!r}")
    try:
        return msgspec.convert(raw, Behavior, strict=False)
    except msgspec.ValidationError as exc:
        raise SimError(400, f"invalid simulator {where}: {exc}") from None


_DIRECTIVE = re.compile(r"\[\[sim(?=[\s\]])([^\]]*)\]\]")
_OPENING = re.compile(r"\[\[sim(?:\s|\]|$)")


def parse_directive(text: str) -> Behavior | None:
    """The behaviour of a ``[[sim key=value …]]`` directive in ``text``, if there is one.

    A bare ``key`` means ``key=true``; keys may use ``-`` or ``_``. Raises :class:`SimError`
    (400) on an unknown key or a bad value.
    """
    if "[[sim" not in text:
        return None
    match = _DIRECTIVE.search(text)
    if match is None:
        if _OPENING.search(text):
            raise SimError(400, "invalid simulator directive: expected [[sim key=value ...]]")
        return None
    raw: dict[str, str] = {}
    for token in match.group(1).split():
        key, sep, value = token.partition("=")
        raw[key.replace("-", "_")] = value if sep else "true"
    return _convert(raw, "directive")


def parse_headers(headers: list[tuple[bytes, bytes]]) -> Behavior | None:
    """The behaviour set by ``x-sim-<field>`` request headers, if any."""
    raw: dict[str, str] | None = None
    for name, value in headers:
        if name.startswith(b"x-sim-"):
            if raw is None:
                raw = {}
            raw[name[6:].decode("latin-1").replace("-", "_")] = value.decode("latin-1").strip()
    return None if raw is None else _convert(raw, "header")


class Plans:
    """Resolves the plan of one request; plans of configured models are computed once."""

    __slots__ = ("_default", "_default_plan", "_model_plans", "_models")

    def __init__(self, config: SimConfig) -> None:
        self._default = config.default
        self._default_plan = to_plan(config.default)
        self._models = {name: merge(b, config.default) for name, b in config.models.items()}
        self._model_plans = {name: to_plan(b) for name, b in self._models.items()}

    def resolve(self, model: str, headers: list[tuple[bytes, bytes]], last_user_text: str) -> Plan:
        from_header = parse_headers(headers)
        from_text = parse_directive(last_user_text) if last_user_text else None
        if from_header is None and from_text is None:
            return self._model_plans.get(model, self._default_plan)
        merged = self._models.get(model, self._default)
        for layer in (from_text, from_header):
            if layer is not None:
                merged = merge(layer, merged)
        return to_plan(merged)
