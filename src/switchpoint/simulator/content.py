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
import time
from collections import OrderedDict
from collections.abc import Callable
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
    #: Audio clips, videos and documents read (``media_seen`` counts them by MIME type).
    audio: int = 0
    videos: int = 0
    documents: int = 0
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
    family: Literal["openai", "anthropic", "gemini"] = "openai"
    breakpoints: dict[int, bool] = field(default_factory=dict)
    """Anthropic breakpoints by prefix boundary (0: after the tools, k + 1: after turn k),
    the value True when that breakpoint asked for the 1-hour TTL."""
    cache_key: str = ""
    """OpenAI's ``prompt_cache_key``: prefixes are looked up among those sent with the same key."""


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


#: How long a cached prefix lives after its last use, in seconds, per family / TTL.
TTL_5M = 300.0
TTL_1H = 3600.0
#: Anthropic looks for an earlier cache entry at most this many blocks before a breakpoint
#: (the simulator's blocks are turns).
ANTHROPIC_LOOKBACK = 20
#: OpenAI caches in steps of this many tokens past the first 1024.
OPENAI_CACHE_STEP = 128


def cache_min_tokens(family: str, model: str) -> int:
    """The shortest prompt prefix a family caches for ``model`` (the providers' published
    minimums: Anthropic 1024, 2048 for Haiku 3/3.5, 4096 for Haiku 4.5 and Opus 4.5; OpenAI
    1024; Gemini implicit caching 1024 for Flash, 4096 for Pro)."""
    name = model.lower()
    if family == "anthropic":
        if "haiku-4-5" in name or "opus-4-5" in name:
            return 4096
        return 2048 if "haiku" in name else CACHE_MIN_TOKENS
    if family == "gemini" and "pro" in name:
        return 4096
    return CACHE_MIN_TOKENS


class PromptCache:
    """Prompt prefixes seen recently, each alive until its TTL passes without a use (bounded:
    least recently used out). ``clock`` is monotonic seconds (tests pass their own)."""

    __slots__ = ("_capacity", "_clock", "_entries")

    def __init__(self, capacity: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = capacity
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, float]] = OrderedDict()  # key -> (expiry, ttl)

    def alive(self, key: bytes) -> bool:
        """Whether ``key`` is cached now; a hit refreshes its TTL."""
        entry = self._entries.get(key)
        if entry is None:
            return False
        now = self._clock()
        if entry[0] <= now:
            del self._entries[key]
            return False
        self._entries[key] = (now + entry[1], entry[1])
        self._entries.move_to_end(key)
        return True

    def store(self, key: bytes, ttl: float) -> None:
        if self._capacity <= 0:
            return
        entries = self._entries
        old = entries.get(key)
        if old is not None:
            ttl = max(ttl, old[1])
        entries[key] = (self._clock() + ttl, ttl)
        entries.move_to_end(key)
        while len(entries) > self._capacity:
            entries.popitem(last=False)

    def lookup_and_store(self, boundaries: list[tuple[bytes, int]], ttl: float = TTL_5M) -> int:
        """Tokens of the longest live prefix among ``boundaries``; then remember them all."""
        cached = 0
        for key, tokens in reversed(boundaries):
            if self.alive(key):
                cached = tokens
                break
        for key, _ in boundaries:
            self.store(key, ttl)
        return cached


def count_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def prompt_tokens(conv: Conversation) -> int:
    """The cheap input-token estimate: ≈ chars/4 plus per-message, per-image and per-tool costs."""
    total = (
        3
        + (conv.images + conv.audio + conv.videos + conv.documents) * IMAGE_TOKENS
        + (conv.tool_chars + 3) // 4
        + TOOL_OVERHEAD * len(conv.tools)
    )
    for _, text in conv.turns:
        total += MESSAGE_OVERHEAD + (len(text) + 3) // 4
    return total


