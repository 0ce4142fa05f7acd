"""Passthrough streams forwarded as bytes after commit: the frame scanner, and the whole path.

When the client's dialect is the upstream's wire family, frames after the first content event
are not parsed unless the adapter's marks pick them (usage, an error, the end). These tests
hold that shortcut to the full path: the same bytes per read, every frame that matters marked,
and, through the gateway, the same client bytes and the same request record.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import httpx
import msgspec
import pytest

import switchpoint.executor.stream as stream_module
from switchpoint.api.anthropic import AnthropicDialect
from switchpoint.api.app import create_app
from switchpoint.api.dialect import Dialect
from switchpoint.api.openai import OpenAIDialect
from switchpoint.config import parse
from switchpoint.providers import adapter_for
from switchpoint.providers.anthropic import AnthropicStreamParser
from switchpoint.providers.openai import OpenAIStreamParser
from switchpoint.records import RequestRecord
from switchpoint.streaming import Marks, SSEDecoder, SSEFrame

OPENAI_MARKS = OpenAIStreamParser.passthrough_marks
ANTHROPIC_MARKS = AnthropicStreamParser.passthrough_marks
MARKS = {"openai": OPENAI_MARKS, "anthropic": ANTHROPIC_MARKS}

#: Content that looks like what the marks look for, but is text.
TEXTS = [
    "Hello",
    " the usage is fine",
    ' she said "usage": {"x": 1}',
    " an error occurred",
    ' {"error": "not really"}',
    " café ünïcödé 日本語 🎉",
    " message_stop and message_delta",
    " [DONE] is only text here",
    " finish_reason",
]

# --- upstream streams ------------------------------------------------------------------------


def _json(obj: Any, spaced: bool, ascii_only: bool) -> bytes:
    separators = (", ", ": ") if spaced else (",", ":")
    return json.dumps(obj, separators=separators, ensure_ascii=ascii_only).encode()


def openai_stream(
    *,
    texts: list[str] = TEXTS,
    spaced: bool = False,
    ascii_only: bool = False,
    usage: bool = True,
    groq: bool = False,
    done: bool = True,
    finish: bool = True,
) -> list[bytes]:
    """The frames of an OpenAI stream as the gateway asks for it (``include_usage`` on)."""
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x"}

    def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
        body: dict[str, Any] = {
            **head,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}],
        }
        if usage and not groq:
            body["usage"] = None
        return b"data: " + _json(body, spaced, ascii_only) + b"\n\n"

    frames = [chunk({"role": "assistant", "content": ""})]
    frames += [chunk({"content": t}) for t in texts]
    if finish:
        frames.append(chunk({}, "stop"))
    if usage:
        counts = {"prompt_tokens": 120, "completion_tokens": 20, "total_tokens": 140}
        last: dict[str, Any] = {**head, "choices": []}
        if groq:
            last["x_groq"] = {"id": "req_1", "usage": counts}
        else:
            last["usage"] = counts
        frames.append(b"data: " + _json(last, spaced, ascii_only) + b"\n\n")
    if done:
        frames.append(b"data: [DONE]\n\n")
    return frames


def anthropic_stream(
    *, texts: list[str] = TEXTS, spaced: bool = False, ascii_only: bool = False, stop: bool = True
) -> list[bytes]:
    def event(name: str, data: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + _json(data, spaced, ascii_only) + b"\n\n"

    message: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 120, "output_tokens": 1},
    }
    frames = [
        event("message_start", {"type": "message_start", "message": message}),
        event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        event("ping", {"type": "ping"}),
    ]
    for t in texts:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
        frames.append(event("content_block_delta", delta))
    frames.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    frames.append(
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 20},
            },
        )
    )
    if stop:
        frames.append(event("message_stop", {"type": "message_stop"}))
    return frames


def _multiline(frame: bytes, after: bytes) -> bytes:
    """The same frame with its JSON split over two ``data:`` lines after ``after``."""
    at = frame.index(after) + len(after)
    return frame[:at] + b"\ndata: " + frame[at:]


def variants(family: str) -> dict[str, bytes]:
    """One upstream stream per framing the decoder must get right."""
    build = openai_stream if family == "openai" else anthropic_stream
    plain = build()
    out = {
        "plain": b"".join(plain),
        "spaced": b"".join(build(spaced=True)),
        "escaped": b"".join(build(ascii_only=True)),
        "crlf": b"".join(plain).replace(b"\n", b"\r\n"),
        "cr": b"".join(plain).replace(b"\n", b"\r"),
        "keepalive": b": keep-alive\n\n".join(plain) + b": bye\n\n",
        "comment_lines": b"".join(f.replace(b"data: ", b": note\ndata: ", 1) for f in plain),
        "blank_lines": b"\n".join(plain) + b"\n\n\n",
        "ids": b"".join(b"id: %d\n" % i + f for i, f in enumerate(plain)) + b"retry: 1000\n\n",
        "no_final_blank_line": b"".join(plain)[:-2],
    }
    if family == "openai":
        out["groq"] = b"".join(openai_stream(groq=True))
        usage, content = plain[-2], plain[3]
        out["multiline"] = b"".join(
            [
                *plain[:3],
                _multiline(content, b'"choices":'),
                *plain[4:-2],
                _multiline(usage, b'"usage":'),
                plain[-1],
            ]
        )
        out["multiline_key"] = b"".join([*plain[:-2], _multiline(usage, b'"usage"'), plain[-1]])
    else:
        out["multiline"] = b"".join([*plain[:-2], _multiline(plain[-2], b'"usage":'), plain[-1]])
    return out


# --- the scanner -----------------------------------------------------------------------------


def _needed(family: str, frame: SSEFrame) -> bool:
    """Whether the gateway needs the events of this frame in a passthrough stream."""
    if family == "openai":
        if frame.data == b"[DONE]":
            return True
        chunk = json.loads(frame.data)
        groq = (chunk.get("x_groq") or {}).get("usage")
        reasons = [c.get("finish_reason") for c in chunk.get("choices") or []]
        return chunk.get("usage") is not None or groq is not None or any(reasons) or "error" in chunk
    return json.loads(frame.data)["type"] in {"message_start", "message_delta", "message_stop", "error"}


def _reads_by_feed(reads: list[bytes]) -> list[list[SSEFrame]]:
    decoder = SSEDecoder()
    return [decoder.feed(r) for r in reads] + [decoder.flush()]


def _reads_by_scan(reads: list[bytes], marks: Marks) -> list[list[SSEFrame]]:
    decoder = SSEDecoder()
    out = []
    for r in reads:
        decoder.push(r)
        out.append(decoder.scan(marks))
    return [*out, decoder.flush()]


def _splits(stream: bytes, step: int) -> Iterator[list[bytes]]:
    """The stream in two reads at every ``step``-th byte, then in reads of a few bytes."""
    for at in range(1, len(stream), step):
        yield [stream[:at], stream[at:]]
    for size in (1, 2, 3, 5, 8):
        yield [stream[i : i + size] for i in range(0, len(stream), size)]


#: Framings split at every byte; the others at every few bytes (the same code runs).
EVERY_BYTE = {"plain", "crlf", "cr", "multiline", "multiline_key", "spaced"}


def _complete(received: bytes) -> bytes:
    """The complete frames among the bytes received so far, line endings normalised."""
    text = received.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return text[: text.rfind(b"\n\n") + 2] if b"\n\n" in text else b""


def _events(frames: Iterable[SSEFrame]) -> list[tuple[str | None, bytes]]:
    return [(f.event, f.data) for f in frames if f.event is not None or f.data]


@pytest.mark.parametrize("family", ["openai", "anthropic"])
def test_scan_forwards_each_read_s_frames_as_they_came_and_marks_every_frame_that_matters(
    family: str,
) -> None:
    marks = MARKS[family]
    for name, stream in variants(family).items():
        for reads in _splits(stream, 1 if name in EVERY_BYTE else 7):
            by_feed, by_scan = _reads_by_feed(reads), _reads_by_scan(reads, marks)
            sent = b""
            for i, scanned in enumerate(by_scan[:-1]):
                # a frame leaves with the read that completes it, byte for byte (comments too);
                # a blank line that begins a read may wait for the frame after it
                sent += b"".join(f.raw for f in scanned)
                complete = _complete(b"".join(reads[: i + 1]))
                assert complete.startswith(sent), (name, reads)
                assert sent.rstrip(b"\n") == complete.rstrip(b"\n"), (name, reads)
            assert [f.raw for f in by_scan[-1]] == [f.raw for f in by_feed[-1]]  # the unended end
            # what feed reads from those bytes, scan forwards; every frame needed is parsed
            assert _events(SSEDecoder().feed(sent)) == _events(f for read in by_feed[:-1] for f in read)
            marked = _events(f for read in by_scan for f in read if f.data)
            needed = _events(f for read in by_feed for f in read if _needed(family, f))
            assert all(e in marked for e in needed), (name, reads)


@pytest.mark.parametrize("family", ["openai", "anthropic"])
def test_a_run_stands_for_unmarked_frames_and_the_marked_tail_is_parsed(family: str) -> None:
    texts = ["Hello", ", world", "!"]
    stream = b"".join(openai_stream(texts=texts) if family == "openai" else anthropic_stream(texts=texts))
    decoder = SSEDecoder()
    decoder.push(stream)
    if family == "anthropic":
        assert decoder.next().event == "message_start"  # type: ignore[union-attr]  # read before commit
    out = decoder.scan(MARKS[family])
    assert b"".join(f.raw for f in out) == stream[len(stream) - sum(len(f.raw) for f in out) :]
    run, *parsed = out
    assert not run.data and run.event is None and parsed and all(f.data for f in parsed)
    if family == "openai":  # role and the three texts in one run, then finish, usage, [DONE]
        assert run.raw.count(b"data: ") == 4 and len(parsed) == 3
        assert parsed[-1].data == b"[DONE]"
    else:  # the content blocks as one run, then message_delta, message_stop
        assert run.raw.startswith(b"event: content_block_start") and run.raw.count(b"event: ") == 6
        assert [f.event for f in parsed] == ["message_delta", "message_stop"]


def test_frames_after_the_first_marked_one_are_parsed_one_by_one() -> None:
    """A mark early in a read (here an error frame amid text) costs parsing, never bytes."""
    frames = openai_stream(texts=["a", "b", "c"])
    error = b'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n'
    stream = b"".join([*frames[:2], error, *frames[2:]])
    decoder = SSEDecoder()
    decoder.push(stream)
    out = decoder.scan(OPENAI_MARKS)
    assert [f.raw for f in out] == [b"".join(frames[:2]), error, *frames[2:]]
    assert [bool(f.data) for f in out] == [False] + [True] * (len(out) - 1)


def test_usage_and_finish_are_found_from_the_end_of_a_read() -> None:
    """The last frame with a usage or a finish stands for earlier ones; a null last one does
    not hide an earlier real one."""
    frames = openai_stream(texts=["a", "b"])  # role, a, b, finish, usage, [DONE]; usage: null each
    finish, usage = frames[3], frames[4]
    start = len(b"".join(frames[:3]))  # where the finish frame begins

    def in_finish(region: bytes) -> bool:
        return start < OPENAI_MARKS.first(region, len(region)) < start + len(finish)

    assert in_finish(b"".join(frames))
    # A finish, then a trailing chunk with a null finish and a null usage (as some servers add):
    assert in_finish(b"".join([*frames[:3], finish, frames[2]]))
    # Two cumulative usage reports in one read: the later one is read, the earlier goes unread.
    early = usage.replace(b'"completion_tokens": 20', b'"completion_tokens": 5')
    early = early.replace(b'"completion_tokens":20', b'"completion_tokens":5')
    region = b"".join([frames[1], early, frames[2], usage])
    decoder = SSEDecoder()
    decoder.push(region)
    out = decoder.scan(OPENAI_MARKS)
    assert [f.raw for f in out] == [b"".join([frames[1], early, frames[2]]), usage]
    # No usage and no finish at all: nothing is marked.
    region = b"".join(frames[1:3])
    assert OPENAI_MARKS.first(region, len(region)) == len(region)


def _frames_line_by_line(stream: bytes) -> list[tuple[str | None, bytes, bytes]]:
    """The SSE reading rules applied one line at a time: a reference for the decoder."""
    text = stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    out: list[tuple[str | None, bytes, bytes]] = []
    pos = 0
    while (end := text.find(b"\n\n", pos)) >= 0:
        block, pos = text[pos:end], end + 2
        event, data = None, []
        for line in block.split(b"\n"):
            if not line or line.startswith(b":"):
                continue
            name, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if name == b"data":
                data.append(value)
            elif name == b"event":
                event = value.decode()
        if event is not None or data:
            out.append((event, b"\n".join(data), block + b"\n\n"))
    return out


ODD_FRAMES = [
    b"event:tight\ndata:tight\n\n",
    b"event: a\nevent: b\ndata: x\n\n",
    b"data:  two spaces\n\n",
    b"event: alone\n\n",
    b"event: e\ndata: a\ndata: b\n\n",
    b"data: x\nevent: after\n\n",
    b"event: \ndata: \n\n",
    b"id: 7\ndata: with id\n\n",
    b"data\n\n",
]


@pytest.mark.parametrize("family", ["openai", "anthropic"])
def test_the_decoder_reads_frames_as_the_line_by_line_rules_do(family: str) -> None:
    streams = [*variants(family).values(), b"".join(ODD_FRAMES), *ODD_FRAMES]
    for stream in streams:
        fed = SSEDecoder().feed(stream)
        assert [(f.event, f.data, f.raw) for f in fed] == _frames_line_by_line(stream)


def test_scan_keeps_an_incomplete_frame_until_it_ends() -> None:
    frames = openai_stream()
    decoder = SSEDecoder()
    decoder.push(frames[1] + frames[2][:10])
    assert [f.raw for f in decoder.scan(OPENAI_MARKS)] == [frames[1]]
    decoder.push(frames[2][10:-1])
    assert decoder.scan(OPENAI_MARKS) == []
    decoder.push(b"\n")
    assert [f.raw for f in decoder.scan(OPENAI_MARKS)] == [frames[2]]


def test_a_crlf_split_between_reads_is_one_line_end() -> None:
    stream = b"event: message_stop\r\ndata: {}\r\n\r\n"
    for at in range(1, len(stream)):
        decoder = SSEDecoder()
        frames = decoder.feed(stream[:at]) + decoder.feed(stream[at:]) + decoder.flush()
        assert [(f.event, f.data, f.raw) for f in frames] == [
            ("message_stop", b"{}", b"event: message_stop\ndata: {}\n\n")
        ], at


def _marked(marks: Marks, data: bytes) -> bool:
    return marks.any(b"data: " + data + b"\n\n")


@pytest.mark.parametrize(
    ("data", "marked"),
    [
        (b'{"choices":[{"delta":{"content":"x"},"finish_reason":null}],"usage":null}', False),
        (b'{"choices": [{"delta": {"content": "x"}, "finish_reason": null}], "usage": null}', False),
        (b'{"choices":[],"usage":{"prompt_tokens":1}}', True),
        (b'{"choices": [], "usage": {"prompt_tokens": 1}}', True),
        (b'{"choices":[],"usage" :\t{"prompt_tokens":1}}', True),
        (b'{"choices":[],"x_groq":{"id":"r","usage":{"prompt_tokens":1}}}', True),
        (b'{"choices":[{"delta":{},"finish_reason":"stop"}],"usage":null}', True),
        (b'{"choices":[{"delta":{},"finish_reason": "length"}]}', True),
        (b'{"error":{"message":"overloaded","type":"server_error"}}', True),
        (b"[DONE]", True),
        (b'{"choices":[],"\\u0075sage":{"prompt_tokens":1}}', True),  # a key spelled with escapes
        (b'{"choices":[{"delta":{"content":"\\"usage\\": {1} and \\"error\\""}}],"usage":null}', False),
        (b'{"choices":[{"delta":{"content":"caf\\u00e9 \\u65e5 \\u003c"}}],"usage":null}', False),
    ],
)
def test_openai_marks(data: bytes, marked: bool) -> None:
    assert _marked(OPENAI_MARKS, data) is marked


@pytest.mark.parametrize(
    ("frame", "marked"),
    [
        (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"usage error"}}',
            False,
        ),
        (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"\\"error\\""}}',
            False,
        ),
        (b'event: ping\ndata: {"type": "ping"}', False),
        (b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}', False),
        (b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":3}}', True),
        (b'event: message_stop\ndata: {"type":"message_stop"}', True),
        (b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"x"}}', True),
        (b'data: {"type": "message_stop"}', True),  # no event line: the data decides
        (b'data: {"type":"\\u006dessage_stop"}', True),
    ],
)
def test_anthropic_marks(frame: bytes, marked: bool) -> None:
    assert ANTHROPIC_MARKS.any(frame + b"\n\n") is marked


# --- who scans ------------------------------------------------------------------------------


DIALECT_BODIES = {
    "openai": b'{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}',
    "anthropic": b'{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}',
}


@pytest.mark.parametrize("dialect", [OpenAIDialect(), AnthropicDialect()], ids=lambda d: d.name)
def test_a_dialect_forwards_runs_of_the_family_the_executor_scans_for_it(dialect: Dialect) -> None:
    """The executor scans when the request's dialect names the upstream's family; the
    dialect's encoder must then forward a run of frames as it is."""
    request = dialect.decode_chat(DIALECT_BODIES[dialect.name], {})
    cfg = Gateway().app.gateway.config
    for name, dep in cfg.deployments.items():
        parser = adapter_for(dep.family).stream_parser(request, dep)
        marks = stream_module.passthrough_marks(request, dep, parser)
        assert (marks is not None) is (dep.family == dialect.name), name
    encoder = dialect.stream_encoder(request)
    encoder.commit(request.dialect)
    run = SSEFrame(None, b"", b"data: {}\n\ndata: {}\n\n")
    assert encoder.encode([], run) == run.raw
    translated = msgspec.structs.replace(request, raw=None)  # e.g. trimmed: parse every frame
    dep = cfg.deployments[f"d-{dialect.name}"]
    assert (
        stream_module.passthrough_marks(translated, dep, adapter_for(dep.family).stream_parser(request, dep))
        is None
    )


