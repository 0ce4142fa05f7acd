"""The Google Vertex AI wire: Gemini (``publishers/google``) and Anthropic (``publishers/anthropic``)
models under ``/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/
{model}:{action}``.

Gemini actions (``generateContent``, ``streamGenerateContent``) take and answer the Gemini
API's JSON; Anthropic actions (``rawPredict``, ``streamRawPredict``) take the Messages body
without ``model`` (it is in the URL) and with ``anthropic_version: vertex-2023-10-16``, and
answer Anthropic's JSON and SSE. Auth is an OAuth bearer token (any non-empty one here; the
tests check which token the gateway sent) or an API key (``x-goog-api-key``, express mode). Platform errors are Google's ``error`` shape.
"""

from __future__ import annotations

import json
import re

from . import anthropic_wire, gemini_wire
from .common import Headers, SimError, bearer, header
from .content import ChatCall

VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
ROUTE = re.compile(
    r"^projects/([^/]+)/locations/([^/]+)/publishers/(google|anthropic)/models/([^/:]+):([A-Za-z]+)$"
)
ACTIONS = {
    "google": ("generateContent", "streamGenerateContent"),
    "anthropic": ("rawPredict", "streamRawPredict"),
}


def check_auth(headers: Headers, query: bytes) -> SimError | None:
    if bearer(headers) or header(headers, b"x-goog-api-key"):  # a token, or an express-mode key
        return None
    return SimError(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
        "or other valid authentication credential.",
    )


def error_body(err: SimError) -> bytes:
    return gemini_wire.error_body(err)


def response_headers() -> Headers:
    return []


def parse_anthropic(raw: bytes, model: str, *, stream: bool) -> ChatCall:
    try:
        body = json.loads(raw)
    except ValueError:
        raise SimError(400, "Invalid JSON payload received.") from None
    if not isinstance(body, dict):
        raise SimError(400, "Invalid JSON payload received.")
    if body.pop("anthropic_version", None) != VERTEX_ANTHROPIC_VERSION:
        raise SimError(400, "anthropic_version: Input should be 'vertex-2023-10-16'")
    if "model" in body:
        raise SimError(400, "model: Extra inputs are not permitted")
    if bool(body.get("stream")) != stream:
        raise SimError(400, "stream: must be true for streamRawPredict and absent or false for rawPredict")
    body["model"] = model
    return anthropic_wire.parse_chat(json.dumps(body).encode())