def _digests(conv: Conversation, seed: int, total: int) -> tuple[bytes, list[tuple[bytes, int]]]:
    """The conversation's hash, and (prefix hash, tokens) at every prefix boundary: after the
    tools (index 0), then after each turn (index k + 1)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(seed.to_bytes(8, "little", signed=True))
    h.update(conv.model.encode())
    for tool in conv.tools:
        h.update(b"\x00tool:")
        h.update(tool.name.encode())
        if tool.schema is not None:
            h.update(json.dumps(tool.schema, sort_keys=True, default=str).encode())
    tokens = total - sum(MESSAGE_OVERHEAD + (len(t) + 3) // 4 for _, t in conv.turns)
    boundaries: list[tuple[bytes, int]] = [(h.copy().digest(), tokens)]
    for role, text in conv.turns:
        h.update(b"\x00")
        h.update(role.encode())
        h.update(b"\x00")
        h.update(text.encode("utf-8", "surrogatepass"))
        tokens += MESSAGE_OVERHEAD + (len(text) + 3) // 4
        boundaries.append((h.copy().digest(), tokens))
    return h.digest(), boundaries


def _namespaced(boundaries: list[tuple[bytes, int]], prefix: bytes) -> list[tuple[bytes, int]]:
    if not prefix:
        return boundaries
    return [(hashlib.blake2b(prefix + key, digest_size=16).digest(), t) for key, t in boundaries]


def _anthropic_cache(
    conv: Conversation, boundaries: list[tuple[bytes, int]], cache: PromptCache, usage: Usage
) -> None:
    """Anthropic's rules: only breakpoints (``cache_control``) cache. A read is the longest
    live prefix at or up to :data:`ANTHROPIC_LOOKBACK` boundaries before a breakpoint; the
    write is the prefix up to the last breakpoint past the read (when that is over the model's
    minimum), each part between two breakpoints at the TTL of the breakpoint that ends it (the
    1-hour part reported apart). Prefixes under the minimum are never cached."""
    minimum = cache_min_tokens("anthropic", conv.model)
    marks = sorted(i for i in conv.breakpoints if i < len(boundaries))
    if not marks:
        return
    read = 0
    for mark in marks:
        for j in range(mark, max(-1, mark - ANTHROPIC_LOOKBACK - 1), -1):
            key, tokens = boundaries[j]
            if tokens >= minimum and tokens > read and cache.alive(key):
                read = tokens
                break
    written = written_1h = 0
    start = read
    for mark in marks:
        key, tokens = boundaries[mark]
        if tokens < minimum or tokens <= read:
            continue
        one_hour = conv.breakpoints[mark]
        cache.store(key, TTL_1H if one_hour else TTL_5M)
        if tokens > start:  # the part from the previous breakpoint is written at this one's TTL
            written += tokens - start
            if one_hour:
                written_1h += tokens - start
            start = tokens
    usage.cached_tokens = read
    usage.cache_write_tokens = written
    usage.cache_write_1h_tokens = written_1h


def _automatic_cache(
    conv: Conversation, boundaries: list[tuple[bytes, int]], cache: PromptCache, usage: Usage
) -> None:
    """OpenAI and Gemini cache every prompt over the minimum by itself: the longest live
    prefix is read (OpenAI: 1024 tokens and then steps of 128, among prompts with the same
    ``prompt_cache_key``; Gemini: the prefix as is), and every prefix is remembered."""
    minimum = cache_min_tokens(conv.family, conv.model)
    if usage.input_tokens < minimum:
        return
    keyed = _namespaced([b for b in boundaries if b[1] >= minimum], conv.cache_key.encode())
    read = cache.lookup_and_store(keyed, TTL_5M)
    if read and conv.family == "openai":
        read = minimum + (read - minimum) // OPENAI_CACHE_STEP * OPENAI_CACHE_STEP
    usage.cached_tokens = read


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
    if conv.audio or conv.videos or conv.documents:
        pieces += _split_words(_media_sentence(conv))
    if len(pieces) < target:
        pieces += _words(digest, target - len(pieces))
    return pieces


def media_seen(conv: Conversation, media_type: str) -> None:
    """Count one audio, video or document input of ``media_type`` (images are counted apart)."""
    major = media_type.partition("/")[0].lower()
    if major == "audio":
        conv.audio += 1
    elif major == "video":
        conv.videos += 1
    elif major != "image":
        conv.documents += 1


def _media_sentence(conv: Conversation) -> str:
    said = [
        f"{n} {noun if n == 1 else noun + 's'}"
        for n, noun in ((conv.audio, "audio clip"), (conv.videos, "video"), (conv.documents, "document"))
        if n
    ]
    return "I received " + " and ".join(said) + "."


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
    if conv.explicit_cache:
        _anthropic_cache(conv, boundaries, cache, usage)
    else:
        _automatic_cache(conv, boundaries, cache, usage)
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
