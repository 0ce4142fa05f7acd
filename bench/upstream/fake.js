// Fake upstream for the benchmark, two wire families on one nginx:
// - OpenAI (any path, e.g. /v1/chat/completions): a request that asks for "stream": true gets
//   the fixed SSE body (stream.sse: 20 chat.completion.chunk frames, a usage chunk, [DONE]);
//   any other gets the fixed chat.completion body (completion.json).
// - Anthropic (POST /v1/messages): the same answer as a Messages API stream (messages.sse:
//   message_start, content_block_start, 20 text_delta events with the same text pieces,
//   content_block_stop, message_delta, message_stop) or a fixed message (message.json).
// The module stays tiny because njs sets it up again for every request.

var STREAM_RE = /"stream"\s*:\s*true/;

function completions(r) {
    r.internalRedirect(STREAM_RE.test(r.requestText || '') ? '/_stream' : '/_completion');
}

function messages(r) {
    r.internalRedirect(STREAM_RE.test(r.requestText || '') ? '/_message_stream' : '/_message');
}

export default {completions, messages};
