"""Fuzzing the gateway with schemathesis over the providers' published request schemas.

For each operation the gateway serves, schemathesis generates requests from the OpenAI and
Anthropic OpenAPI documents (``specs/``), valid ones (positive) and ones that break the schema
(negative), and sends them to the gateway over HTTP with the simulator behind it. Each answer
must pass ``not_a_server_error`` (a 5xx the gateway produced itself fails; an upstream's 5xx
passed through is counted apart), ``content_type_conformance`` and
``response_schema_conformance``. Every failure is collected and reported, not just the first.

The run is deterministic (derandomised); ``SWITCHPOINT_FUZZ_SEED=<int>`` explores other cases.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from switchpoint.simulator import Behavior, SimConfig
from switchpoint.simulator import create_app as simulator_app

import specs
from outside_harness import SUMMARY, RunningGateway, UpstreamWatch, gateway_in_thread
from servers import serve_in_thread


def spec_path(family: str) -> Path:
    """The published OpenAPI document of ``family`` (the repository's copy, ``specs/``)."""
    return specs.SPECS / specs.FILES[family]


# Where the published documents disagree with the real APIs (and the SDKs), the APIs win:
# each correction is applied to an in-memory copy before generating, with its reason.
def _embedding_base64(doc: dict[str, Any]) -> None:
    """OpenAI: with ``encoding_format: base64`` the API answers each embedding as a base64
    string (the SDK asks for it and decodes it); the document only describes the float list."""
    prop = doc["components"]["schemas"]["Embedding"]["properties"]
    prop["embedding"] = {"anyOf": [prop["embedding"], {"type": "string", "contentEncoding": "base64"}]}


def _responses_stream(doc: dict[str, Any]) -> None:
    """OpenAI: ``POST /v1/responses`` declares ``ResponseStreamEvent`` as its event stream's
    schema, the schema of one event's JSON ``data``; schemathesis validates each SSE event's
    envelope (``{"event", "data"}``) against it instead. The events are validated one by one in
    ``tests/test_responses_sdk.py``."""
    doc["paths"]["/responses"]["post"]["responses"]["200"]["content"]["text/event-stream"] = {}


def _messages_stream(doc: dict[str, Any]) -> None:
    """Anthropic: ``stream: true`` answers ``text/event-stream`` (documented in prose, not in
    the document's responses)."""
    doc["paths"]["/v1/messages"]["post"]["responses"]["200"]["content"]["text/event-stream"] = {}


def _text_block_citations(doc: dict[str, Any]) -> None:
    """Anthropic: the API leaves ``citations`` out of a text block that has none, and the
    clients expect that (``@ai-sdk/anthropic`` rejects ``"citations": null``); the document
    marks the key required."""
    block = doc["components"]["schemas"]["ResponseTextBlock"]
    block["required"] = [name for name in block["required"] if name != "citations"]


def _response_404_envelope(doc: dict[str, Any]) -> None:
    """OpenAI: ``DELETE /v1/responses/{id}`` and ``POST /v1/responses/{id}/cancel`` document
    their 404 as the bare ``Error`` object; the API sends every error inside ``{"error": …}``
    (``ErrorResponse``), which is where the SDK reads it (``APIStatusError.body["error"]``)."""
    for path, method in (("/responses/{response_id}", "delete"), ("/responses/{response_id}/cancel", "post")):
        content = doc["paths"][path][method]["responses"]["404"]["content"]["application/json"]
        content["schema"] = {"$ref": "#/components/schemas/ErrorResponse"}


CORRECTIONS: dict[str, tuple[Callable[[dict[str, Any]], None], ...]] = {
    "openai": (_embedding_base64, _responses_stream, _response_404_envelope),
    "anthropic": (_messages_stream, _text_block_citations),
}


@dataclass(frozen=True)
class Operation:
    family: str
    operation_id: str
    examples: int  # per generation mode
    budget_s: float  # per generation mode: past it no more cases are generated
    models: tuple[str, ...] = ()  # served names put in the body's "model" in turn ("" = keep generated)
    path_models: tuple[str, ...] = ()  # the same for the path's model parameter
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


_CHAT_TARGETS = ("sim-gpt", "sim-claude", "sim-gemini", "")
OPERATIONS = (
    Operation("openai", "createChatCompletion", 80, 6.0, models=_CHAT_TARGETS),
    Operation("openai", "createResponse", 80, 6.0, models=_CHAT_TARGETS),
    Operation("openai", "Getinputtokencounts", 40, 4.0, models=("sim-gpt", "sim-claude", "")),
    Operation("openai", "createEmbedding", 40, 3.0, models=("sim-embed", "embed", "")),
    Operation("openai", "listModels", 10, 1.5),
    Operation("openai", "retrieveModel", 20, 2.0, path_models=("sim-gpt", "smart", "")),
    Operation("anthropic", "messages_post", 80, 6.0, models=("sim-claude", "sim-gpt", "sim-gemini", "")),
    Operation("anthropic", "messages_count_tokens_post", 40, 4.0, models=("sim-claude", "sim-gpt", "")),
    Operation("anthropic", "models_list", 10, 1.5),
    # Its only inputs are a path string and optional header strings: nothing to break, so
    # schemathesis cannot generate a negative case (it tries for seconds, then gives up).
    Operation(
        "anthropic",
        "models_get",
        20,
        2.0,
        path_models=("sim-claude", "smart", ""),
        modes=(GenerationMode.POSITIVE,),
    ),
    # The stored objects' routes: the lists' query parameters (limit, order, after, filters) and
    # the bodies (a batch, a metadata update) in both modes; the routes whose only inputs are a
    # path id (and headers) in the positive mode, for the reason above. Generated ids name no
    # object, so most of these answer 404: the check is that none is a 5xx of the gateway's.
    *(
        Operation("openai", op, 20, 2.0)
        for op in (
            "listChatCompletions",
            "updateChatCompletion",
            "getChatCompletionMessages",
            "getResponse",
            "listInputItems",
            "listFiles",
            "listBatches",
            "createBatch",
        )
    ),
    *(
        Operation("openai", op, 10, 1.5, modes=(GenerationMode.POSITIVE,))
        for op in (
            "getChatCompletion",
            "deleteChatCompletion",
            "deleteResponse",
            "cancelResponse",
            "retrieveFile",
            "deleteFile",
            "downloadFile",
            "retrieveBatch",
            "cancelBatch",
        )
    ),
    Operation("anthropic", "message_batches_post", 20, 2.0),
    Operation("anthropic", "message_batches_list", 20, 2.0),
    *(
        Operation("anthropic", op, 10, 1.5, modes=(GenerationMode.POSITIVE,))
        for op in (
            "message_batches_retrieve",
            "message_batches_delete",
            "message_batches_cancel",
            "message_batches_results",
        )
    ),
)
BASE_PATH = {"openai": "/v1", "anthropic": ""}  # the documents' server paths


@functools.cache
def _schema(family: str) -> Any:
    doc = json.loads(spec_path(family).read_text())
    for correct in CORRECTIONS[family]:
        correct(doc)
    return schemathesis.openapi.from_dict(doc)


def _operation(op: Operation) -> Any:
    found = [r.ok() for r in _schema(op.family).include(operation_id=op.operation_id).get_all_operations()]
    assert len(found) == 1, f"{op.operation_id} not in the {op.family} document"
    return found[0]


@dataclass
class Tally:
    cases: Counter[str] = field(default_factory=Counter)  # per mode
    statuses: Counter[int] = field(default_factory=Counter)
    upstream_5xx: int = 0
    failures: list[str] = field(default_factory=list)
    out_of_time: list[str] = field(default_factory=list)  # modes stopped by the time budget


class _OutOfTime(Exception):
    """Raised from a case to end the operation's run when its time budget is spent."""


def _prepare(case: Any, op: Operation, turn: int) -> None:
    """Point some cases at served models, so they reach the simulator instead of a 404."""
    if op.models and isinstance(case.body, dict) and isinstance(case.body.get("model"), str):
        target = op.models[turn % len(op.models)]
        if target:
            case.body["model"] = target
    if op.path_models and case.path_parameters:
        target = op.path_models[turn % len(op.path_models)]
        if target:
            name = next(iter(case.path_parameters))
            case.path_parameters[name] = target
    if op.family == "anthropic":
        # The header is what makes GET /v1/models answer in Anthropic's shape.
        headers = dict(case.headers or {})
        if not isinstance(headers.get("anthropic-version"), str) or not headers["anthropic-version"]:
            headers["anthropic-version"] = "2023-06-01"
        case.headers = headers


def _fuzz(op: Operation, gateway: RunningGateway, mode: GenerationMode, tally: Tally) -> None:
    operation = _operation(op)
    deadline = time.monotonic() + op.budget_s
    session = requests.Session()
    base_url = gateway.url + BASE_PATH[op.family]
    env_seed = os.environ.get("SWITCHPOINT_FUZZ_SEED")

    @settings(
        max_examples=op.examples,
        deadline=None,
        database=None,
        derandomize=env_seed is None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        if time.monotonic() > deadline:
            raise _OutOfTime
        _prepare(case, op, sum(tally.cases.values()))
        tally.cases[mode.value] += 1
        before = len(gateway.watch.server_errors)
        try:
            response = case.call(base_url=base_url, session=session, timeout=15)
        except requests.RequestException as exc:
            tally.failures.append(f"{mode.value}: no answer ({exc!r}) to {case.as_curl_command()}")
            return
        tally.statuses[response.status_code] += 1
        upstream = len(gateway.watch.server_errors) > before
        checks = [content_type_conformance, response_schema_conformance]
        if response.status_code >= 500 and upstream:
            tally.upstream_5xx += 1  # an upstream's answer passed through: not the gateway's
        else:
            checks.append(not_a_server_error)
        try:
            case.validate_response(response, checks=checks)
        except (Exception, BaseExceptionGroup) as exc:  # one failure, or a group of them
            tally.failures.append(f"{mode.value} [{response.status_code}]: {exc}"[:3000])

    if env_seed is not None:
        run = seed(int(env_seed))(run)
    try:
        run()
    except _OutOfTime:
        tally.out_of_time.append(mode.value)


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.family}-{op.operation_id}")
def test_fuzz_operation(op: Operation, outside_gateway: RunningGateway) -> None:
    tally = Tally()
    started = time.monotonic()
    for mode in op.modes:
        _fuzz(op, outside_gateway, mode, tally)
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(tally.statuses.items()))
    SUMMARY.append(
        f"fuzz {op.family} {op.operation_id}: {tally.cases['positive']} positive + "
        f"{tally.cases['negative']} negative cases in {time.monotonic() - started:.1f} s; "
        f"statuses {{{statuses}}}; upstream 5xx passed through: {tally.upstream_5xx}; "
        f"failures: {len(tally.failures)}"
        + (f"; time budget reached in {'/'.join(tally.out_of_time)}" if tally.out_of_time else "")
    )
    assert sum(tally.cases.values()) > 0
    assert not tally.failures, f"{len(tally.failures)} failing case(s):\n\n" + "\n\n".join(tally.failures[:5])


