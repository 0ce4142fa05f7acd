"""A fast fake upstream for the transport benchmark, run in its own process:

    python bench/micro/fast_upstream.py [PORT]     (prints the port it listens on)

HTTP/1.1 keep-alive on uvloop when installed. ``POST`` with ``"stream":true`` in the body: a
20-chunk OpenAI-style SSE stream (chunked, one write per event, as a real upstream sends them);
anything else: one JSON chat completion with a content length. Its CPU is not the client's, so
the benchmark's ``time.process_time`` counts only the client side.
"""

from __future__ import annotations

import asyncio
import sys

COMPLETION = (
    b'{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"'
    + b"A short answer. "
    * 10
    + b'","refusal":null},"finish_reason":"stop","logprobs":null}],'
    b'"usage":{"prompt_tokens":120,"completion_tokens":40,"total_tokens":160}}'
)
PLAIN = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(COMPLETION)
    + COMPLETION
)
STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
_CHUNK = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" word%d"},"finish_reason":null}]}\n\n'
)
EVENTS = [_CHUNK % i for i in range(19)] + [b"data: [DONE]\n\n"]
STREAM_CHUNKS = [b"%x\r\n%s\r\n" % (len(e), e) for e in EVENTS]
STREAM_END = b"0\r\n\r\n"


class Upstream(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            size = 0
            at = head.find(b"content-length:")
            if at >= 0:
                size = int(head[at + 15 :].split(b"\r\n", 1)[0])
            if len(self.buf) < end + 4 + size:
                return
            body = self.buf[end + 4 : end + 4 + size]
            self.buf = self.buf[end + 4 + size :]
            if b'"stream":true' in body.replace(b" ", b""):
                write = self.transport.write
                write(STREAM_HEAD)
                for chunk in STREAM_CHUNKS:
                    write(chunk)
                write(STREAM_END)
            else:
                self.transport.write(PLAIN)


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
