"""JSON mode in the simulator, in every wire family and through the gateway: `json_object` gives a
JSON document, `json_schema` (and a schema written into the prompt) a document valid against it,
streamed or not. Validity is checked with an independent validator (jsonschema, formats on)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from switchpoint.simulator import SimConfig, create_app
from switchpoint.simulator.patterns import sample
from switchpoint.simulator.schemas import example, instance

from gateway_harness import GATEWAY_KEY

FORMATS = Draft202012Validator.FORMAT_CHECKER
UPSTREAMS = ["openai", "anthropic", "gemini"]


def valid(schema: Any, value: Any) -> None:
    Draft202012Validator(schema, format_checker=FORMATS).validate(value)


# A structured-output schema of the kind clients send (pydantic's shape: $defs, refs, enums,
# nested objects and arrays, formats, additionalProperties false everywhere).
INVOICE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "number": {"type": "string", "pattern": "^INV-[0-9]{4}$"},
        "issued": {"type": "string", "format": "date"},
        "status": {"type": "string", "enum": ["draft", "sent", "paid"]},
        "customer": {"$ref": "#/$defs/Customer"},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}, "minItems": 1, "maxItems": 5},
        "total": {"type": "number", "minimum": 0.01},
        "notes": {"anyOf": [{"type": "string", "maxLength": 20}, {"type": "null"}]},
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "minItems": 3},
    },
    "required": ["number", "issued", "status", "customer", "lines", "total", "notes", "tags"],
    "additionalProperties": False,
    "$defs": {
        "Customer": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 2},
                "email": {"type": "string", "format": "email"},
                "vip": {"type": "boolean"},
            },
            "required": ["name", "email", "vip"],
            "additionalProperties": False,
        },
        "Line": {
            "type": "object",
            "properties": {
                "sku": {"type": "string"},
                "qty": {"type": "integer", "minimum": 1, "maximum": 99},
                "price": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.01},
            },
            "required": ["sku", "qty", "price"],
            "additionalProperties": False,
        },
    },
}


# --- the generator ------------------------------------------------------------------------------


CORPUS: list[dict[str, Any]] = [
    INVOICE,
    # allOf parts that disagree on an optional property, and two closed parts.
    {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}},
            {"properties": {"a": {"type": "integer"}, "b": {"minimum": 3}}, "required": ["b"]},
        ]
    },
    {
        "allOf": [
            {"type": "object", "properties": {"a": {}, "b": {}}, "additionalProperties": False},
            {"properties": {"b": {}, "c": {}}, "additionalProperties": False},
        ]
    },
    {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}},
    {"type": "object", "additionalProperties": {"type": "integer", "minimum": 3}, "minProperties": 2},
    {"type": "object", "properties": {"a": {}, "b": {}, "c": {}}, "maxProperties": 2, "required": ["c"]},
    {
        "type": "object",
        "properties": {"card": {"type": "string"}, "billing": {"type": "string"}},
        "required": ["card"],
        "dependentRequired": {"card": ["billing"]},
        "additionalProperties": False,
    },
    {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": 9},
        "uniqueItems": True,
        "minItems": 5,
    },
    {"type": "array", "items": {"enum": ["a", "b", "c"]}, "uniqueItems": True, "minItems": 3},
    {"type": "array", "items": {"type": "string", "maxLength": 1}, "uniqueItems": True, "minItems": 4},
    {"type": "array", "maxItems": 0},
    {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
    {"type": "array", "contains": {"type": "integer", "minimum": 10}, "minContains": 2},
    {"type": "integer", "multipleOf": 7, "minimum": 50},
    {"type": "integer", "multipleOf": 2.5, "minimum": 1},
    {"type": "number", "multipleOf": 0.25, "exclusiveMinimum": 3, "maximum": 3.5},
    {"type": "integer", "minimum": -10, "maximum": -5},
    {"type": "number", "minimum": 0.1, "maximum": 0.2},
    {"type": "string", "pattern": "^[A-Z]{3}-\\d{2,4}$"},
    {"type": "string", "pattern": "^(red|green|blue)$"},
    {"type": "string", "pattern": "^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$", "minLength": 12},
    {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
    {"type": "string", "format": "uuid"},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "ipv4"},
    {"type": "string", "format": "uri"},
    {"type": ["string", "null"], "minLength": 3},
    {"enum": [None, 1, "x"], "type": "integer"},
    {
        "allOf": [
            {"$ref": "#/$defs/base"},
            {"properties": {"extra": {"type": "boolean"}}, "required": ["extra"]},
        ],
        "$defs": {
            "base": {
                "type": "object",
                "properties": {"id": {"type": "integer", "minimum": 5}},
                "required": ["id"],
            }
        },
    },
    {"allOf": [{"type": "integer", "minimum": 3}, {"maximum": 4}]},
    {
        "$ref": "#/$defs/node",
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["value", "children"],
                "additionalProperties": False,
            }
        },
    },
]


@pytest.mark.parametrize("schema", CORPUS, ids=range(len(CORPUS)))
def test_filled_and_minimal_values_are_valid(schema: dict[str, Any]) -> None:
    valid(schema, instance(schema))
    valid(schema, example(schema))
    assert instance(schema) == instance(schema)


def test_instance_fills_optional_properties_and_arrays() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "array", "items": {"type": "integer"}}},
        "required": ["a"],
        "additionalProperties": False,
    }
    assert example(schema) == {"a": "sim"}
    assert instance(schema) == {"a": "sim", "b": [0]}
    doc = instance(INVOICE)
    assert list(doc) == list(INVOICE["properties"]) and len(doc["lines"]) == 1
    assert re.fullmatch("INV-[0-9]{4}", doc["number"]) and len(set(doc["tags"])) == 3


def test_patterns() -> None:
    for pattern in [
        r"^\d{3}-\d{4}$",
        r"^(foo|bar)_[0-9]{2,}$",
        r"^v\d+\.\d+\.\d+(-[a-z]+)?$",
        r"[^,]+",
        r"^\+?[1-9]\d{1,14}$",
    ]:
        for variant in range(3):
            text = sample(pattern, 0, -1, variant)
            assert text is not None and re.search(pattern, text), (pattern, text)
    assert len({sample(r"^[a-c][0-1]$", 0, -1, v) for v in range(6)}) == 6, "variants differ (unique items)"
    assert sample(r"^a+$", 5, 6) == "aaaaa"
    assert (
        sample("(?i)abc") is None and sample("(unclosed") is None
    )  # outside the subset: the caller falls back


# Random satisfiable schemas: every keyword combination below has a valid instance.
def _leaf() -> st.SearchStrategy[dict[str, Any]]:
    def string(lo: int, span: int, fmt: str | None) -> dict[str, Any]:
        if fmt is not None:
            return {"type": "string", "format": fmt}
        return {"type": "string", "minLength": lo, "maxLength": lo + span}

    def integer(lo: int, span: int, step: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "integer", "minimum": lo, "maximum": lo + span + (step or 0)}
        if step:
            out["multipleOf"] = step
        return out

    return st.one_of(
        st.builds(
            string,
            st.integers(0, 5),
            st.integers(0, 5),
            st.sampled_from([None, None, "date", "email", "uuid"]),
        ),
        st.builds(integer, st.integers(-50, 50), st.integers(0, 20), st.sampled_from([None, 2, 5])),
        st.builds(
            lambda lo, span, ex: {
                "type": "number",
                ("exclusiveMinimum" if ex else "minimum"): lo,
                "maximum": lo + span,
            },
            st.floats(-100, 100, allow_nan=False),
            st.floats(0.5, 50),
            st.booleans(),
        ),
        st.just({"type": "boolean"}),
        st.just({"type": "null"}),
        st.lists(
            st.one_of(st.integers(-5, 5), st.text("abc", max_size=3)), min_size=1, max_size=4, unique=True
        ).map(lambda values: {"enum": values}),
        st.sampled_from(["^[a-z]{2,5}$", "^\\d{3}$", "^(x|y)-[A-F0-9]{2}$"]).map(
            lambda p: {"type": "string", "pattern": p}
        ),
    )


def _extend(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    names = st.sampled_from(["id", "name", "items", "meta", "kind", "when", "x_1"])

    def obj(props: dict[str, Any], required: list[str], closed: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "object",
            "properties": props,
            "required": [n for n in required if n in props],
        }
        if closed:
            out["additionalProperties"] = False
        return out

    def arr(items: dict[str, Any], lo: int, span: int) -> dict[str, Any]:
        return {"type": "array", "items": items, "minItems": lo, "maxItems": lo + span}

    unique_items = st.sampled_from(
        [
            {"type": "string"},
            {"type": "string", "maxLength": 3},
            {"type": "integer", "minimum": -3, "maximum": 6},
            {"type": "string", "pattern": "^[a-d][0-9]$"},
            {"enum": ["a", "b", "c", "d"]},
        ]
    )

    # allOf parts as schemas are written: each adds its own properties (no contradictions).
    def part(pool: list[str]) -> st.SearchStrategy[dict[str, Any]]:
        return st.builds(
            obj,
            st.dictionaries(st.sampled_from(pool), children, max_size=3),
            st.lists(st.sampled_from(pool), max_size=2),
            st.just(False),
        )

    return st.one_of(
        st.builds(
            obj, st.dictionaries(names, children, max_size=5), st.lists(names, max_size=4), st.booleans()
        ),
        st.builds(arr, children, st.integers(0, 2), st.integers(0, 3)),
        st.builds(
            lambda items, n: {**arr(items, n, 0), "uniqueItems": True}, unique_items, st.integers(0, 4)
        ),
        st.builds(
            lambda a, b: {"allOf": [a, b]}, part(["id", "name", "kind"]), part(["meta", "when", "x_1"])
        ),
        st.builds(lambda a, b: {"anyOf": [a, b]}, children, children),
        st.builds(
            lambda s: {**s, "type": [s["type"], "null"]} if isinstance(s.get("type"), str) else s, children
        ),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(_leaf(), _extend, max_leaves=12))
def test_random_schemas_get_valid_values(schema: dict[str, Any]) -> None:
    valid(schema, instance(schema))
    valid(schema, example(schema))


# --- the simulator, per wire ------------------------------------------------------------------

OPENAI_H = {"authorization": "Bearer sk-test"}
ANTHROPIC_H = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
GEMINI_H = {"x-goog-api-key": "g-test"}
# instructor's JSON modes and LangChain's format instructions put the schema in the prompt.
INSTRUCTOR_SYSTEM = (
    "As a genius expert, your task is to understand the content and provide the parsed objects in json that "
    f"match the following json_schema:\n\n{json.dumps(INVOICE, indent=2)}\n\nMake sure to return an instance of "
    "the JSON, not the schema itself"
)
LANGCHAIN_USER = (
    "Tell me about the invoice.\nThe output should be formatted as a JSON instance that conforms to the JSON "
    'schema below.\n\nAs an example, for the schema {"properties": {"foo": {"title": "Foo", "description": "a '
    'list of strings", "type": "array", "items": {"type": "string"}}}, "required": ["foo"]}\nthe object {"foo": '
    '["bar", "baz"]} is a well-formatted instance of the schema. The object {"properties": {"foo": ["bar", '
    f'"baz"]}}}} is not well-formatted.\n\nHere is the output schema:\n```\n{json.dumps(INVOICE)}\n```'
)


@pytest.fixture
async def sim() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(SimConfig(seed=3)))
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        yield client


def _sse_data(text: str) -> list[Any]:
    return [
        json.loads(line[6:])
        for line in text.splitlines()
        if line.startswith("data: ") and line[6:] != "[DONE]"
    ]


async def _answer(
    sim: httpx.AsyncClient, family: str, stream: bool, messages: list[dict[str, str]], **fmt: Any
) -> str:
    """The answer's text from ``family``'s wire, streamed or not. ``fmt``: ``schema`` and/or
    ``json`` (JSON mode as the wire spells it)."""
    schema, json_mode = fmt.get("schema"), fmt.get("json", False)
    system = [m["content"] for m in messages if m["role"] == "system"]
    turns = [m for m in messages if m["role"] != "system"]
    if family == "openai":
        body: dict[str, Any] = {"model": "gpt-x", "messages": messages, "stream": stream}
        if schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "out", "schema": schema},
            }
        elif json_mode:
            body["response_format"] = {"type": "json_object"}
        r = await sim.post("/openai/v1/chat/completions", json=body, headers=OPENAI_H)
        assert r.status_code == 200, r.text
        if stream:
            return "".join(
                c["choices"][0]["delta"].get("content") or "" for c in _sse_data(r.text) if c["choices"]
            )
        return str(r.json()["choices"][0]["message"]["content"])
    if family == "anthropic":
        body = {"model": "claude-x", "max_tokens": 4096, "messages": turns, "stream": stream}
        if system:
            body["system"] = "\n".join(system)
        if schema is not None:
            body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        r = await sim.post("/anthropic/v1/messages", json=body, headers=ANTHROPIC_H)
        assert r.status_code == 200, r.text
        if stream:
            events = _sse_data(r.text)
            return "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
        return str(r.json()["content"][0]["text"])
    gen: dict[str, Any] = {}
    if schema is not None:
        gen = {"responseMimeType": "application/json", "responseJsonSchema": schema}
    elif json_mode:
        gen = {"responseMimeType": "application/json"}
    body = {
        "contents": [{"role": "user", "parts": [{"text": m["content"]}]} for m in turns],
        "generationConfig": gen,
    }
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n".join(system)}]}
    action = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
    r = await sim.post(f"/gemini/v1beta/models/gem-x{action}", json=body, headers=GEMINI_H)
    assert r.status_code == 200, r.text
    chunks = _sse_data(r.text) if stream else [r.json()]
    return "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"])


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("family", UPSTREAMS)
async def test_schema_in_the_api_is_filled(sim: httpx.AsyncClient, family: str, stream: bool) -> None:
    text = await _answer(sim, family, stream, [{"role": "user", "content": "the invoice"}], schema=INVOICE)
    valid(INVOICE, json.loads(text))
    assert text == await _answer(
        sim, family, not stream, [{"role": "user", "content": "the invoice"}], schema=INVOICE
    )


@pytest.mark.parametrize("family", UPSTREAMS)
async def test_json_mode_without_a_schema_is_a_json_object(sim: httpx.AsyncClient, family: str) -> None:
    messages = [{"role": "user", "content": "hello"}]
    if family == "anthropic":  # no json_object in the Messages API: the instruction the gateway adds
        messages.insert(
            0, {"role": "system", "content": "Respond with a single valid JSON object and nothing else."}
        )
    doc = json.loads(await _answer(sim, family, True, messages, json=True))
    assert isinstance(doc, dict) and doc["simulated"].endswith("-x")


@pytest.mark.parametrize("family", UPSTREAMS)
@pytest.mark.parametrize("where", ["instructor-system", "langchain-user"])
async def test_schema_in_the_prompt_is_filled(sim: httpx.AsyncClient, family: str, where: str) -> None:
    if where == "instructor-system":
        messages = [
            {"role": "system", "content": INSTRUCTOR_SYSTEM},
            {"role": "user", "content": "INV-0042 ..."},
        ]
    else:
        messages = [{"role": "user", "content": LANGCHAIN_USER}]
    for stream in (False, True):
        valid(INVOICE, json.loads(await _answer(sim, family, stream, messages, json=family != "anthropic")))


async def test_plain_prompts_stay_text(sim: httpx.AsyncClient) -> None:
    for family in UPSTREAMS:
        for prompt in ("what is JSON, in one line?", "Write a function that parses a JSON object."):
            text = await _answer(sim, family, False, [{"role": "user", "content": prompt}])
            assert text.startswith("[simulated"), (family, text)
        asked = await _answer(
            sim, family, False, [{"role": "user", "content": "List three colours. Answer in JSON."}]
        )
        assert isinstance(json.loads(asked), dict), (family, asked)


# --- through the gateway: the official SDKs, every upstream family ---------------------------------


@pytest.fixture
def oai(gateway: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=GATEWAY_KEY, max_retries=0)


@pytest.fixture
def ant(gateway: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0)


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "invoice", "schema": schema, "strict": True}}


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_openai_sdk_json_schema_every_family(oai: openai.OpenAI, upstream: str) -> None:
    messages: Any = [{"role": "user", "content": "Extract the invoice."}]
    answer = oai.chat.completions.create(
        model=f"up-{upstream}", messages=messages, response_format=_strict(INVOICE)
    )  # type: ignore[arg-type]
    text = answer.choices[0].message.content or ""
    valid(INVOICE, json.loads(text))
    streamed = oai.chat.completions.create(
        model=f"up-{upstream}",
        messages=messages,
        response_format=_strict(INVOICE),
        stream=True,  # type: ignore[arg-type]
    )
    joined = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    valid(INVOICE, json.loads(joined))


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_openai_sdk_json_object_every_family(oai: openai.OpenAI, upstream: str) -> None:
    plain = oai.chat.completions.create(
        model=f"up-{upstream}",
        messages=[{"role": "user", "content": "hi, in JSON"}],
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(plain.choices[0].message.content or ""), dict)
    # instructor's Mode.JSON: json_object, and the schema in the system prompt.
    messages: Any = [
        {"role": "system", "content": INSTRUCTOR_SYSTEM},
        {"role": "user", "content": "INV-0042"},
    ]
    for stream in (False, True):
        if stream:
            chunks = oai.chat.completions.create(
                model=f"up-{upstream}",
                messages=messages,
                response_format={"type": "json_object"},
                stream=True,
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            answer = oai.chat.completions.create(
                model=f"up-{upstream}", messages=messages, response_format={"type": "json_object"}
            )
            text = answer.choices[0].message.content or ""
        valid(INVOICE, json.loads(text))


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_anthropic_sdk_output_format_every_family(ant: anthropic.Anthropic, upstream: str) -> None:
    fmt = {"format": {"type": "json_schema", "schema": INVOICE}}
    messages: Any = [{"role": "user", "content": "Extract the invoice."}]
    message = ant.messages.create(
        model=f"up-{upstream}", max_tokens=4096, messages=messages, extra_body={"output_config": fmt}
    )
    block = message.content[0]
    assert block.type == "text"
    valid(INVOICE, json.loads(block.text))
    with ant.messages.stream(
        model=f"up-{upstream}", max_tokens=4096, messages=messages, extra_body={"output_config": fmt}
    ) as stream:
        text = "".join(stream.text_stream)
    valid(INVOICE, json.loads(text))


async def test_gemini_response_schema_in_openapi_style(sim: httpx.AsyncClient) -> None:
    """Gemini's own ``responseSchema`` dialect: upper-case types, ``nullable``, counts as strings,
    ``propertyOrdering``, ``format: enum``."""
    schema = {
        "type": "OBJECT",
        "properties": {
            "score": {"type": "NUMBER", "minimum": 1},
            "label": {"type": "STRING", "format": "enum", "enum": ["good", "bad"]},
            "notes": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": "2"},
            "extra": {"type": "STRING", "nullable": True},
        },
        "propertyOrdering": ["label", "score", "notes", "extra"],
        "required": ["score", "label"],
    }
    body = {
        "contents": [{"role": "user", "parts": [{"text": "rate it"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema},
    }
    r = await sim.post("/gemini/v1beta/models/gem-x:generateContent", json=body, headers=GEMINI_H)
    assert r.status_code == 200, r.text
    doc = json.loads(r.json()["candidates"][0]["content"]["parts"][0]["text"])
    assert list(doc) == ["label", "score", "notes", "extra"]
    assert doc["label"] == "good" and doc["score"] >= 1 and len(doc["notes"]) == 2


async def test_anthropic_prefill_is_continued(sim: httpx.AsyncClient) -> None:
    """A final assistant turn that opens a JSON document (Anthropic's prefill): the answer is
    the rest of it, and prefill plus answer fill the schema written in the prompt."""
    for stream in (False, True):
        messages = [{"role": "user", "content": LANGCHAIN_USER}, {"role": "assistant", "content": "{"}]
        text = await _answer(sim, "anthropic", stream, messages)
        assert not text.startswith("{")
        valid(INVOICE, json.loads("{" + text))
    listed = [{"role": "user", "content": "three colours"}, {"role": "assistant", "content": "["}]
    assert isinstance(json.loads("[" + await _answer(sim, "anthropic", False, listed)), list)
