"""The table of wire families. A new family is one adapter module and one row here."""

from __future__ import annotations

from switchpoint.providers.anthropic import AnthropicAdapter
from switchpoint.providers.base import Adapter
from switchpoint.providers.gemini import GeminiAdapter
from switchpoint.providers.openai import OpenAIAdapter

ADAPTERS: dict[str, Adapter] = {
    "openai": OpenAIAdapter(),
    "anthropic": AnthropicAdapter(),
    "gemini": GeminiAdapter(),
}
