// Fake OpenAI upstream for the benchmark: sends a request that asks for "stream": true to the
// fixed SSE body (stream.sse: 20 chat.completion.chunk frames, a usage chunk, [DONE]) and
// any other to the fixed chat.completion body (completion.json). The module stays tiny
// because njs sets it up again for every request.

var STREAM_RE = /"stream"\s*:\s*true/;

function completions(r) {
    r.internalRedirect(STREAM_RE.test(r.requestText || '') ? '/_stream' : '/_completion');
}

export default {completions};
