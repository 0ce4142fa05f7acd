"""The Vertex AI family beyond the conformance suite: URLs, OAuth tokens from a service account
(issued by a token endpoint of the test's own, refreshed ahead of expiry off the request path),
and the whole gateway in front of the simulated Vertex upstream with the official SDKs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from switchpoint.canonical import ChatRequest, Message, TextPart
from switchpoint.config import parse
from switchpoint.errors import ProviderError
from switchpoint.providers import adapter_for
from switchpoint.providers.credentials import CREDENTIALS, REFRESH_AHEAD_S
from switchpoint.providers.google_auth import GoogleSource

pytest.importorskip("google.auth")
from vertex_auth import TokenServer

HELLO = [Message(role="user", parts=[TextPart(text="Hello")])]


@pytest.fixture
def tokens(tmp_path: Path) -> Iterator[tuple[TokenServer, Path]]:
    server = TokenServer()
    with server.running():
        yield server, server.service_account(tmp_path / "sa.json")


def vertex_config(sa: Path | None, base_url: str = "", **dep: Any) -> Any:
    provider: dict[str, Any] = {"family": "vertex", "project": "acme-ml", "location": "europe-west1"}
    if sa is not None:
        provider["credentials_file"] = str(sa)
    if base_url:
        provider["base_url"] = base_url
    return parse(
        {
            "providers": {"gcp": provider},
            "deployments": {
                "gemini": {"provider": "gcp", "model": "gemini-2.5-pro", **dep},
                "claude": {"provider": "gcp", "model": "claude-opus-4-1@20250805", "location": "us-east5"},
                "claude-global": {
                    "provider": "gcp",
                    "model": "claude-sonnet-4-5@20250929",
                    "location": "global",
                },
                "other-project": {"provider": "gcp", "model": "gemini-2.5-flash", "project": "acme-eu"},
            },
            "models": {"g": "gemini", "c": "claude"},
        },
        env={},
    )


async def test_urls_models_and_the_token(tokens: tuple[TokenServer, Path]) -> None:
    server, sa = tokens
    cfg = vertex_config(sa)
    await CREDENTIALS.start(cfg.providers.values())
    try:
        adapter = adapter_for("vertex")
        g = adapter.build_chat(ChatRequest(model="x", messages=HELLO), cfg.deployments["gemini"])
        assert g.url == (
            "https://europe-west1-aiplatform.googleapis.com/v1/projects/acme-ml/locations/europe-west1"
            "/publishers/google/models/gemini-2.5-pro:generateContent"
        )
        assert g.headers["authorization"] == "Bearer ya29.sim-1"
        assert "x-goog-api-key" not in g.headers
        s = adapter.build_chat(ChatRequest(model="x", messages=HELLO, stream=True), cfg.deployments["claude"])
        assert s.url == (
            "https://us-east5-aiplatform.googleapis.com/v1/projects/acme-ml/locations/us-east5"
            "/publishers/anthropic/models/claude-opus-4-1@20250805:streamRawPredict"
        )
        body = json.loads(s.body)
        assert (
            body["anthropic_version"] == "vertex-2023-10-16"
            and "model" not in body
            and body["stream"] is True
        )
        glob = adapter.build_chat(ChatRequest(model="x", messages=HELLO), cfg.deployments["claude-global"])
        assert glob.url.startswith("https://aiplatform.googleapis.com/v1/projects/acme-ml/locations/global/")
        assert glob.url.endswith("/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict")
        assert cfg.deployments["claude"].api == "anthropic" and cfg.deployments["gemini"].api == "gemini"
        other = adapter.build_chat(ChatRequest(model="x", messages=HELLO), cfg.deployments["other-project"])
        assert "/v1/projects/acme-eu/locations/europe-west1/publishers/google/" in other.url
    finally:
        await CREDENTIALS.close()
    assert server.issued == ["ya29.sim-1"]  # one token for every request, from memory
    assert server.claims[0]["iss"] == "gateway@sim-project.iam.gserviceaccount.com"


async def test_the_token_is_refreshed_ahead_of_expiry_in_the_background(
    tokens: tuple[TokenServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from switchpoint.providers import credentials as cred

    monkeypatch.setattr(cred, "RETRY_MIN_S", 0.05)
    server, sa = tokens
    server.expires_in = int(REFRESH_AHEAD_S) + 1  # due for refresh a second after it is issued
    src = GoogleSource(str(sa))
    await asyncio.wait_for(src.start_background(), 10)
    assert src.current() == "ya29.sim-1"
    issued_before = len(server.issued)
    for _ in range(200):
        src.current()  # requests read the token; they never fetch one
    assert len(server.issued) == issued_before
    for _ in range(60):
        await asyncio.sleep(0.1)
        if len(server.issued) >= 2:
            break
    assert server.issued[:2] == ["ya29.sim-1", "ya29.sim-2"]
    # the server counts a token when it answers; the source holds it once the answer is read
    for _ in range(50):
        if src.current() != "ya29.sim-1":
            break
        await asyncio.sleep(0.05)
    assert src.current() in server.issued[1:]
    await src.stop()


async def test_a_token_endpoint_that_refuses_is_an_authentication_error(tmp_path: Path) -> None:
    server = TokenServer()
    with server.running():
        sa = server.service_account(tmp_path / "sa.json")
    other = TokenServer()  # a different key: the endpoint refuses the JWT signature
    with other.running():
        data = json.loads(sa.read_text())
        data["token_uri"] = other.url + "/token"
        sa.write_text(json.dumps(data))
        cfg = vertex_config(sa)
        await CREDENTIALS.start(cfg.providers.values())
        try:
            with pytest.raises(ProviderError) as exc:
                adapter_for("vertex").build_chat(
                    ChatRequest(model="x", messages=HELLO), cfg.deployments["gemini"]
                )
        finally:
            await CREDENTIALS.close()
    assert exc.value.kind == "authentication"
    assert "credentials are not available yet: RefreshError" in exc.value.message
    assert "Invalid JWT Signature" in exc.value.message


def test_an_api_key_goes_as_x_goog_api_key() -> None:
    cfg = parse(
        {
            "providers": {
                "gcp": {"family": "vertex", "project": "p", "location": "global", "api_key": "env:VK"}
            },
            "deployments": {"d": {"provider": "gcp", "model": "gemini-2.5-flash"}},
        },
        env={"VK": "vertex-express-key"},
    )
    up = adapter_for("vertex").build_chat(ChatRequest(model="x", messages=HELLO), cfg.deployments["d"])
    assert up.headers["x-goog-api-key"] == "vertex-express-key" and "authorization" not in up.headers


def test_the_gateway_serves_sdk_clients_from_vertex(
    tokens: tuple[TokenServer, Path], simulator_url: str
) -> None:
    import anthropic
    import openai

    from switchpoint.api.app import create_app

    from servers import serve_in_thread

    server, sa = tokens
    cfg = vertex_config(sa, base_url=simulator_url + "/vertex", model="gemini-2.5-flash")
    with (
        serve_in_thread(create_app(cfg)) as url,
        openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client,
        anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0) as a,
    ):
        for alias in ("g", "c"):
            r = client.chat.completions.create(model=alias, messages=[{"role": "user", "content": "Hello"}])
            content = r.choices[0].message.content or ""
            assert content.startswith("[simulated"), content
            chunks = list(
                client.chat.completions.create(
                    model=alias, messages=[{"role": "user", "content": "Hello"}], stream=True
                )
            )
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == content
        m = a.messages.create(model="c", max_tokens=50, messages=[{"role": "user", "content": "Hello"}])
        assert m.content[0].type == "text" and m.content[0].text.startswith("[simulated claude-opus-4-1")
    assert server.issued == ["ya29.sim-1"]  # fetched at start-up, used by every request


def test_serve_simulate_points_cloud_providers_at_the_simulator(simulator_url: str) -> None:
    """``serve --config FILE --simulate`` with Bedrock and Vertex rows: no cloud credentials are
    looked for (a simulated provider has its placeholder key) and both answer."""
    import openai

    from switchpoint.api.app import create_app
    from switchpoint.defaults import simulate_config

    from servers import serve_in_thread

    doc = {
        "providers": {
            "aws": {"family": "bedrock", "region": "us-east-1", "aws_profile": "nonexistent-profile"},
            "gcp": {
                "family": "vertex",
                "project": "p",
                "location": "us-east5",
                "credentials_file": "/nonexistent.json",
            },
        },
        "deployments": {
            "b": {"provider": "aws", "model": "amazon.nova-pro-v1:0"},
            "v": {"provider": "gcp", "model": "claude-sonnet-4-5@20250929"},
        },
        "storage": {"enabled": False},
    }
    cfg = parse(simulate_config(doc, simulator_url, {}), env={})
    with (
        serve_in_thread(create_app(cfg)) as url,
        openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client,
    ):
        for model in ("b", "v"):
            r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
            assert (r.choices[0].message.content or "").startswith("[simulated")
