"""The bundled price catalog: list prices of the major models, versioned with the package.

``data/prices.json`` holds USD per million tokens for input, cached input (cache reads), cache
writes (5-minute ``cache_write`` and 1-hour ``cache_write_1h``), output and reasoning, the
batch discount, and the long-context tier where a provider bills a whole request at higher
rates once its prompt passes a threshold. The config resolves each
deployment's price against it (fields given under ``deployments.<name>.price`` override the
catalog's); routing prices candidates with the result, accounting prices usage.

This module depends on nothing else in the package, so the config can use it.
"""

from __future__ import annotations

import functools
from importlib import resources

import msgspec


class Rates(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    input: float
    output: float
    cached_input: float | None = None
    #: The 5-minute cache write (Anthropic: 1.25 x input).
    cache_write: float | None = None
    #: The 1-hour cache write (Anthropic: 2 x input).
    cache_write_1h: float | None = None
    reasoning: float | None = None
    #: Audio and image endpoints, USD per unit (not per million): a second of audio
    #: transcribed, a character of speech, an image generated (docs/accounting.md).
    per_second: float | None = None
    per_character: float | None = None
    per_image: float | None = None


class LongContext(Rates, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: The tier applies to the whole request once its prompt has more tokens than this.
    above: int


class Entry(Rates, frozen=True, kw_only=True, forbid_unknown_fields=True):
    provider: str
    batch_discount: float = 0.0
    context_window: int | None = None
    long_context: LongContext | None = None


class Catalog(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    version: str
    currency: str
    unit: str
    models: dict[str, Entry]
    notes: str = ""
    sources: dict[str, str] = msgspec.field(default_factory=dict)


@functools.cache
def bundled() -> Catalog:
    """The catalog shipped in the package (read once)."""
    data = resources.files("switchpoint").joinpath("data/prices.json").read_bytes()
    return msgspec.json.decode(data, type=Catalog)


def lookup(model: str, catalog: Catalog | None = None) -> tuple[str, Entry] | None:
    """The catalog entry for an upstream model id, with the key it was found under.

    Tries the id itself, then without a ``vendor/`` prefix (OpenRouter style), then the
    longest catalog key the id starts with followed by ``-`` or ``@`` (dated snapshots such as
    ``claude-haiku-4-5-20251001`` or Vertex's ``claude-opus-4-7@20260101``).
    """
    models = (catalog or bundled()).models
    for candidate in (model, model.rsplit("/", 1)[-1]):
        entry = models.get(candidate)
        if entry is not None:
            return candidate, entry
    name = model.rsplit("/", 1)[-1]
    best: str | None = None
    for key in models:
        fits = len(name) > len(key) and name.startswith(key) and name[len(key)] in "-@"
        if fits and (best is None or len(key) > len(best)):
            best = key
    return (best, models[best]) if best is not None else None