# --- through the gateway ---------------------------------------------------------------------


class _Upstream:
    status = 200
    headers: dict[str, str] = {}

    def __init__(self, reads: list[bytes]) -> None:
        self._reads = reads

    async def chunks(self) -> AsyncIterator[bytes]:
        for read in self._reads:
            yield read

    async def read(self) -> bytes:
        return b""

    def close(self) -> None:
        pass


class ScriptedTransport:
    """Answers every stream with the reads given (one upstream read each)."""

    def __init__(self) -> None:
        self.reads: list[bytes] = []

    async def open_stream(self, request: Any, **kw: Any) -> _Upstream:
        return _Upstream(self.reads)

    async def send(self, request: Any, **kw: Any) -> Any:
        raise AssertionError("only streams here")

    async def close(self) -> None:
        pass


KEY = "sk-scan-test"
OPENAI_AUTH = {"authorization": f"Bearer {KEY}"}
ANTHROPIC_AUTH = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


class Gateway:
    def __init__(self) -> None:
        price = {"input": 2.0, "output": 8.0}
        doc = {
            "server": {"master_key": "env:K"},
            "providers": {
                "o": {"family": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "env:K"},
                "a": {"family": "anthropic", "base_url": "http://127.0.0.1:9", "api_key": "env:K"},
                "g": {"family": "gemini", "base_url": "http://127.0.0.1:9/v1beta", "api_key": "env:K"},
            },
            "deployments": {
                "d-openai": {"provider": "o", "model": "gpt-x", "price": price},
                "d-anthropic": {"provider": "a", "model": "claude-x", "price": price},
                "d-gemini": {"provider": "g", "model": "gemini-x", "price": price},
            },
            "models": {"up-openai": "d-openai", "up-anthropic": "d-anthropic"},
        }
        self.transport = ScriptedTransport()
        self.app = create_app(parse(doc, env={"K": KEY}), transport=self.transport)
        self.records: list[RequestRecord] = []
        self.app.gateway.accounting.submit = self.records.append  # type: ignore[method-assign,assignment]

    async def stream(
        self, dialect: str, reads: list[bytes], *, include_usage: bool = False, status: int = 200
    ) -> bytes:
        self.transport.reads = reads
        messages = [{"role": "user", "content": "hi"}]
        if dialect == "openai":
            path, headers = "/v1/chat/completions", OPENAI_AUTH
            body: dict[str, Any] = {"model": "up-openai", "stream": True, "messages": messages}
            if include_usage:
                body["stream_options"] = {"include_usage": True}
        else:
            path, headers = "/v1/messages", ANTHROPIC_AUTH
            body = {"model": "up-anthropic", "max_tokens": 50, "stream": True, "messages": messages}
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            r = await client.post(path, json=body, headers=headers)
        assert r.status_code == status, r.text
        return r.content


