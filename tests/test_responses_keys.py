"""The Responses route under governance: a virtual key's stored responses are its own (another
key gets a 404, as for an id that does not exist; a rotated key keeps them), allowed models and
rate limits apply as for chat, in OpenAI's error JSON."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from governance_harness import bearer, configured_url_wins, doc, make_key
from resilience_harness import AUTH, Server, gateway
from switchpoint.simulator import SimConfig
from switchpoint.simulator import create_app as create_sim

__all__ = ["configured_url_wins"]  # the test's own ledger file, whatever the environment names


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig())) as server:
        yield server.url


def _client(url: str, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0)


def test_stored_responses_belong_to_their_key(sim: str, tmp_path: Path) -> None:
    with gateway(doc(sim, tmp_path, None)) as (url, _, _):
        alice, alice_doc = make_key(url)
        bob, _ = make_key(url)
        a, b = _client(url, alice), _client(url, bob)
        mine = a.responses.create(model="fast", input="a secret plan")
        for call in (
            lambda: b.responses.retrieve(mine.id),
            lambda: b.responses.input_items.list(mine.id),
            lambda: b.responses.delete(mine.id),
            lambda: b.responses.create(model="fast", input="go on", previous_response_id=mine.id),
        ):
            with pytest.raises(openai.NotFoundError):
                call()
        assert a.responses.retrieve(mine.id).output_text == mine.output_text  # bob's delete did nothing
        master = _client(url, AUTH["authorization"].removeprefix("Bearer "))
        with pytest.raises(openai.NotFoundError):  # not even the master key reads a key's responses
            master.responses.retrieve(mine.id)
        rotated = httpx.post(f"{url}/admin/keys/{alice_doc['id']}/rotate", headers=AUTH, timeout=10)
        assert rotated.status_code == 200, rotated.text
        a2 = _client(url, rotated.json()["secret"])
        nxt = a2.responses.create(model="claude", input="and then?", previous_response_id=mine.id)
        assert nxt.previous_response_id == mine.id
        for c in (a, b, master, a2):
            c.close()


def test_allowed_models_and_rpm_apply_as_for_chat(sim: str, tmp_path: Path) -> None:
    with gateway(doc(sim, tmp_path, None)) as (url, _, _):
        secret, _ = make_key(url, allowed_aliases=["fast"], limits={"rpm": 2})
        body = {"model": "fast", "input": "hi"}
        r = httpx.post(
            f"{url}/v1/responses", json={**body, "model": "claude"}, headers=bearer(secret), timeout=30
        )
        assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
        statuses = [
            httpx.post(f"{url}/v1/responses", json=body, headers=bearer(secret), timeout=30).status_code
            for _ in range(3)
        ]
        assert statuses[:2] == [200, 200] and statuses[2] == 429
        limited = httpx.post(f"{url}/v1/responses", json=body, headers=bearer(secret), timeout=30)
        assert limited.status_code == 429 and "retry-after" in limited.headers
        assert limited.json()["error"]["type"] == "rate_limit_error"
