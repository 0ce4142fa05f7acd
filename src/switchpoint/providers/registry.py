"""The table of wire families. A new family is one adapter module and one row here."""

from __future__ import annotations

from switchpoint.providers.anthropic import AnthropicAdapter
from switchpoint.providers.base import Adapter
from switchpoint.providers.bedrock import BedrockAdapter
from switchpoint.providers.gemini import GeminiAdapter
from switchpoint.providers.openai import OpenAIAdapter
from switchpoint.providers.vertex import VertexAdapter

_ANTHROPIC = AnthropicAdapter()
_GEMINI = GeminiAdapter()

ADAPTERS: dict[str, Adapter] = {
    "openai": OpenAIAdapter(),
    "anthropic": _ANTHROPIC,
    "gemini": _GEMINI,
    # Cloud hosts of the same models compose the families they carry (docs/decisions.md).
    "bedrock": BedrockAdapter(messages=_ANTHROPIC),
    "vertex": VertexAdapter(gemini=_GEMINI, anthropic=_ANTHROPIC),
}