@pytest.fixture
def gw() -> Gateway:
    return Gateway()


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The data of every frame an upstream parser reads."""
    seen: list[bytes] = []
    for parser in (OpenAIStreamParser, AnthropicStreamParser):
        feed = parser.feed

        def counting(self: Any, frame: SSEFrame, feed: Callable[..., Any] = feed) -> Any:
            seen.append(frame.data)
            return feed(self, frame)

        monkeypatch.setattr(parser, "feed", counting)
    return seen


async def _reference(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch, dialect: str, reads: list[bytes], **kw: Any
) -> tuple[bytes, RequestRecord]:
    """What the client gets and the record kept when every frame is parsed (the full path)."""
    with monkeypatch.context() as m:
        m.setattr(stream_module, "passthrough_marks", lambda *a: None)
        body = await gw.stream(dialect, reads, **kw)
    return body, gw.records.pop()


def _same_record(a: RequestRecord, b: RequestRecord) -> None:
    assert (a.status, a.error, a.usage, a.deployment) == (b.status, b.error, b.usage, b.deployment)
    assert [(x.status, x.error, x.usage) for x in a.attempts] == [
        (x.status, x.error, x.usage) for x in b.attempts
    ]


async def test_openai_usage_split_across_reads_at_every_byte_is_accounted(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = openai_stream()
    stream = b"".join(frames)
    expected, ref = await _reference(gw, monkeypatch, "openai", [stream], include_usage=True)
    assert expected == stream  # the client asked for usage: the upstream's bytes, unchanged
    assert ref.usage is not None and (ref.usage.input_tokens, ref.usage.output_tokens) == (120, 20)
    usage_at = len(stream) - len(frames[-1]) - len(frames[-2])
    for at in range(usage_at - 2, usage_at + len(frames[-2]) + 2):
        body = await gw.stream("openai", [stream[:at], stream[at:]], include_usage=True)
        assert body == expected, at
        _same_record(gw.records.pop(), ref)


async def test_openai_passthrough_parses_only_the_frames_it_needs(gw: Gateway, parsed: list[bytes]) -> None:
    frames = openai_stream(texts=["Hello", ", world", "!"])
    assert await gw.stream("openai", [b"".join(frames)], include_usage=True) == b"".join(frames)
    # role chunk and first content (until commit), then finish, usage and [DONE]
    assert parsed == [f[6:-2] for f in frames[:2] + frames[-3:]]
    record = gw.records.pop()
    assert record.status == 200 and record.usage is not None and record.usage.output_tokens == 20


async def test_openai_usage_chunk_not_asked_for_is_dropped(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = openai_stream()
    stream = b"".join(frames)
    expected, ref = await _reference(gw, monkeypatch, "openai", [stream])
    assert expected == b"".join(frames[:-2]) + b"data: [DONE]\n\n"
    for reads in ([stream], [f for f in frames], [stream[:700], stream[700:]]):
        assert await gw.stream("openai", reads) == expected
        record = gw.records.pop()
        _same_record(record, ref)
        assert record.usage is not None and record.usage.output_tokens == 20  # still accounted


@pytest.mark.parametrize("where", ["same_read", "later_read"])
async def test_openai_error_frame_after_commit_ends_the_stream_with_an_error_event(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    frames = openai_stream(usage=False, finish=False, done=False)
    error = b'data: {"error":{"message":"The server is overloaded","type":"server_error","code":null}}\n\n'
    if where == "same_read":  # committed on the first read; the error comes amid scanned frames
        reads = [b"".join(frames[:2]), b"".join(frames[2:5]) + error + b"".join(frames[5:])]
    else:
        reads = [b"".join(frames[:4]), b"".join(frames[4:]), error]
    expected, ref = await _reference(gw, monkeypatch, "openai", reads)
    body = await gw.stream("openai", reads)
    assert body == expected
    _same_record(gw.records.pop(), ref)
    last = body.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    assert last.startswith(b'data: {"error":') and b"data: [DONE]" not in body
    assert ref.status >= 500 and ref.error is not None
    # what came in the reads before the error reached the client unchanged; that read did not
    assert body.startswith(b"".join(frames[:2] if where == "same_read" else frames))


async def test_openai_error_in_the_read_of_the_first_content_fails_over_unseen(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read that commits is parsed up to the first content event, scanned after it; an
    error frame later in that read still fails the attempt before commit, as on the full path."""
    frames = openai_stream(usage=False, finish=False, done=False)
    error = b'data: {"error":{"message":"The server is overloaded","type":"server_error","code":null}}\n\n'
    reads = [b"".join(frames[:4]) + error]
    expected, ref = await _reference(gw, monkeypatch, "openai", reads, status=502)
    assert await gw.stream("openai", reads, status=502) == expected
    _same_record(gw.records.pop(), ref)


