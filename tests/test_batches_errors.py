"""Bad input to Files and Batches gets the client's error JSON and status, and stores nothing:
malformed JSONL, an unknown file id, a file of the wrong purpose, a wrong endpoint or window,
a bad upload; Anthropic's message batches with bad requests, an unknown id, results asked for
too early. (A well-formed line naming an unknown model is answered per line: see
test_batches_sdk.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from governance_harness import configured_url_wins, doc
from resilience_harness import AUTH, Server, gateway
from switchpoint.api.batch_runner import retry_wait
from switchpoint.api.chat import Reply
from switchpoint.simulator import Behavior, SimConfig
from switchpoint.simulator import create_app as create_sim

import specs

__all__ = ["configured_url_wins"]
ANTHROPIC = {**AUTH, "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig(default=Behavior(latency_ms=50)))) as server:
        yield server.url


def _upload(url: str, content: bytes, purpose: str = "batch") -> httpx.Response:
    return httpx.post(
        f"{url}/v1/files",
        headers=AUTH,
        data={"purpose": purpose},
        files={"file": ("in.jsonl", content, "application/jsonl")},
        timeout=30,
    )


def _create(url: str, file_id: str, **fields: Any) -> httpx.Response:
    body = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        **fields,
    }
    return httpx.post(f"{url}/v1/batches", headers=AUTH, json=body, timeout=30)


def _openai_error(r: httpx.Response, status: int, param: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    specs.check_schema("openai", "ErrorResponse", r.json())
    if param is not None:
        assert error["param"] == param
    return dict(error)


GOOD = {
    "custom_id": "a",
    "method": "POST",
    "url": "/v1/chat/completions",
    "body": {"model": "fast", "messages": [{"role": "user", "content": "hi"}]},
}


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        ([json.dumps(GOOD), "{not json"], "line 2: not valid JSON"),
        ([json.dumps(GOOD), json.dumps(GOOD)], "line 2: the custom_id 'a' is used twice"),
        ([json.dumps({**GOOD, "url": "/v1/embeddings"})], "line 1: 'url' must be the batch's endpoint"),
        ([json.dumps({**GOOD, "method": "GET"})], "line 1: 'method' must be 'POST'"),
        (
            [json.dumps({**GOOD, "body": {**GOOD["body"], "stream": True}})],
            "line 1: a batch's requests cannot stream",
        ),
        ([json.dumps([1, 2])], "line 1: expected a JSON object"),
        (["", "  "], "it has no requests"),
    ],
)
def test_a_bad_input_file_is_a_400_naming_the_line(
    sim: str, tmp_path: Path, lines: list[str], says: str
) -> None:
    with gateway(doc(sim, tmp_path, None)) as (url, _, _):
        uploaded = _upload(url, "\n".join(lines).encode() + b"\n")
        assert uploaded.status_code == 200, uploaded.text
        error = _openai_error(_create(url, uploaded.json()["id"]), 400, "input_file_id")
        assert error["type"] == "invalid_request_error" and says in error["message"]
        listed = httpx.get(f"{url}/v1/batches", headers=AUTH, timeout=30).json()
        assert listed["data"] == []  # nothing was stored


def test_unknown_ids_wrong_purpose_and_bad_fields(sim: str, tmp_path: Path) -> None:
    with gateway(doc(sim, tmp_path, None)) as (url, _, _):
        _openai_error(_create(url, "file-nope"), 404, "input_file_id")
        other = _upload(url, json.dumps(GOOD).encode(), purpose="user_data").json()
        error = _openai_error(_create(url, other["id"]), 400, "input_file_id")
        assert error["code"] == "invalid_file_purpose"
        good = _upload(url, json.dumps(GOOD).encode()).json()
        _openai_error(_create(url, good["id"], endpoint="/v1/videos"), 400, "endpoint")
        _openai_error(_create(url, good["id"], completion_window="1h"), 400, "completion_window")
        _openai_error(_create(url, good["id"], metadata={"k": 1}), 400, "metadata")
        bad_json = httpx.post(f"{url}/v1/batches", headers=AUTH, content=b"{", timeout=30)
        _openai_error(bad_json, 400)
        for path in ("/v1/batches/batch_nope", "/v1/files/file-nope", "/v1/files/file-nope/content"):
            _openai_error(httpx.get(f"{url}{path}", headers=AUTH, timeout=30), 404)
        _openai_error(httpx.post(f"{url}/v1/batches/batch_nope/cancel", headers=AUTH, timeout=30), 404)
        _openai_error(httpx.delete(f"{url}/v1/files/file-nope", headers=AUTH, timeout=30), 404)
        _openai_error(_upload(url, b"x", purpose="batch_output"), 400, "purpose")
        _openai_error(_upload(url, b"", purpose="batch"), 400, "file")
        no_file = httpx.post(f"{url}/v1/files", headers=AUTH, data={"purpose": "batch"}, timeout=30)
        _openai_error(no_file, 400)
        not_multipart = httpx.post(f"{url}/v1/files", headers=AUTH, json={"purpose": "batch"}, timeout=30)
        _openai_error(not_multipart, 400)
        unauthenticated = httpx.get(f"{url}/v1/batches", timeout=30)
        _openai_error(unauthenticated, 401)


def _anthropic_error(r: httpx.Response, status: int, kind: str) -> str:
    assert r.status_code == status, r.text
    specs.check_schema("anthropic", "ErrorResponse", r.json())
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == kind
    return str(r.json()["error"]["message"])


def test_anthropic_message_batches_refuse_bad_requests(sim: str, tmp_path: Path) -> None:
    params = {"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    with gateway(doc(sim, tmp_path, None)) as (url, _, _):

        def create(body: Any) -> httpx.Response:
            return httpx.post(f"{url}/v1/messages/batches", headers=ANTHROPIC, json=body, timeout=30)

        _anthropic_error(create({"requests": []}), 400, "invalid_request_error")
        _anthropic_error(create({}), 400, "invalid_request_error")
        dup = [{"custom_id": "x", "params": params}] * 2
        assert "used twice" in _anthropic_error(create({"requests": dup}), 400, "invalid_request_error")
        bad_id = [{"custom_id": "has space", "params": params}]
        assert "custom_id" in _anthropic_error(create({"requests": bad_id}), 400, "invalid_request_error")
        streaming = [{"custom_id": "s", "params": {**params, "stream": True}}]
        _anthropic_error(create({"requests": streaming}), 400, "invalid_request_error")
        missing = httpx.get(f"{url}/v1/messages/batches/msgbatch_nope", headers=ANTHROPIC, timeout=30)
        _anthropic_error(missing, 404, "not_found_error")
        running = create({"requests": [{"custom_id": f"r{i}", "params": params} for i in range(200)]})
        assert running.status_code == 200, running.text
        early = httpx.get(
            f"{url}/v1/messages/batches/{running.json()['id']}/results", headers=ANTHROPIC, timeout=30
        )
        _anthropic_error(early, 400, "invalid_request_error")
        # an OpenAI batch id is not an Anthropic one, nor the other way round
        other = httpx.get(f"{url}/v1/batches/{running.json()['id']}", headers=AUTH, timeout=30)
        _openai_error(other, 404)


def test_without_the_ledger_files_and_batches_say_so(sim: str, tmp_path: Path) -> None:
    with gateway(doc(sim, tmp_path, None, storage={"enabled": False})) as (url, _, _):
        error = _openai_error(_upload(url, json.dumps(GOOD).encode()), 400)
        assert "storage.enabled" in error["message"]
        _openai_error(httpx.get(f"{url}/v1/batches", headers=AUTH, timeout=30), 400)
        listed = httpx.get(f"{url}/v1/messages/batches", headers=ANTHROPIC, timeout=30)
        assert "storage.enabled" in _anthropic_error(listed, 400, "invalid_request_error")


@pytest.mark.parametrize(
    ("status", "retry_after", "waits"),
    [
        (429, "2", 2.0),
        (429, None, None),
        (429, "3600", None),
        (503, None, 1.0),
        (503, "x", None),
        (400, "1", None),
    ],
)
def test_which_refused_lines_go_again(status: int, retry_after: str | None, waits: float | None) -> None:
    headers = {} if retry_after is None else {"retry-after": retry_after}
    assert retry_wait(Reply(status, headers, b"{}")) == waits
