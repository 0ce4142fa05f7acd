"""The smallest deterministic value that a JSON schema accepts.

Covers what tool parameters and structured outputs use in practice: objects with ``required``,
strings (``minLength``/``maxLength``/``format``), numbers and integers with bounds, booleans,
arrays with ``minItems``, ``enum``/``const``, ``anyOf``/``oneOf``/``allOf``, local ``$ref``s, and
Gemini's OpenAPI-style schemas (upper-case type names, ``nullable``, counts as strings).
"""

from __future__ import annotations

import math
from typing import Any

_MAX_DEPTH = 24
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "sim@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "hostname": "example.com",
}


def example_object(schema: Any) -> dict[str, Any]:
    """A minimal object for a tool's parameter schema (``{}`` when the schema says nothing)."""
    value = example(schema)
    return value if isinstance(value, dict) else {}


def example(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A minimal value valid against ``schema`` (``root`` resolves ``#/…`` references)."""
    if root is None:
        root = schema
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None if schema is False else {}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return example(_resolve(ref, root), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return example(_pick(options, root), root, depth + 1)
    parts = schema.get("allOf")
    if isinstance(parts, list) and parts:
        return example(_combine(schema, parts, root), root, depth + 1)
    return _typed(schema, _type_of(schema), root, depth)


def _typed(schema: dict[str, Any], kind: str, root: Any, depth: int) -> Any:
    if kind == "object":
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        required = schema.get("required")
        names = [n for n in required if isinstance(n, str)] if isinstance(required, list) else []
        return {name: example(props.get(name, {}), root, depth + 1) for name in names}
    if kind == "array":
        count = _int(schema.get("minItems"), 0)
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list) and prefix:
            return [example(p, root, depth + 1) for p in prefix[: max(count, len(prefix))]]
        return [example(schema.get("items", {}), root, depth + 1) for _ in range(count)]
    if kind == "string":
        return _string(schema)
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return "sim"


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if isinstance(k, str) and k.lower() != "null"), "null")
    if isinstance(kind, str) and kind:
        return kind.lower()
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return ""


def _pick(options: list[Any], root: Any) -> Any:
    for option in options:
        resolved = _resolve(option["$ref"], root) if isinstance(option, dict) and "$ref" in option else option
        if isinstance(resolved, dict) and _type_of(resolved) != "null":
            return option
    return options[0]


def _combine(schema: dict[str, Any], parts: list[Any], root: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    props: dict[str, Any] = dict(merged.get("properties") or {})
    required: list[Any] = list(merged.get("required") or [])
    for part in parts:
        if isinstance(part, dict) and isinstance(part.get("$ref"), str):
            part = _resolve(part["$ref"], root)
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                props.update(value)
            elif key == "required" and isinstance(value, list):
                required.extend(n for n in value if n not in required)
            else:
                merged.setdefault(key, value)
    merged["properties"] = props
    merged["required"] = required
    return merged


def _resolve(ref: str, root: Any) -> Any:
    if not ref.startswith("#"):
        return {}
    node = root
    for token in ref[1:].split("/"):
        if not token:
            continue
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        else:
            return {}
    return node


def _string(schema: dict[str, Any]) -> str:
    fmt = schema.get("format")
    text = _FORMATS.get(fmt, "sim") if isinstance(fmt, str) else "sim"
    low = _int(schema.get("minLength"), 0)
    if len(text) < low:
        text = text + "x" * (low - len(text))
    high = _int(schema.get("maxLength"), -1)
    if high >= 0:
        text = text[:high]
    return text


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    low, low_open = _bound(schema, "minimum", "exclusiveMinimum")
    high, high_open = _bound(schema, "maximum", "exclusiveMaximum")
    low_ok = low is None or low < 0 or (low == 0 and not low_open)
    high_ok = high is None or high > 0 or (high == 0 and not high_open)
    if low_ok and high_ok:
        return 0 if integer else 0.0
    if integer:
        if not low_ok and low is not None:
            return math.floor(low) + 1 if low_open else math.ceil(low)
        assert high is not None
        return math.ceil(high) - 1 if high_open else math.floor(high)
    if low is not None and high is not None:
        return (low + high) / 2
    if low is not None:
        return low + 1 if low_open else low
    assert high is not None
    return high - 1 if high_open else high


def _bound(schema: dict[str, Any], plain: str, exclusive: str) -> tuple[float | None, bool]:
    ex = schema.get(exclusive)
    if isinstance(ex, int | float) and not isinstance(ex, bool):
        return float(ex), True
    value = _num(schema.get(plain))
    return value, bool(ex is True and value is not None)


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _int(value: Any, default: int) -> int:
    number = _num(value)
    return default if number is None else max(0, int(number))