@pytest.mark.parametrize("finish", [True, False])
async def test_openai_stream_cut_before_done(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch, finish: bool
) -> None:
    frames = openai_stream(done=False, finish=finish)
    reads = [b"".join(frames[:3]), b"".join(frames[3:])]
    expected, ref = await _reference(gw, monkeypatch, "openai", reads, include_usage=True)
    assert await gw.stream("openai", reads, include_usage=True) == expected
    _same_record(gw.records.pop(), ref)
    assert (ref.status == 200) is finish  # a finish reason is end enough; without it, an error


@pytest.mark.parametrize("family", ["openai", "anthropic"])
async def test_odd_framings_reach_the_client_with_the_events_of_the_full_path(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch, family: str
) -> None:
    for name, stream in variants(family).items():
        for reads in (
            [stream],
            [stream[:333], stream[333:]],
            [stream[i : i + 97] for i in range(0, len(stream), 97)],
        ):
            expected, ref = await _reference(gw, monkeypatch, family, reads, include_usage=True)
            body = await gw.stream(family, reads, include_usage=True)
            # the same events; after commit, comments and blank lines are forwarded as they came
            assert _events(SSEDecoder().feed(body)) == _events(SSEDecoder().feed(expected)), name
            assert (body == expected) is (name not in {"keepalive", "blank_lines", "ids"}), name
            if name == "keepalive":
                assert body.count(b": keep-alive\n\n") > expected.count(b": keep-alive\n\n"), name
            _same_record(gw.records.pop(), ref)


