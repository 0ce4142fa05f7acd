"""Bedrock Runtime's published service model (botocore's ``bedrock-runtime/2023-09-30``, which
ships inside the botocore package) as a validator of the JSON the gateway sends and receives.

``check_request`` checks a request's path against the operation's ``requestUri`` and its body
(plus ``modelId`` from the path) against the operation's input shape; ``check_value`` checks any
JSON value (a response, a stream event's payload) against a named shape: unknown members,
missing required members, enum values, types, and string patterns and lengths.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import botocore

MODEL_FILE = Path(botocore.__file__).parent / "data" / "bedrock-runtime" / "2023-09-30" / "service-2.json.gz"
OPERATIONS = {
    "converse": "Converse",
    "converse-stream": "ConverseStream",
    "invoke": "InvokeModel",
    "invoke-with-response-stream": "InvokeModelWithResponseStream",
}


@functools.cache
def model() -> dict[str, Any]:
    with gzip.open(MODEL_FILE) as f:
        data: dict[str, Any] = json.load(f)
    return data


class Invalid(AssertionError):
    pass


def check_value(value: Any, shape_name: str, path: str = "$") -> None:
    shapes = model()["shapes"]
    shape = shapes[shape_name]
    kind = shape["type"]
    if shape.get("document"):
        return  # a document takes any JSON value
    if kind == "structure":
        if not isinstance(value, dict):
            raise Invalid(f"{path}: expected an object for {shape_name}, got {type(value).__name__}")
        members = shape["members"]
        for key in value:
            if key not in members:
                raise Invalid(f"{path}.{key}: not a member of {shape_name} ({', '.join(members)})")
        for key in shape.get("required", []):
            if key not in value and members[key].get("location") is None:
                raise Invalid(f"{path}: {shape_name} requires {key}")
        if shape.get("union") and len(value) != 1:
            raise Invalid(f"{path}: {shape_name} is a union: exactly one member, got {sorted(value)}")
        for key, item in value.items():
            check_value(item, members[key]["shape"], f"{path}.{key}")
    elif kind == "list":
        if not isinstance(value, list):
            raise Invalid(f"{path}: expected a list for {shape_name}")
        if "min" in shape and len(value) < shape["min"]:
            raise Invalid(f"{path}: {shape_name} needs at least {shape['min']} item(s)")
        for i, item in enumerate(value):
            check_value(item, shape["member"]["shape"], f"{path}[{i}]")
    elif kind == "map":
        if not isinstance(value, dict):
            raise Invalid(f"{path}: expected a map for {shape_name}")
        for k, v in value.items():
            check_value(v, shape["value"]["shape"], f"{path}.{k}")
    elif kind == "string":
        if not isinstance(value, str):
            raise Invalid(f"{path}: expected a string for {shape_name}, got {value!r}")
        if "enum" in shape and value not in shape["enum"]:
            raise Invalid(f"{path}: {value!r} is not one of {shape['enum']}")
        if "min" in shape and len(value) < shape["min"]:
            raise Invalid(f"{path}: {shape_name} is at least {shape['min']} character(s)")
        if "max" in shape and len(value) > shape["max"]:
            raise Invalid(f"{path}: {shape_name} is at most {shape['max']} characters")
        if "pattern" in shape and not re.fullmatch(shape["pattern"], value):
            raise Invalid(f"{path}: {value!r} does not match {shape_name}'s pattern")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise Invalid(f"{path}: expected an integer for {shape_name}")
        if "min" in shape and value < shape["min"]:
            raise Invalid(f"{path}: {shape_name} is at least {shape['min']}")
    elif kind in ("float", "double"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise Invalid(f"{path}: expected a number for {shape_name}")
        if ("min" in shape and value < shape["min"]) or ("max" in shape and value > shape["max"]):
            raise Invalid(f"{path}: {value} is outside {shape_name}'s range")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise Invalid(f"{path}: expected a boolean for {shape_name}")
    elif kind == "blob":
        if not isinstance(value, str):
            raise Invalid(f"{path}: a blob travels as base64 text in JSON")
        base64.b64decode(value, validate=True)
    elif kind == "timestamp" and not isinstance(value, int | float | str):
        raise Invalid(f"{path}: expected a timestamp")


def check_request(method: str, url: str, body: bytes, headers: dict[str, str]) -> str:
    """Validate one request the gateway sends to Bedrock; returns the operation's name."""
    parts = urlsplit(url)
    m = re.fullmatch(r".*/model/([^/]+)/([a-z-]+)", parts.path)
    assert m is not None, f"not a Bedrock Runtime path: {parts.path}"
    op_name = OPERATIONS[m.group(2)]
    op = model()["operations"][op_name]
    assert method == op["http"]["method"]
    assert parts.path.endswith(op["http"]["requestUri"].replace("{modelId}", m.group(1)))
    model_id = unquote(m.group(1))
    input_shape = op["input"]["shape"]
    if op_name.startswith("Converse"):
        value = json.loads(body)
        check_value({"modelId": model_id, **value}, input_shape)
    else:  # InvokeModel: the body is the model's own (Anthropic Messages for Claude)
        check_value({"modelId": model_id}, input_shape)
        value = json.loads(body)
        assert value.get("anthropic_version") == "bedrock-2023-05-31", value
        assert "model" not in value and "stream" not in value
    lower = {k.lower(): v for k, v in headers.items()}
    assert lower.get("content-type") == "application/json"
    return op_name


#: ConverseStream event names → the shape of their payload.
def stream_shape(event: str, operation: str) -> str:
    union = model()["shapes"]["ConverseStreamOutput" if operation == "ConverseStream" else "ResponseStream"]
    return str(union["members"][event]["shape"])
