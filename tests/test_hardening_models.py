"""``GET /v1/models/{id}`` in both dialects, through both official SDKs' ``models.retrieve``;
an unknown id is a 404 in the client's dialect; Anthropic's list in pages (``limit``,
``after_id``, ``before_id``). Every answer is checked against the dialect's
published OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

import specs
from gateway_harness import GATEWAY_KEY

OAI_URL = "https://api.openai.com/v1/models"
ANT_URL = "https://api.anthropic.com/v1/models"


def _validating(family: str, base: str) -> Any:
    def hook(response: Any) -> None:  # an httpx or httpx2 response
        if not response.request.url.path.startswith("/v1/models"):
            return
        response.read()
        if response.status_code == 200 or family == "anthropic":  # OpenAI documents no error bodies
            rest = response.request.url.path.removeprefix("/v1/models")
            specs.check_response(family, "GET", base + rest, response.status_code, response.content)

    return hook


@pytest.fixture
def oai(gateway: Any) -> Iterator[openai.OpenAI]:
    http = httpx.Client(event_hooks={"response": [_validating("openai", OAI_URL)]})
    with openai.OpenAI(
        base_url=f"{gateway.url}/v1",
        api_key=GATEWAY_KEY,
        max_retries=0,
        http_client=http,
        _strict_response_validation=True,  # every field the SDK's types require is there
    ) as client:
        yield client


@pytest.fixture
def ant(gateway: Any) -> Iterator[anthropic.Anthropic]:
    # The anthropic SDK ships its own httpx fork (httpx2) and accepts only its clients.
    http = httpx2.Client(event_hooks={"response": [_validating("anthropic", ANT_URL)]})
    with anthropic.Anthropic(
        base_url=gateway.url,
        api_key=GATEWAY_KEY,
        max_retries=0,
        http_client=http,
        _strict_response_validation=True,
    ) as client:
        yield client


@pytest.mark.parametrize("name", ["up-anthropic", "failover", "d-openai"])
def test_openai_sdk_retrieves_every_listed_model(oai: openai.OpenAI, name: str) -> None:
    listed = {m.id: m for m in oai.models.list()}
    model = oai.models.retrieve(name)
    assert model.id == name and model.object == "model" and model.owned_by == "switchpoint"
    assert model == listed[name]


@pytest.mark.parametrize("name", ["up-gemini", "failover", "d-anthropic"])
def test_anthropic_sdk_retrieves_every_listed_model(ant: anthropic.Anthropic, name: str) -> None:
    listed = {m.id: m for m in ant.models.list()}
    model = ant.models.retrieve(name)
    assert model.id == name and model.type == "model" and model.display_name == name
    assert model.created_at == listed[name].created_at
    assert model.created_at.year >= 2024
    assert model.lifecycle == "active" and model.retires_at is None  # what the SDK requires


def test_anthropic_models_list_pages_by_limit_after_and_before(ant: anthropic.Anthropic) -> None:
    """Anthropic's list takes ``limit`` (1-1000, default 20), ``after_id`` and ``before_id``; the
    SDK's auto-pagination walks every name; a limit outside 1-1000 is a 400."""
    everything = [m.id for m in ant.models.list(limit=1000).data]
    assert len(everything) > 4
    first = ant.models.list(limit=2)
    assert [m.id for m in first.data] == everything[:2] and first.has_more is True
    assert (first.first_id, first.last_id) == (everything[0], everything[1])
    assert [m.id for m in ant.models.list(limit=2)] == everything  # page after page (after_id)
    before = ant.models.list(limit=2, before_id=everything[3])
    assert [m.id for m in before.data] == everything[1:3] and before.has_more is True
    last = ant.models.list(limit=1000, after_id=everything[-2])
    assert [m.id for m in last.data] == everything[-1:] and last.has_more is False
    assert len(ant.models.list().data) == min(20, len(everything))
    for limit in (0, 1001, -1):
        with pytest.raises(anthropic.BadRequestError) as refused:
            ant.models.list(limit=limit)
        assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_a_deployment_reports_its_window_an_alias_does_not(gateway: Any) -> None:
    headers = {"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=gateway.url) as c:
        dep = c.get("/v1/models/d-anthropic", headers=headers).json()
        alias = c.get("/v1/models/up-anthropic", headers=headers).json()
    window = gateway.gw.config.deployments["d-anthropic"].context_window
    assert dep["max_input_tokens"] == window and isinstance(dep["max_tokens"], int)
    assert alias["max_input_tokens"] is None and alias["max_tokens"] is None
    for doc in (dep, alias):
        specs.check_response("anthropic", "GET", f"{ANT_URL}/{doc['id']}", 200, doc)


def test_unknown_model_is_a_404_in_each_dialect(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    with pytest.raises(openai.NotFoundError) as e1:
        oai.models.retrieve("no-such-model")
    body = e1.value.body
    assert isinstance(body, dict) and body["code"] == "model_not_found" and body["param"] == "model"
    assert "no-such-model" in body["message"]
    with pytest.raises(anthropic.NotFoundError) as e2:
        ant.models.retrieve("no-such-model")
    doc = e2.value.body
    assert isinstance(doc, dict) and doc["type"] == "error"
    assert doc["error"]["type"] == "not_found_error"


def test_retrieve_needs_the_key_in_each_dialect(gateway: Any) -> None:
    with httpx.Client(base_url=gateway.url) as c:
        r = c.get("/v1/models/up-openai", headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        r = c.get("/v1/models/up-openai", headers={"x-api-key": "wrong", "anthropic-version": "2023-06-01"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert r.json()["type"] == "error"


def test_a_model_id_with_a_slash_is_one_id(gateway: Any) -> None:
    headers = {"authorization": f"Bearer {GATEWAY_KEY}"}
    with httpx.Client(base_url=gateway.url) as c:
        r = c.get("/v1/models/vendor/no-such-model", headers=headers)
    assert r.status_code == 404
    assert "'vendor/no-such-model'" in r.json()["error"]["message"]