# The harness itself: a 5xx the gateway makes fails the run, an upstream's passed through does not.


def test_fuzz_counts_an_upstream_5xx_passed_through_apart() -> None:
    failing = simulator_app(SimConfig(default=Behavior(status=503)))
    op = Operation(
        "openai", "createEmbedding", 10, 5.0, models=("sim-embed",), modes=(GenerationMode.POSITIVE,)
    )
    tally = Tally()
    with serve_in_thread(failing) as sim, gateway_in_thread(sim, {}) as gateway:
        _fuzz(op, gateway, GenerationMode.POSITIVE, tally)
    assert tally.upstream_5xx > 0, tally
    assert tally.statuses[503] == tally.upstream_5xx
    assert not tally.failures, tally.failures[:1]


def test_fuzz_fails_a_5xx_the_server_made_itself() -> None:
    async def broken(request: Any) -> JSONResponse:
        return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, status_code=500)

    app = Starlette(routes=[Route("/v1/models", broken)])
    op = Operation("openai", "listModels", 5, 5.0, modes=(GenerationMode.POSITIVE,))
    tally = Tally()
    with serve_in_thread(app) as url:
        # no database and no owner: nothing is stored behind this stand-in server
        gateway = RunningGateway(url, UpstreamWatch(), database_url="", owner=lambda _headers: "")
        _fuzz(op, gateway, GenerationMode.POSITIVE, tally)
    assert tally.cases["positive"] == tally.statuses[500] > 0
    assert len(tally.failures) == tally.cases["positive"]
    assert "Server error" in tally.failures[0], tally.failures[0]
