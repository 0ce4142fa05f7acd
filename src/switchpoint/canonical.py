"""The one internal shape of requests, responses, stream events and usage.

Every ingress dialect decodes into these types and every provider adapter builds from them;
nothing here knows a wire format. Conventions that both sides rely on:

* ``Usage.input_tokens`` counts **every** prompt token, including those read from a prompt
  cache (``cached_input_tokens``) and those written to it (``cache_write_tokens``); the two
  are subsets of it. ``output_tokens`` counts every generated token, including reasoning
  (``reasoning_tokens`` is a subset). Adapters convert provider conventions to this.
* System and developer instructions are messages with role ``system`` (``developer`` keeps its
  own role so OpenAI passthrough can keep it), in the order the client sent them.
* Tool-call ``arguments`` are the JSON text exactly as the model produced it.
* ``raw`` on a request is the decoded ingress body, kept so that an upstream of the same wire
  family can receive it losslessly; ``raw`` on a response is the upstream body bytes, kept so
  that a client of the same family can receive them unchanged.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import msgspec

# --- message parts --------------------------------------------------------------------------


class TextPart(msgspec.Struct, tag="text", kw_only=True, omit_defaults=True):
    text: str
    #: Wire-specific leftovers of this part (e.g. Anthropic ``cache_control``, ``citations``).
    extra: dict[str, Any] | None = None


class ImagePart(msgspec.Struct, tag="image", kw_only=True, omit_defaults=True):
    """An image given by URL (``url``) or inline (``data`` base64 + ``media_type``)."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: str | None = None
    extra: dict[str, Any] | None = None


class ToolCallPart(msgspec.Struct, tag="tool_call", kw_only=True, omit_defaults=True):
    id: str
    name: str
    arguments: str = "{}"
    extra: dict[str, Any] | None = None


class ToolResultPart(msgspec.Struct, tag="tool_result", kw_only=True, omit_defaults=True):
    tool_call_id: str
    content: list[TextPart | ImagePart] = msgspec.field(default_factory=list)
    is_error: bool = False
    #: The tool's name when the wire carries it (Gemini needs it; OpenAI/Anthropic do not).
    name: str | None = None
    extra: dict[str, Any] | None = None


class ThinkingPart(msgspec.Struct, tag="thinking", kw_only=True, omit_defaults=True):
    """Model reasoning. ``redacted`` holds opaque encrypted data when the text is hidden."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None
    extra: dict[str, Any] | None = None


Modality: TypeAlias = Literal["audio", "video", "document"]


class MediaPart(msgspec.Struct, tag="media", kw_only=True, omit_defaults=True):
    """Audio, video or a document (a PDF, plain text), inline (``data`` base64 with its
    ``media_type``) or by reference: ``url`` (https, ``gs://``) or ``file_id`` (a file held by
    the upstream, OpenAI Files). ``kind`` is the modality routing asks a capability for
    (``audio``, ``video``; documents need none)."""

    kind: Modality
    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    file_id: str | None = None
    filename: str | None = None
    extra: dict[str, Any] | None = None


Part: TypeAlias = TextPart | ImagePart | ToolCallPart | ToolResultPart | ThinkingPart | MediaPart

#: Key under which the Anthropic dialect keeps blocks the canonical model has no part for
#: (documents, search results, server-tool blocks) in ``Message.extra`` / ``ToolResultPart.extra``,
#: as ``[[position, block], ...]``. Only an Anthropic upstream can receive them.
ANTHROPIC_BLOCKS = "anthropic_blocks"

Role: TypeAlias = Literal["system", "developer", "user", "assistant", "tool"]


class Message(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: Role
    parts: list[Part] = msgspec.field(default_factory=list)
    name: str | None = None
    extra: dict[str, Any] | None = None

    def text(self) -> str:
        """The concatenated text parts (convenience for routing and token estimates)."""
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))


# --- request --------------------------------------------------------------------------------


class Tool(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    description: str | None = None
    #: JSON Schema of the arguments object.
    parameters: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None
    extra: dict[str, Any] | None = None


class ToolChoice(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``auto`` (model decides), ``none``, ``required`` (some tool), ``tool`` (the named one)."""

    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None


