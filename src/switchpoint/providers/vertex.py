"""The Google Vertex AI wire family: Gemini models and Anthropic (Claude) models on Vertex.

A deployment's ``api`` picks the publisher (default: ``anthropic`` for a model named
``claude…``, else ``gemini``):

* ``gemini``: ``POST …/publishers/google/models/{model}:generateContent`` and
  ``:streamGenerateContent?alt=sse`` with the Gemini API's own body, answers and stream.
* ``anthropic``: ``POST …/publishers/anthropic/models/{model}:rawPredict`` and
  ``:streamRawPredict`` with the Anthropic Messages body, the model in the URL (not the body)
  and ``anthropic_version: vertex-2023-10-16``; answers and stream events are Anthropic's.

Both are the Gemini and Anthropic families' translation: the registry gives this adapter those
adapters, and it changes only the URL, the body's model field and version, and auth
(docs/decisions.md). URLs are ``https://{location}-aiplatform.googleapis.com/v1/projects/
{project}/locations/{location}/…`` (``aiplatform.googleapis.com`` for ``global``), or under the
provider's ``base_url``. Auth is an OAuth access token from google-auth, kept fresh off the
request path (:mod:`switchpoint.providers.google_auth`); a provider ``api_key`` (Vertex
express mode) goes as ``x-goog-api-key`` instead. Errors are classified by the family the
publisher speaks (Vertex's own platform errors are Google's ``error.status`` shape, which the
Gemini classifier reads and the Anthropic one classifies by status).
"""

from __future__ import annotations

from urllib.parse import quote

import msgspec

from switchpoint.canonical import ChatRequest, ChatResponse, StreamEvent
from switchpoint.config import Deployment, Secret
from switchpoint.errors import ProviderError
from switchpoint.providers.base import Adapter, StreamParser, UpstreamRequest, UpstreamResponse
from switchpoint.providers.credentials import CREDENTIALS
from switchpoint.streaming import SSEFrame

VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"


def endpoint(deployment: Deployment) -> str:
    base = deployment.provider.base_url
    if base:
        return base
    location = deployment.location or "global"
    host = "aiplatform.googleapis.com" if location == "global" else f"{location}-aiplatform.googleapis.com"
    return f"https://{host}"


def model_url(deployment: Deployment, publisher: str, action: str) -> str:
    project = quote(deployment.project or deployment.provider.project or "", safe="")
    location = quote(deployment.location or "global", safe="")
    model = quote(deployment.model, safe="@.-_")
    return (
        f"{endpoint(deployment)}/v1/projects/{project}/locations/{location}"
        f"/publishers/{publisher}/models/{model}:{action}"
    )


class VertexAdapter(Adapter):
    family = "vertex"

    def __init__(self, gemini: Adapter, anthropic: Adapter) -> None:
        self._gemini = gemini
        self._anthropic = anthropic

    def _inner(self, deployment: Deployment) -> Adapter:
        return self._anthropic if deployment.api == "anthropic" else self._gemini

    def build_chat(self, request: ChatRequest, deployment: Deployment) -> UpstreamRequest:
        if deployment.api == "anthropic":
            up = self._anthropic.build_chat(request, deployment)
            body = msgspec.json.decode(up.body)
            body.pop("model", None)
            body["anthropic_version"] = VERTEX_ANTHROPIC_VERSION
            payload = msgspec.json.encode(body)
            url = model_url(deployment, "anthropic", "streamRawPredict" if request.stream else "rawPredict")
            headers = {"content-type": "application/json"}
            beta = up.headers.get("anthropic-beta")
            if beta:
                headers["anthropic-beta"] = beta
        else:
            up = self._gemini.build_chat(request, deployment)
            payload = up.body
            action = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
            url = model_url(deployment, "google", action)
            headers = {"content-type": "application/json"}
        provider = deployment.provider
        for name, value in provider.headers:
            headers[name] = value.reveal() if isinstance(value, Secret) else value
        if provider.api_key is not None:
            headers["x-goog-api-key"] = provider.api_key.reveal()
        else:
            source = CREDENTIALS.for_provider(provider)
            assert source is not None
            headers["authorization"] = f"Bearer {source.current()}"
        return UpstreamRequest(method="POST", url=url, headers=headers, body=payload, stream=request.stream)

    def parse_chat(self, response: UpstreamResponse, deployment: Deployment) -> ChatResponse:
        parsed = self._inner(deployment).parse_chat(response, deployment)
        parsed.family = self.family  # Vertex's answer, not one to pass through as is
        return parsed

    def stream_parser(self, request: ChatRequest, deployment: Deployment) -> StreamParser:
        return _NoPassthrough(self._inner(deployment).stream_parser(request, deployment))

    def classify(self, response: UpstreamResponse, deployment: Deployment) -> ProviderError:
        return self._inner(deployment).classify(response, deployment)


class _NoPassthrough:
    """The inner family's parser; its frames are always parsed (no client speaks ``vertex``)."""

    passthrough_marks = None

    def __init__(self, inner: StreamParser) -> None:
        self._inner = inner

    def feed(self, frame: SSEFrame) -> list[StreamEvent]:
        return self._inner.feed(frame)

    def close(self) -> list[StreamEvent]:
        return self._inner.close()
