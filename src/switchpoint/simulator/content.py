"""What the simulated model answers: deterministic text, tool calls, JSON, thinking and usage.

The wire modules turn a request into a :class:`Conversation`; :func:`generate` turns that into
an :class:`Answer` (a list of token-sized pieces per part, plus usage); the wire modules render
it. The same conversation always gives the same answer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from .schemas import example_object, instance, looks_like_schema

IMAGE_TOKENS = 85
MESSAGE_OVERHEAD = 4
TOOL_OVERHEAD = 8
CACHE_MIN_TOKENS = 1024
JSON_PIECE_CHARS = 8

_VOCABULARY = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu amber basalt "
    "cobalt dune ember fjord granite harbor iris jade kelp lagoon meadow nectar onyx pebble quartz "
    "river saffron timber umber valley willow zephyr maple cedar birch aspen lotus orchid tulip "
    "violet crimson indigo silver"
)
_WORDS = tuple(_VOCABULARY.split())


@dataclass(slots=True)
class ToolSpec:
    name: str
    schema: Any = None


@dataclass(slots=True)
class Conversation:
    """The parts of a chat request that decide the answer, in wire-neutral form."""

    model: str
    turns: list[tuple[str, str]] = field(default_factory=list)
    """(role, text) per message, the system prompt first."""
    images: int = 0
    ends_with_user: bool = False
    last_user_text: str = ""
    tool_result: str | None = None
    """Text of the tool result that ends the conversation, if it ends with one."""
    tools: list[ToolSpec] = field(default_factory=list)
    tool_chars: int = 0
    tool_mode: Literal["auto", "any", "none"] = "auto"
    forced_tool: str | None = None
    parallel: bool = True
    json_mode: bool = False
    json_schema: Any = None
    thinking_tokens: int = 0
    max_tokens: int | None = None
    prefill: str = ""
    """A final assistant turn that opens a JSON document (Anthropic's prefill): the answer
    continues it."""
    explicit_cache: bool = False
    """Caching only when the request asks for it (``cache_control``), as Anthropic does."""
    cache_control: bool = False
    """A breakpoint asked for the 1-hour TTL: the writes are reported as 1-hour writes."""
    cache_1h: bool = False


@dataclass(slots=True)
class ToolCall:
    key: str
    """Deterministic hex that each wire turns into its own id format."""
    name: str
    arguments: dict[str, Any]
    json: str
    pieces: list[str]


@dataclass(slots=True)
class Usage:
    input_tokens: int
    """The whole prompt, cached part included."""
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    """The part of ``cache_write_tokens`` written with the 1-hour TTL."""
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    """Everything generated: text, tool arguments and thinking."""
    thinking_tokens: int = 0


@dataclass(slots=True)
class Answer:
    text: list[str]
    thinking: list[str]
    signature: str
    calls: list[ToolCall]
    finish: Literal["stop", "length", "tool_calls"]
    usage: Usage

    @property
    def content(self) -> str:
        return "".join(self.text)


@dataclass(slots=True)
class ChatCall:
    """A parsed chat request: the conversation plus how the wire wants it answered."""

    conv: Conversation
    stream: bool = False
    include_usage: bool = False
    sse: bool = True
    show_thinking: bool = True


class PromptCache:
    """Prompt prefixes seen recently (bounded, least recently used out)."""

    __slots__ = ("_capacity", "_entries")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[bytes, None] = OrderedDict()

    def lookup_and_store(self, boundaries: list[tuple[bytes, int]]) -> int:
        """Tokens of the longest known prefix among ``boundaries``; then remember them all."""
        entries = self._entries
        cached = 0
        for key, tokens in reversed(boundaries):
            if key in entries:
                cached = tokens
                break
        if self._capacity <= 0:
            return cached
        for key, _ in boundaries:
            entries[key] = None
            entries.move_to_end(key)
        while len(entries) > self._capacity:
            entries.popitem(last=False)
        return cached


def count_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def prompt_tokens(conv: Conversation) -> int:
    """The cheap input-token estimate: ≈ chars/4 plus per-message, per-image and per-tool costs."""
    total = 3 + conv.images * IMAGE_TOKENS + (conv.tool_chars + 3) // 4 + TOOL_OVERHEAD * len(conv.tools)
    for _, text in conv.turns:
        total += MESSAGE_OVERHEAD + (len(text) + 3) // 4
    return total


def _digests(conv: Conversation, seed: int, total: int) -> tuple[bytes, list[tuple[bytes, int]]]:
    """The conversation's hash, and (prefix hash, tokens) at each message boundary when the
    prompt is long enough to be cached."""
    h = hashlib.blake2b(digest_size=16)
    h.update(seed.to_bytes(8, "little", signed=True))
    h.update(conv.model.encode())
    for tool in conv.tools:
        h.update(b"\x00tool:")
        h.update(tool.name.encode())
    boundaries: list[tuple[bytes, int]] = []
    tokens = total - sum(MESSAGE_OVERHEAD + (len(t) + 3) // 4 for _, t in conv.turns)
    for role, text in conv.turns:
        h.update(b"\x00")
        h.update(role.encode())
        h.update(b"\x00")
        h.update(text.encode("utf-8", "surrogatepass"))
        tokens += MESSAGE_OVERHEAD + (len(text) + 3) // 4
        if total >= CACHE_MIN_TOKENS and tokens >= CACHE_MIN_TOKENS:
            boundaries.append((h.copy().digest(), tokens))
    return h.digest(), boundaries


def _words(digest: bytes, count: int, offset: int = 0) -> list[str]:
    stream = digest
    block = 0
    while len(stream) < offset + count:
        block += 1
        stream += hashlib.blake2b(digest + block.to_bytes(4, "little"), digest_size=32).digest()
    vocab = _WORDS
    size = len(vocab)
    return [" " + vocab[b % size] for b in stream[offset : offset + count]]


def _split_words(sentence: str) -> list[str]:
    words = sentence.split()
    return [" " + w for w in words]


def _chunks(text: str) -> list[str]:
    return [text[i : i + JSON_PIECE_CHARS] for i in range(0, len(text), JSON_PIECE_CHARS)] or [""]


def _text_pieces(conv: Conversation, digest: bytes, target: int) -> list[str]:
    if conv.json_schema is not None or conv.json_mode or asks_for_json(conv):
        text = _json_text(conv, digest, target)
        opened = conv.prefill.strip()
        if opened and text.startswith(opened):
            text = text[len(opened) :]
        elif opened == "[":
            text += "]"
        return _chunks(text)
    pieces = [f"[simulated {conv.model}]"]
    if conv.tool_result is not None:
        snippet = " ".join(conv.tool_result.split())[:60]
        pieces += _split_words(f'The tool returned "{snippet}".')
    if conv.images:
        noun = "image" if conv.images == 1 else "images"
        pieces += _split_words(f"I see {conv.images} {noun}.")
    if len(pieces) < target:
        pieces += _words(digest, target - len(pieces))
    return pieces


def _json_text(conv: Conversation, digest: bytes, target: int) -> str:
    schema = conv.json_schema if conv.json_schema is not None else schema_in_prompt(conv)
    if schema is not None:
        doc = instance(schema)
    else:
        doc = {"simulated": conv.model, "answer": "".join(_words(digest, max(1, target - 8))).strip()}
    return msgspec.json.encode(doc).decode()


# An instruction to answer in JSON, in the system prompt or the last user turn: "Respond with a
# single valid JSON object", "provide the parsed objects in json", "The output should be formatted
# as a JSON instance", "Return JSON only" (but not "Write a function that parses JSON").
_VERBS = r"respond|reply|answer|return|output|format|provide|produce|emit|give|write|generate"
_JSON_ASK = re.compile(
    rf"\b({_VERBS})\w*\b[^.\n]{{0,60}}\b(in|as|with|using|into)\b[^.\n]{{0,30}}\bjson\b"
    r"|\b(respond|reply|answer|return|output|produce|emit)\w*\s+((only|valid|a|an|the|single|strict)\s+)*json\b",
    re.IGNORECASE,
)
_SCAN_CHARS = 200_000
_SCAN_ATTEMPTS = 500


def _instruction_texts(conv: Conversation) -> list[str]:
    """The system prompts and the last user turn (before a prefill, if there is one)."""
    texts = [text for role, text in conv.turns if role in ("system", "developer")]
    if conv.ends_with_user and conv.last_user_text:
        texts.append(conv.last_user_text)
    elif conv.prefill:
        texts += [text for role, text in conv.turns[-2:-1] if role == "user"]
    return texts


def asks_for_json(conv: Conversation) -> bool:
    """Whether the prompt tells the model to answer in JSON (as instructor's and LangChain's
    JSON modes do, and the gateway does for Anthropic, which has no ``json_object``)."""
    return any(_JSON_ASK.search(t[:_SCAN_CHARS]) for t in _instruction_texts(conv))


def schema_in_prompt(conv: Conversation) -> Any:
    """The last JSON schema written into the system prompt or the last user turn (JSON mode
    without a schema in the API: the client puts it in the prompt), or None."""
    decoder = json.JSONDecoder()
    found = None
    attempts = 0
    for text in _instruction_texts(conv):
        text = text[:_SCAN_CHARS]
        i = text.find("{")
        while i >= 0 and attempts < _SCAN_ATTEMPTS:
            attempts += 1
            try:
                value, end = decoder.raw_decode(text, i)
            except ValueError:
                i = text.find("{", i + 1)
                continue
            if looks_like_schema(value):
                found = value
            i = text.find("{", end)
    return found


def _tool_calls(conv: Conversation, digest: bytes) -> list[ToolCall]:
    by_name = {t.name: t for t in conv.tools}
    if conv.forced_tool is not None:
        chosen = [by_name.get(conv.forced_tool, ToolSpec(conv.forced_tool))]
    elif conv.parallel and len(conv.tools) >= 2 and "in parallel" in conv.last_user_text.lower():
        chosen = conv.tools[:2]
    else:
        chosen = conv.tools[:1]
    calls = []
    for index, tool in enumerate(chosen):
        args = example_object(tool.schema)
        text = msgspec.json.encode(args).decode()
        key = hashlib.blake2b(digest + bytes([index]), digest_size=12).hexdigest()
        calls.append(ToolCall(key=key, name=tool.name, arguments=args, json=text, pieces=_chunks(text)))
    return calls


def _wants_tool(conv: Conversation) -> bool:
    return bool(conv.tools) and conv.tool_mode != "none" and conv.ends_with_user and conv.tool_result is None


def generate(conv: Conversation, output_tokens: int, seed: int, cache: PromptCache) -> Answer:
    """The deterministic answer to ``conv`` (``output_tokens`` pieces of text by default)."""
    total = prompt_tokens(conv)
    digest, boundaries = _digests(conv, seed, total)
    usage = Usage(input_tokens=total)
    if boundaries and (conv.cache_control or not conv.explicit_cache):
        usage.cached_tokens = cache.lookup_and_store(boundaries)
        if conv.cache_control:
            usage.cache_write_tokens = total - usage.cached_tokens
            usage.cache_write_1h_tokens = usage.cache_write_tokens if conv.cache_1h else 0
    thinking: list[str] = []
    signature = ""
    if conv.thinking_tokens:
        thinking = ["Simulated", " reasoning:", *_words(digest, max(0, conv.thinking_tokens - 2), 7)]
        thinking = thinking[: conv.thinking_tokens]
        signature = base64.b64encode(
            hashlib.blake2b("".join(thinking).encode(), digest_size=48).digest()
        ).decode()
    calls: list[ToolCall] = []
    text: list[str] = []
    finish: Literal["stop", "length", "tool_calls"] = "stop"
    if _wants_tool(conv):
        calls = _tool_calls(conv, digest)
        finish = "tool_calls"
    else:
        text = _text_pieces(conv, digest, output_tokens)
        if conv.max_tokens is not None:
            room = max(0, conv.max_tokens - len(thinking))
            if len(text) > room:
                text = text[:room]
                finish = "length"
    usage.thinking_tokens = len(thinking)
    usage.output_tokens = len(text) + len(thinking) + sum(len(c.pieces) for c in calls)
    return Answer(text=text, thinking=thinking, signature=signature, calls=calls, finish=finish, usage=usage)