class ResponseFormat(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None
    description: str | None = None


class Thinking(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Reasoning controls: a token budget (Anthropic, Gemini) and/or an effort level (OpenAI)."""

    enabled: bool = True
    budget_tokens: int | None = None
    effort: Literal["minimal", "low", "medium", "high"] | None = None


Dialect: TypeAlias = Literal["openai", "anthropic"]


class PromptCachePlan(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Provider prompt caching the gateway adds to a request (``cache/prompt.py`` decides it,
    the adapter of the upstream's family applies it; docs/caching.md)."""

    #: Anthropic: the TTL of the breakpoints the gateway places.
    ttl: Literal["5m", "1h"] = "5m"
    #: OpenAI: the ``prompt_cache_key`` to send when the client sent none.
    key: str | None = None


class ChatRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    model: str
    messages: list[Message]
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    thinking: Thinking | None = None
    stream: bool = False
    #: Keep the answer for later reads (OpenAI ``store``; the Responses API's default is true).
    store: bool = False
    #: The client asked for usage in the stream (OpenAI ``stream_options.include_usage``).
    include_usage: bool = False
    #: Which wire the client spoke.
    dialect: Dialect = "openai"
    #: The decoded ingress body, for lossless passthrough to an upstream of the same family.
    raw: dict[str, Any] | None = None
    #: Provider-specific request headers to pass through (e.g. ``anthropic-beta``).
    passthrough_headers: dict[str, str] | None = None
    #: A Responses API body as the client sent it (decoded): forwarded unchanged to an
    #: OpenAI-family deployment that serves that API (``responses_api``); others translate.
    responses_body: dict[str, Any] | None = None
    #: Prompt caching the gateway adds upstream (None: none).
    prompt_cache: PromptCachePlan | None = None


class EmbeddingRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    model: str
    inputs: list[str]
    dimensions: int | None = None
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None
    raw: dict[str, Any] | None = None


MediaOperation: TypeAlias = Literal[
    "audio/transcriptions", "audio/translations", "audio/speech", "images/generations"
]


class MediaFile(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A file of a multipart request (the audio of a transcription)."""

    field: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None


class MediaRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A request of the audio and image endpoints (OpenAI's wire, the one they have):
    forwarded as it came but for ``model``, JSON (``fields``) or multipart (``fields`` as text
    and ``files``)."""

    operation: MediaOperation
    model: str
    fields: dict[str, Any]
    files: list[MediaFile] = msgspec.field(default_factory=list)
    multipart: bool = False
    user: str | None = None


class MediaUnits(msgspec.Struct, frozen=True, kw_only=True):
    """What a media request is billed by: seconds of audio in, characters of speech out, or
    images made."""

    unit: Literal["seconds", "characters", "images"]
    quantity: float


class MediaResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The upstream's answer, passed to the client as it came (JSON, text or audio bytes)."""

    body: bytes
    content_type: str
    units: MediaUnits | None = None


# --- response -------------------------------------------------------------------------------

FinishReason: TypeAlias = Literal[
    "stop", "length", "tool_calls", "content_filter", "stop_sequence", "pause", "error"
]


class Usage(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    input_tokens: int = 0
    cached_input_tokens: int = 0
    #: Every cache write (Anthropic: 5-minute and 1-hour together).
    cache_write_tokens: int = 0
    #: The part of ``cache_write_tokens`` written with a 1-hour TTL (Anthropic), billed at its own rate.
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def merge(self, other: Usage) -> Usage:
        """Combine two partial reports of one response: each field takes the larger value.

        Streams report usage in pieces (Anthropic: input at start, output at the end); every
        report is cumulative, so the larger value is the later one.
        """
        return Usage(
            input_tokens=max(self.input_tokens, other.input_tokens),
            cached_input_tokens=max(self.cached_input_tokens, other.cached_input_tokens),
            cache_write_tokens=max(self.cache_write_tokens, other.cache_write_tokens),
            cache_write_1h_tokens=max(self.cache_write_1h_tokens, other.cache_write_1h_tokens),
            output_tokens=max(self.output_tokens, other.output_tokens),
            reasoning_tokens=max(self.reasoning_tokens, other.reasoning_tokens),
        )


class ChatResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    model: str
    #: The assistant's output, in order: thinking, text, tool calls.
    parts: list[Part]
    finish_reason: FinishReason | None = "stop"
    #: The stop sequence that ended generation, when the provider says which.
    stop_sequence: str | None = None
    usage: Usage = msgspec.field(default_factory=Usage)
    created: int = 0
    #: The wire family that produced this response, and its raw body (for passthrough).
    family: str | None = None
    raw: bytes | None = None
    extra: dict[str, Any] | None = None


class Embedding(msgspec.Struct, kw_only=True):
    index: int
    vector: list[float]


class EmbeddingResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    model: str
    data: list[Embedding]
    usage: Usage = msgspec.field(default_factory=Usage)
    family: str | None = None
    raw: bytes | None = None


# --- stream events --------------------------------------------------------------------------


class MessageStart(msgspec.Struct, tag="message_start", kw_only=True, omit_defaults=True):
    id: str
    model: str
    created: int = 0


class TextDelta(msgspec.Struct, tag="text_delta", kw_only=True, omit_defaults=True):
    text: str


class ThinkingDelta(msgspec.Struct, tag="thinking_delta", kw_only=True, omit_defaults=True):
    text: str = ""
    signature: str | None = None
    redacted: str | None = None


class ToolCallDelta(msgspec.Struct, tag="tool_call_delta", kw_only=True, omit_defaults=True):
    """A piece of a tool call. The first piece of call ``index`` carries ``id`` and ``name``."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class UsageUpdate(msgspec.Struct, tag="usage", kw_only=True, omit_defaults=True):
    """Cumulative usage so far; merge successive updates with :meth:`Usage.merge`."""

    usage: Usage


class Finish(msgspec.Struct, tag="finish", kw_only=True, omit_defaults=True):
    reason: FinishReason
    stop_sequence: str | None = None


StreamEvent: TypeAlias = MessageStart | TextDelta | ThinkingDelta | ToolCallDelta | UsageUpdate | Finish

#: Events that prove the upstream is producing output: a stream commits on the first of them.
CONTENT_EVENTS = (TextDelta, ThinkingDelta, ToolCallDelta, Finish)


class Accumulator:
    """Builds the final :class:`ChatResponse` from stream events (one per stream)."""

    __slots__ = ("created", "finish", "id", "model", "stop_sequence", "texts", "thinking", "tools", "usage")

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = 0
        self.texts: list[str] = []
        self.thinking: list[ThinkingPart] = []
        self.tools: dict[int, list[str]] = {}  # index -> [id, name, arguments...]
        self.usage = Usage()
        self.finish: FinishReason | None = None
        self.stop_sequence: str | None = None

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self.texts.append(event.text)
        elif isinstance(event, ToolCallDelta):
            slot = self.tools.get(event.index)
            if slot is None:
                slot = self.tools[event.index] = [event.id or "", event.name or ""]
            else:
                if event.id and not slot[0]:
                    slot[0] = event.id
                if event.name and not slot[1]:
                    slot[1] = event.name
            if event.arguments:
                slot.append(event.arguments)
        elif isinstance(event, ThinkingDelta):
            last_part = self.thinking[-1] if self.thinking else None
            if (
                last_part is None
                or (last_part.signature is not None and event.text)
                or (event.redacted and (last_part.text or last_part.signature or last_part.redacted))
            ):
                self.thinking.append(ThinkingPart())
            last = self.thinking[-1]
            last.text += event.text
            if event.signature:
                last.signature = event.signature
            if event.redacted:
                last.redacted = event.redacted
        elif isinstance(event, UsageUpdate):
            self.usage = self.usage.merge(event.usage)
        elif isinstance(event, Finish):
            self.finish = event.reason
            self.stop_sequence = event.stop_sequence
        elif isinstance(event, MessageStart):
            self.id, self.model, self.created = event.id, event.model, event.created

    def response(self) -> ChatResponse:
        parts: list[Part] = list(self.thinking)
        text = "".join(self.texts)
        if text:
            parts.append(TextPart(text=text))
        for index in sorted(self.tools):
            slot = self.tools[index]
            parts.append(ToolCallPart(id=slot[0], name=slot[1], arguments="".join(slot[2:]) or "{}"))
        return ChatResponse(
            id=self.id,
            model=self.model,
            parts=parts,
            finish_reason=self.finish,
            stop_sequence=self.stop_sequence,
            usage=self.usage,
            created=self.created,
        )


def media_kind(media_type: str) -> Modality:
    """The modality of a MIME type: ``audio/*``, ``video/*``, else a document."""
    major = media_type.partition("/")[0].lower()
    return "audio" if major == "audio" else "video" if major == "video" else "document"


def anthropic_only_blocks(messages: list[Message]) -> list[tuple[str, list[str]]]:
    """Where ``messages`` carry blocks only an Anthropic upstream understands: (param, types)."""
    found: list[tuple[str, list[str]]] = []
    for i, m in enumerate(messages):
        blocks = (m.extra or {}).get(ANTHROPIC_BLOCKS)
        if blocks:
            found.append((f"messages[{i}].content", [str(b[1].get("type")) for b in blocks]))
        for j, p in enumerate(m.parts):
            if isinstance(p, ToolResultPart):
                inner = (p.extra or {}).get(ANTHROPIC_BLOCKS)
                if inner:
                    found.append(
                        (f"messages[{i}].content[{j}].content", [str(b[1].get("type")) for b in inner])
                    )
    return found
