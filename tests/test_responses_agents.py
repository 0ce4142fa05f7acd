"""The OpenAI Agents SDK (``openai-agents``: its Responses model, the default) against the
gateway on embedded defaults' simulated deployments, one of each family: text, a stream, a tool
round trip (the SDK sends the call and its output back as items), structured output, and a
conversation continued with ``previous_response_id``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from agents import Agent, ModelSettings, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from pydantic import BaseModel

from switchpoint import defaults
from switchpoint.api.app import create_app
from switchpoint.config import parse

from gateway_harness import RecordingTransport, validate_sent
from servers import serve_in_thread

MODELS = ["sim-gpt", "sim-claude", "sim-gemini"]
CALLS: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    CALLS.append(city)
    return f"sunny in {city}"


class City(BaseModel):
    name: str
    population: int


@pytest.fixture(scope="module")
def defaults_gateway(simulator_url: str) -> Iterator[Any]:
    set_tracing_disabled(True)  # the SDK would export traces to OpenAI
    transport = RecordingTransport()
    cfg = parse(defaults.simulated_document(simulator_url), source="<embedded defaults>", env={})

    class Running:
        url: str
        sent = transport.sent

    with serve_in_thread(create_app(cfg, transport=transport)) as url:
        Running.url = url
        yield Running


@pytest.fixture
async def client(defaults_gateway: Any) -> AsyncIterator[openai.AsyncOpenAI]:
    defaults_gateway.sent.clear()
    c = openai.AsyncOpenAI(
        base_url=f"{defaults_gateway.url}/v1", api_key="unused-open-gateway", max_retries=0
    )
    yield c
    await c.close()
    validate_sent(defaults_gateway.sent)


def _agent(client: openai.AsyncOpenAI, model: str, **kw: Any) -> Agent[Any]:
    return Agent(
        name="helper",
        instructions="You are terse.",
        model=OpenAIResponsesModel(model=model, openai_client=client),
        **kw,
    )


@pytest.mark.parametrize("model", MODELS)
async def test_text(client: openai.AsyncOpenAI, model: str) -> None:
    result = await Runner.run(_agent(client, model), "Say hello")
    assert isinstance(result.final_output, str) and result.final_output.startswith(f"[simulated {model}]")
    usage = result.context_wrapper.usage
    assert usage.input_tokens > 0 and usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
async def test_stream(client: openai.AsyncOpenAI, model: str) -> None:
    result = Runner.run_streamed(_agent(client, model), "Say hello")
    deltas = [
        e.data.delta
        async for e in result.stream_events()
        if e.type == "raw_response_event" and e.data.type == "response.output_text.delta"
    ]
    assert "".join(deltas) == result.final_output and deltas


@pytest.mark.parametrize("model", MODELS)
async def test_tool_round_trip(client: openai.AsyncOpenAI, model: str) -> None:
    CALLS.clear()
    agent = _agent(client, model, tools=[get_weather], model_settings=ModelSettings(tool_choice="auto"))
    result = await Runner.run(agent, "What is the weather in Paris?", max_turns=3)
    assert len(CALLS) == 1  # the SDK ran the tool the model asked for, then asked again
    assert "The tool returned" in result.final_output and "sunny in" in result.final_output


@pytest.mark.parametrize("model", MODELS)
async def test_structured_output(client: openai.AsyncOpenAI, model: str) -> None:
    result = await Runner.run(_agent(client, model, output_type=City), "Describe a city")
    city = result.final_output
    assert isinstance(city, City) and isinstance(city.population, int)


@pytest.mark.parametrize("model", MODELS)
async def test_previous_response_id(client: openai.AsyncOpenAI, model: str) -> None:
    agent = _agent(client, model)
    first = await Runner.run(agent, "Remember the word cobalt")
    assert first.last_response_id is not None
    second = await Runner.run(agent, "Which word?", previous_response_id=first.last_response_id)
    assert second.final_output.startswith(f"[simulated {model}]")
    stored = await client.responses.retrieve(first.last_response_id)
    assert stored.output_text == first.final_output
