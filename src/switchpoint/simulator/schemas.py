"""Deterministic values that a JSON schema accepts: the simulator's tool arguments and answers
in JSON mode.

:func:`example` gives the smallest value (only required properties, only the items
``minItems`` asks for); :func:`instance` fills the schema: every declared property (as far as
``maxProperties`` allows), at least one item per array, a few levels deep. Both cover what tool
parameters and structured outputs use: ``type`` (one or a list), objects with ``properties``,
``required``, ``additionalProperties``, ``minProperties``/``maxProperties`` and
``dependentRequired``; strings with ``minLength``/``maxLength``, simple ``format``s and
``pattern``s; numbers and integers with bounds and ``multipleOf``; booleans; arrays with
``items``, ``prefixItems``, ``minItems``/``maxItems``, ``uniqueItems`` and ``contains``;
``enum``/``const``; ``anyOf``/``oneOf``/``allOf``; local ``$ref``s (``$defs``, ``definitions``);
and Gemini's OpenAPI-style schemas (upper-case type names, ``nullable``, counts as strings,
``propertyOrdering``).
"""

from __future__ import annotations

import math
import re
from typing import Any

from .patterns import sample as sample_pattern

_MAX_DEPTH = 24
#: How deep :func:`instance` adds optional properties and array items (below: minimal values).
FILL_DEPTH = 4
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "duration": "P1D",
    "email": "sim@example.com",
    "idn-email": "sim@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "/sim",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "json-pointer": "/sim",
    "regex": "sim",
    "byte": "c2lt",
    "int64": "0",
}


def example_object(schema: Any) -> dict[str, Any]:
    """A minimal object for a tool's parameter schema (``{}`` when the schema says nothing)."""
    value = example(schema)
    return value if isinstance(value, dict) else {}


def example(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """The smallest value valid against ``schema`` (``root`` resolves ``#/…`` references)."""
    return _Gen(schema if root is None else root, fill=False).value(schema, depth, 0)


def instance(schema: Any) -> Any:
    """A value valid against ``schema`` that fills it: optional properties and array items
    included (up to :data:`FILL_DEPTH` levels deep)."""
    return _Gen(schema, fill=True).value(schema, 0, 0)


class _Gen:
    __slots__ = ("fill", "root")

    def __init__(self, root: Any, fill: bool) -> None:
        self.root = root
        self.fill = fill

    def value(self, schema: Any, depth: int, variant: int) -> Any:
        """A value for ``schema``; different ``variant``s give different values where the
        schema allows (array items under ``uniqueItems``)."""
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return None if schema is False else {}
        ref = schema.get("$ref")
        if isinstance(ref, str):
            target = _resolve(ref, self.root)
            if len(schema) > 1 and isinstance(target, dict):  # siblings of $ref apply too (2020-12)
                rest = {k: v for k, v in schema.items() if k != "$ref"}
                target = _merge(target, [rest], self.root)
            return self.value(target, depth + 1, variant)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return _enum_choice(schema, enum, variant)
        parts = schema.get("allOf")
        if isinstance(parts, list) and parts:
            rest = {k: v for k, v in schema.items() if k != "allOf"}
            return self.value(_merge(rest, parts, self.root), depth + 1, variant)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                rest = {k: v for k, v in schema.items() if k != key}
                chosen = _pick(options, self.root)
                if rest and isinstance(chosen, dict):
                    chosen = _merge(rest, [chosen], self.root)
                return self.value(chosen, depth + 1, variant)
        return self._typed(schema, _type_of(schema), depth, variant)

    def _typed(self, schema: dict[str, Any], kind: str, depth: int, variant: int) -> Any:
        if kind == "object":
            return self._object(schema, depth, variant)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "string":
            return _string(schema, variant)
        if kind in ("integer", "number"):
            return _number(schema, kind == "integer", variant)
        if kind == "boolean":
            return variant % 2 == 1
        if kind == "null":
            return None
        return "sim" if variant == 0 else f"sim{variant}"

    def _object(self, schema: dict[str, Any], depth: int, variant: int) -> dict[str, Any]:
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        required = schema.get("required")
        names = [n for n in required if isinstance(n, str)] if isinstance(required, list) else []
        names = list(dict.fromkeys(names))
        _add_dependents(names, schema.get("dependentRequired"))
        most = _int(schema.get("maxProperties"), -1)
        want = _int(schema.get("minProperties"), 0)
        if self.fill and depth < FILL_DEPTH:
            want = max(want, len(set(names) | {n for n, sub in props.items() if sub is not False}))
        order = schema.get("propertyOrdering")
        declared = [n for n in order if n in props] if isinstance(order, list) else []
        declared += [n for n in props if n not in declared]
        for name in declared:
            if len(names) >= want or (most >= 0 and len(names) >= most):
                break
            if name not in names and props[name] is not False:
                names.append(name)
                _add_dependents(names, schema.get("dependentRequired"))
        extra = schema.get("additionalProperties")
        index = 0
        while len(names) < want and extra is not False and (most < 0 or len(names) < most):
            index += 1
            if f"extra{index}" not in names:
                names.append(f"extra{index}")
        out: dict[str, Any] = {}
        for i, name in enumerate(_ordered(names, declared)):
            sub = props.get(name, extra if isinstance(extra, dict) else {})
            out[name] = self.value(sub, depth + 1, variant if i == 0 else 0)
        return out

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        count = _int(schema.get("minItems"), 0)
        most = _int(schema.get("maxItems"), -1)
        if self.fill and depth < FILL_DEPTH and count == 0 and most != 0:
            count = 1
        contains = schema.get("contains")
        if isinstance(contains, dict):
            count = max(count, _int(schema.get("minContains"), 1))
        prefix = schema.get("prefixItems")
        prefix = prefix if isinstance(prefix, list) else []
        count = max(count, len(prefix))
        if most >= 0:
            count = max(min(count, most), _int(schema.get("minItems"), 0))
        items = schema.get("items", {})
        unique = schema.get("uniqueItems") is True
        out = []
        for i in range(count):
            if i < len(prefix):
                sub = prefix[i]
            elif isinstance(contains, dict) and i < _int(schema.get("minContains"), 1):
                sub = _merge(items, [contains], self.root) if isinstance(items, dict) else contains
            else:
                sub = items
            out.append(self.value(sub, depth + 1, i if unique else 0))
        return out


def _add_dependents(names: list[str], dependents: Any) -> None:
    if not isinstance(dependents, dict):
        return
    for name in names:  # names grows while iterating: dependents of dependents too
        more = dependents.get(name)
        if isinstance(more, list):
            names.extend(n for n in more if isinstance(n, str) and n not in names)


def _ordered(names: list[str], declared: list[str]) -> list[str]:
    """Declared properties in their declared order, then the rest."""
    chosen = set(names)
    return [n for n in declared if n in chosen] + [n for n in names if n not in declared]


def _enum_choice(schema: dict[str, Any], enum: list[Any], variant: int) -> Any:
    values = enum
    if schema.get("type") is not None and schema.get("nullable") is not True:
        typed = [v for v in enum if v is not None]
        values = typed or enum
    return values[variant % len(values)]


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if isinstance(k, str) and k.lower() != "null"), "null")
    if isinstance(kind, str) and kind:
        return kind.lower()
    if any(k in schema for k in ("properties", "required", "additionalProperties", "minProperties")):
        return "object"
    if any(k in schema for k in ("items", "prefixItems", "minItems", "contains")):
        return "array"
    if any(k in schema for k in ("minLength", "maxLength", "pattern", "format")):
        return "string"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
        return "number"
    return ""


