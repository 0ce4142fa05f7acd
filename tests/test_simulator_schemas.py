"""Minimal values from JSON schemas (the simulator's tool arguments and structured outputs),
checked with an independent JSON-schema validator."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from switchpoint.simulator.schemas import example, example_object

SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    },
    {"type": "string", "minLength": 10},
    {"type": "string", "maxLength": 2},
    {"type": "string", "format": "date-time"},
    {"type": "integer", "minimum": 5, "maximum": 9},
    {"type": "integer", "exclusiveMinimum": 5},
    {"type": "integer", "maximum": -3},
    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    {"type": "number", "minimum": 2.5},
    {"type": "number", "exclusiveMaximum": -1},
    {"type": "boolean"},
    {"type": "null"},
    {"type": ["null", "integer"], "minimum": 3},
    {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}], "minItems": 2},
    {"enum": ["red", "green"]},
    {"const": {"fixed": 1}},
    {
        "anyOf": [
            {"type": "null"},
            {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
        ]
    },
    {"oneOf": [{"type": "string", "minLength": 4}, {"type": "integer"}]},
    {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"properties": {"b": {"type": "boolean"}}, "required": ["b"]},
        ]
    },
    {
        "type": "object",
        "properties": {"node": {"$ref": "#/$defs/node"}},
        "required": ["node"],
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["name", "children"],
            }
        },
    },
    {
        "type": "object",
        "properties": {"when": {"$ref": "#/definitions/when"}},
        "required": ["when"],
        "definitions": {"when": {"type": "string", "format": "date"}},
    },
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_example_validates(schema: dict[str, Any]) -> None:
    Draft202012Validator(schema).validate(example(schema))


def test_example_is_minimal_and_deterministic() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
        "required": ["b"],
    }
    assert example(schema) == {"b": 0}
    assert example(schema) == example(schema)


def test_gemini_style_schema() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "count": {"type": "INTEGER", "minimum": 2},
            "names": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": "1"},
            "label": {"type": "STRING", "nullable": True, "minLength": "3"},
        },
        "required": ["count", "names", "label"],
    }
    assert example(schema) == {"count": 2, "names": ["sim"], "label": "sim"}


def test_tool_arguments_are_always_an_object() -> None:
    assert example_object(None) == {}
    assert example_object({"type": "string"}) == {}
    assert example_object({"type": "object"}) == {}
    assert example_object({"properties": {"q": {"type": "string"}}, "required": ["q"]}) == {"q": "sim"}


def test_unresolvable_or_cyclic_refs_terminate() -> None:
    assert example({"$ref": "#/$defs/missing"}) == "sim"  # an empty schema accepts anything
    looping: dict[str, Any] = {"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}}
    assert example(looping) == {}
    assert example_object(looping) == {}
