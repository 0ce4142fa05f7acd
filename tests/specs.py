"""Validation against the providers' published OpenAPI documents (``specs/`` at the top of the repo).

``check_request`` validates what an adapter sends upstream (or what a client sends us);
``check_response`` validates a response body; ``check_schema`` validates one value against a
named component schema (used per stream event). Validators are built once per spec and cached.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# The repository carries the documents it tests against (sources and licences: specs/SOURCES.md).
SPECS = Path(__file__).resolve().parents[1] / "specs"
FILES = {
    "openai": "openai/openapi.normalized.json",
    "anthropic": "anthropic/openapi.normalized.json",
    "gemini": "gemini/openapi.from-discovery.tryagi-20260822.fixed.json",
}
# Where each family's paths live, so an adapter's URL maps onto a spec path.
SERVERS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
}


def _require(family: str) -> Path:
    path = SPECS / FILES[family]
    if not path.exists():  # a broken checkout, never a reason to skip
        raise FileNotFoundError(f"spec {path} is missing from the repository (see specs/SOURCES.md)")
    return path


def _load(family: str) -> Any:
    """The published document, with the few places where the clients people use are stricter
    than it and the gateway follows the clients (each one named here, nowhere else)."""
    doc = json.loads(_require(family).read_text())
    if family == "anthropic":
        # A text block's ``citations``: the schema requires the key (array or null); Vercel's
        # @ai-sdk/anthropic rejects null (array or absent only) and the anthropic SDKs treat it
        # as optional, so answers leave the key out when there are no citations (issue #19).
        block = doc["components"]["schemas"]["ResponseTextBlock"]
        block["required"] = [name for name in block["required"] if name != "citations"]
    return doc


@functools.cache
def _openapi(family: str) -> Any:
    from openapi_core import Config, OpenAPI

    spec = _load(family)
    spec["servers"] = [{"url": SERVERS[family]}]
    # The documents are used as published; their own meta-validation is not our concern.
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


@functools.cache
def _schema_validator(family: str, name: str) -> Any:
    from jsonschema import Draft4Validator, Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4, DRAFT202012

    doc = _load(family)
    if family == "gemini":  # OAS 3.0: JSON-Schema draft-4-ish with `nullable`
        resource = Resource(contents=doc, specification=DRAFT4)
        cls: Any = Draft4Validator
    else:
        resource = Resource(contents=doc, specification=DRAFT202012)
        cls = Draft202012Validator
    registry: Registry[Any] = Registry().with_resource("urn:spec", resource)
    return cls({"$ref": f"urn:spec#/components/schemas/{name}"}, registry=registry)


def _relative(family: str, url: str) -> tuple[str, str, dict[str, str]]:
    """Map an upstream URL (any host) onto the spec's server: (host_url, path, query)."""
    parts = urlsplit(url)
    path = parts.path
    base_path = urlsplit(SERVERS[family]).path
    # Deployments point at any host and prefix; keep the part from the family's API root on.
    marker = {"openai": "/v1/", "anthropic": "/v1/", "gemini": "/v1beta/"}[family]
    idx = path.find(marker)
    if idx >= 0:
        path = path[idx:]
    if family == "anthropic":
        spec_path = path
    else:
        spec_path = path[len(base_path) :] if path.startswith(base_path) else path
    return SERVERS[family].removesuffix(base_path), base_path + spec_path, dict(parse_qsl(parts.query))


def check_request(
    family: str, method: str, url: str, body: bytes | dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    """Raise if ``body`` sent to ``url`` is not a valid request in ``family``'s spec."""
    from openapi_core.testing import MockRequest

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    host, path, query = _relative(family, url)
    query.pop("alt", None)  # streamGenerateContent?alt=sse is not a spec parameter
    if family == "gemini" and path.endswith(":streamGenerateContent"):
        path = path.replace(":streamGenerateContent", ":generateContent")
    req = MockRequest(host, method.lower(), path, args=query, headers=headers or {}, data=data)
    _openapi(family).validate_request(req)


def check_response(family: str, method: str, url: str, status: int, body: bytes | dict[str, Any]) -> None:
    """Raise if ``body`` is not a valid ``status`` response of the operation at ``url``."""
    from openapi_core.testing import MockRequest, MockResponse

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    host, path, query = _relative(family, url)
    query.pop("alt", None)
    if family == "gemini" and path.endswith(":streamGenerateContent"):
        path = path.replace(":streamGenerateContent", ":generateContent")
    req = MockRequest(host, method.lower(), path, args=query, data=b"{}")
    _openapi(family).validate_response(req, MockResponse(data, status_code=status))


def check_schema(family: str, schema: str, value: Any) -> None:
    """Raise ``jsonschema.ValidationError`` if ``value`` does not match component ``schema``."""
    if isinstance(value, bytes | str):
        value = json.loads(value)
    _schema_validator(family, schema).validate(value)


# Stream event schemas per family (one SSE data payload each).
STREAM_EVENT_SCHEMA = {
    "openai": "CreateChatCompletionStreamResponse",
    "anthropic": "MessageStreamEvent",
    "gemini": "GenerateContentResponse",
}