def _pick(options: list[Any], root: Any) -> Any:
    for option in options:
        resolved = _resolve(option["$ref"], root) if isinstance(option, dict) and "$ref" in option else option
        if isinstance(resolved, dict) and _type_of(resolved) != "null":
            return option
    return options[0]


def _merge(schema: dict[str, Any], parts: list[Any], root: Any) -> dict[str, Any]:
    """One schema holding ``schema`` and every part of an ``allOf``: properties and required
    lists joined, types intersected, bounds tightened, the first value kept for other keys. A
    property whose parts contradict each other becomes ``False`` (never filled in unless
    required); closed parts (``additionalProperties: false``) keep only the names all of them
    declare."""
    merged: dict[str, Any] = dict(schema)
    props: dict[str, Any] = dict(merged.get("properties") or {})
    required: list[Any] = list(merged.get("required") or [])
    allowed = set(props) if schema.get("additionalProperties") is False else None
    for part in parts:
        seen = 0
        while isinstance(part, dict) and isinstance(part.get("$ref"), str) and seen < _MAX_DEPTH:
            part, seen = _resolve(part["$ref"], root), seen + 1
        if not isinstance(part, dict):
            continue
        inner = part.get("allOf")
        if isinstance(inner, list):
            part = _merge({k: v for k, v in part.items() if k != "allOf"}, inner, root)
        if part.get("additionalProperties") is False:
            names = set(part.get("properties") or {})
            allowed = names if allowed is None else allowed & names
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                for name, sub in value.items():
                    old = props.get(name)
                    if isinstance(old, dict) and isinstance(sub, dict):
                        props[name] = _merge(old, [sub], root)
                        if _contradicts(props[name]):
                            props[name] = False
                    elif old is False or sub is False:
                        props[name] = False
                    else:
                        props[name] = sub
            elif key == "required" and isinstance(value, list):
                required.extend(n for n in value if n not in required)
            elif key == "type" and "type" in merged:
                merged["type"] = _common_type(merged["type"], value)
            elif key in ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"):
                merged[key] = _tighter(merged.get(key), value, max)
            elif key in ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"):
                merged[key] = _tighter(merged.get(key), value, min)
            else:
                merged.setdefault(key, value)
    if allowed is not None:
        props = {k: v for k, v in props.items() if k in allowed}
        merged["additionalProperties"] = False
    if props:
        merged["properties"] = props
    if required:
        merged["required"] = required
    return merged