async def test_anthropic_passthrough_keeps_message_delta_usage_and_bytes(
    gw: Gateway, parsed: list[bytes]
) -> None:
    frames = anthropic_stream(texts=["Hello", ", world", "!"])
    stream = b"".join(frames)
    for reads in ([stream], frames, [stream[:-40], stream[-40:]]):
        parsed.clear()
        assert await gw.stream("anthropic", reads) == stream
        record = gw.records.pop()
        assert record.status == 200 and record.usage is not None
        assert (record.usage.input_tokens, record.usage.output_tokens) == (120, 20)
    # message_start, content_block_start, ping, the first delta; then message_delta and message_stop
    assert len(parsed) == 6 and b"message_delta" in parsed[-2] and b"message_stop" in parsed[-1]


async def test_anthropic_error_event_after_commit(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = anthropic_stream()[:6]
    error = (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    reads = [b"".join(frames), error]
    expected, ref = await _reference(gw, monkeypatch, "anthropic", reads)
    body = await gw.stream("anthropic", reads)
    assert body == expected and body.startswith(b"".join(frames))
    assert body[len(b"".join(frames)) :].startswith(b"event: error\n")
    _same_record(gw.records.pop(), ref)
    assert ref.error == "overloaded"


async def test_an_encoder_failure_mid_stream_ends_it_with_an_error_event_and_a_record(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in a dialect's encoder after commit: the client's stream ends with the dialect's
    error event, the upstream is given up, and the request is recorded as an internal error."""
    from switchpoint.api.openai import OpenAIStreamEncoder

    frames = openai_stream(texts=["a", "b", "c"])
    calls = 0
    real = OpenAIStreamEncoder.encode

    def failing(self: OpenAIStreamEncoder, events: Any, frame: Any) -> bytes:
        nonlocal calls
        calls += 1
        if calls > 2:
            raise RuntimeError("encoder bug")
        return real(self, events, frame)

    monkeypatch.setattr(OpenAIStreamEncoder, "encode", failing)
    body = await gw.stream("openai", [b"".join(frames[:2]), b"".join(frames[2:])])
    assert body.startswith(b"".join(frames[:2]))
    last = body.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    assert last.startswith(b"data: ") and json.loads(last[6:])["error"]["type"] == "server_error"
    record = gw.records.pop()
    assert (record.status, record.error) == (500, "internal_error")
    assert [a.error for a in record.attempts] == ["cancelled"]
    assert gw.app.gateway.health.get("d-openai").inflight == 0
