"""``/v1/images/generations`` end to end: the official ``openai`` SDK as client, deployments of
kind ``image`` on the simulator, failover, errors; requests sent upstream checked against
OpenAI's published spec."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from media_harness import Running, oai, running

import specs
from gateway_harness import closed_port

__all__ = ["oai"]  # a fixture


def document(sim: str) -> dict[str, Any]:
    key = "env:E2E_UPSTREAM_KEY"
    return {
        "server": {"master_key": "env:E2E_GATEWAY_KEY"},
        "providers": {
            "p-openai": {"family": "openai", "base_url": f"{sim}/openai/v1", "api_key": key},
            "p-dead": {
                "family": "openai",
                "base_url": f"http://127.0.0.1:{closed_port()}/v1",
                "api_key": key,
            },
        },
        "deployments": {
            "i-image": {"provider": "p-openai", "model": "sim-image", "kind": "image"},
            "i-dead": {"provider": "p-dead", "model": "gone", "kind": "image"},
            "a-tts": {"provider": "p-openai", "model": "sim-tts", "kind": "audio"},
        },
        "models": {"gpt-image-1": "i-image", "images-failover": ["i-dead", "i-image"], "tts-1": "a-tts"},
    }


@pytest.fixture(scope="module")
def gateway(simulator_url: str) -> Iterator[Running]:
    with running(document(simulator_url)) as gw:
        yield gw


@pytest.fixture(autouse=True)
def upstream_valid(gateway: Any) -> Iterator[None]:
    gateway.sent.clear()
    yield
    for req in gateway.sent:
        if "/openai/v1/" in req.url:
            specs.check_request("openai", req.method, req.url, req.body, dict(req.headers))


def test_generate_with_the_sdk(oai: openai.OpenAI, gateway: Any) -> None:
    raw = oai.images.with_raw_response.generate(
        model="gpt-image-1", prompt="a lighthouse", n=2, size="1024x1024"
    )
    assert raw.headers["x-switchpoint-deployment"] == "i-image"
    r = raw.parse()
    assert len(r.data or []) == 2
    png = base64.b64decode((r.data or [])[0].b64_json or "")
    assert png.startswith(b"\x89PNG")
    (sent,) = gateway.sent
    assert json.loads(sent.body) == {
        "model": "sim-image",
        "prompt": "a lighthouse",
        "n": 2,
        "size": "1024x1024",
    }


def test_generate_urls(oai: openai.OpenAI) -> None:
    r = oai.images.generate(model="gpt-image-1", prompt="x", response_format="url")
    assert [d.url for d in r.data or []] == ["https://simulator.invalid/images/0.png"]


def test_generate_fails_over(oai: openai.OpenAI, gateway: Any) -> None:
    raw = oai.images.with_raw_response.generate(model="images-failover", prompt="x")
    assert raw.headers["x-switchpoint-deployment"] == "i-image"
    assert len(gateway.sent) == 2


def test_an_audio_alias_does_not_generate_images(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="does not serve image requests"):
        oai.images.generate(model="tts-1", prompt="x")


def test_missing_prompt_is_a_400(oai: openai.OpenAI, gateway: Any) -> None:
    with pytest.raises(openai.BadRequestError, match="'prompt': required") as info:
        oai.images.generate(model="gpt-image-1", prompt="")
    assert info.value.body["param"] == "prompt"  # type: ignore[index]
    assert gateway.sent == []