def _types(value: Any) -> set[str]:
    names = value if isinstance(value, list) else [value]
    return {n.lower() for n in names if isinstance(n, str)}


def _common_type(a: Any, b: Any) -> Any:
    """The types both ``a`` and ``b`` allow (an integer is a number); ``[]`` when none."""
    left, right = _types(a), _types(b)
    common = left & right
    if ("number" in left and "integer" in right) or ("integer" in left and "number" in right):
        common.add("integer")
    order = [t for t in (a if isinstance(a, list) else [a]) if isinstance(t, str) and t.lower() in common]
    order += sorted(t for t in common if t not in {o.lower() for o in order})
    return order[0] if len(order) == 1 else order


def _contradicts(schema: dict[str, Any]) -> bool:
    """Plain contradictions a merge can leave: no common type, or a lower bound above an upper."""
    if "type" in schema and not _types(schema["type"]):
        return True
    for low, high in (("minimum", "maximum"), ("minLength", "maxLength"), ("minItems", "maxItems")):
        a, b = _num(schema.get(low)), _num(schema.get(high))
        if a is not None and b is not None and a > b:
            return True
    a, b = _num(schema.get("exclusiveMinimum")), _num(schema.get("maximum"))
    return a is not None and b is not None and a >= b


def _tighter(old: Any, new: Any, pick: Any) -> Any:
    a, b = _num(old), _num(new)
    if a is None:
        return new
    if b is None:
        return old
    return pick(a, b)


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
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return {}
    return node


def _string(schema: dict[str, Any], variant: int) -> str:
    low = _int(schema.get("minLength"), 0)
    high = _int(schema.get("maxLength"), -1)
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        found = sample_pattern(pattern, low, high, variant)
        if found is not None:
            return found
    fmt = schema.get("format")
    text = _FORMATS.get(fmt, "sim") if isinstance(fmt, str) else "sim"
    tag = _base36(variant) if variant else ""
    if tag and not isinstance(fmt, str):
        text += tag
    if len(text) < low:
        text += "x" * (low - len(text))
    if 0 <= high < len(text):
        text = text[: high - len(tag)] + tag if len(tag) <= high else text[:high]
    return text


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def _number(schema: dict[str, Any], integer: bool, variant: int) -> int | float:
    low, low_open = _bound(schema, "minimum", "exclusiveMinimum")
    high, high_open = _bound(schema, "maximum", "exclusiveMaximum")
    step = _num(schema.get("multipleOf"))
    if step is not None and step <= 0:
        step = None

    def fits(x: float) -> bool:
        if low is not None and (x < low or (low_open and x == low)):
            return False
        if high is not None and (x > high or (high_open and x == high)):
            return False
        if integer and x != int(x):
            return False
        return step is None or _multiple(x, step)

    # Candidates nearest zero first: 0, then from the bound that rules zero out, on the grid.
    unit = step if step is not None else 1.0
    found: float | None = None
    if fits(0.0):
        found = 0.0
    elif low is not None and (high is None or low > 0 or (low_open and low == 0)):
        first = math.ceil(low / unit)
        found = next((k * unit for k in range(first, first + 1000) if fits(k * unit)), None)
    elif high is not None:
        first = math.floor(high / unit)
        found = next((k * unit for k in range(first, first - 1000, -1) if fits(k * unit)), None)
    if found is None:  # no grid point found: the bounds alone
        if step is None and not integer and low is not None and high is not None:
            found = (low + high) / 2
        else:
            found = low if low is not None else high if high is not None else 0.0
    if variant:
        for delta in (variant * unit, -variant * unit):
            if fits(found + delta):
                found += delta
                break
    return int(found) if integer else float(found)


def _multiple(x: float, step: float) -> bool:
    q = x / step
    return abs(q - round(q)) < 1e-9


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


_SCHEMA_KEYS = frozenset(
    ("type", "properties", "items", "enum", "const", "$ref", "anyOf", "oneOf", "allOf", "$defs", "required")
)


def looks_like_schema(value: Any) -> bool:
    """Whether a JSON value found in a prompt is a JSON schema rather than an instance of one:
    a ``properties`` map of schemas, or a ``type`` name with other schema keywords."""
    if not isinstance(value, dict):
        return False
    props = value.get("properties")
    if isinstance(props, dict):
        return bool(props) and all(isinstance(v, dict) for v in props.values())
    kind = value.get("type")
    return (
        isinstance(kind, str) and _TYPE_NAME.match(kind) is not None and len(_SCHEMA_KEYS & value.keys()) > 1
    )


_TYPE_NAME = re.compile(r"^(object|array|string|integer|number|boolean|null)$", re.IGNORECASE)
