"""A string that a JSON-schema ``pattern`` accepts, for the patterns schemas use in practice.

A small reader of the regular-expression syntax common to ECMA-262 and Python: literals and
escapes (``\\d``, ``\\w``, ``\\s``, ``\\.``), ``.``, character classes with ranges and negation,
groups (capturing, ``(?:…)``, named) with ``|``, the quantifiers ``? * + {n} {n,} {n,m}`` (lazy or
not) and the anchors ``^ $ \\b``. Each atom is repeated its minimum number of times, more when a
``minLength`` asks for it. The result is checked with :mod:`re`; a pattern outside the subset,
or a result that does not match, gives None (the caller falls back).
"""

from __future__ import annotations

import re
from typing import Any

_MAX_REPEAT = 64
_DIGITS = "0123456789"
_WORD = "abcdefghijklmnopqrstuvwxyz" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + _DIGITS + "_"
_PRINTABLE = [chr(c) for c in range(0x20, 0x7F)]


class _Unsupported(Exception):
    pass


def sample(pattern: str, min_length: int = 0, max_length: int = -1, variant: int = 0) -> str | None:
    """A string ``re.search(pattern, s)`` accepts, of ``min_length``..``max_length`` characters
    where the pattern lets it be; None when none is found."""
    try:
        compiled = re.compile(pattern)
        node, end = _Reader(pattern).alternation(0)
        if end != len(pattern):
            return None
    except (re.error, _Unsupported, IndexError, ValueError, RecursionError):
        return None
    for extra in (0, 1, 2, 4, 8, 16) if min_length else (0,):
        for choice in (variant, 0) if variant else (0,):
            text = _render(node, extra, choice)
            if min_length and len(text) < min_length:
                continue
            if max_length >= 0 and len(text) > max_length:
                continue
            if compiled.search(text) is not None:
                return text
    return None


# A node: ("lit", chars) one of chars; ("seq", [nodes]); ("alt", [nodes]); ("rep", node, lo, hi).
_Node = tuple[Any, ...]


class _Reader:
    __slots__ = ("p",)

    def __init__(self, pattern: str) -> None:
        self.p = pattern

    def alternation(self, i: int) -> tuple[_Node, int]:
        options = []
        seq, i = self.sequence(i)
        options.append(seq)
        while i < len(self.p) and self.p[i] == "|":
            seq, i = self.sequence(i + 1)
            options.append(seq)
        return (("alt", options) if len(options) > 1 else options[0]), i

    def sequence(self, i: int) -> tuple[_Node, int]:
        items: list[_Node] = []
        p = self.p
        while i < len(p) and p[i] not in "|)":
            atom, i = self.atom(i)
            if i < len(p) and p[i] in "?*+{":
                lo, hi, i = self.quantifier(i)
                if i < len(p) and p[i] in "?+":  # lazy or possessive
                    i += 1
                atom = ("rep", atom, lo, hi)
            items.append(atom)
        return ("seq", items), i

    def quantifier(self, i: int) -> tuple[int, int, int]:
        c = self.p[i]
        if c == "?":
            return 0, 1, i + 1
        if c == "*":
            return 0, _MAX_REPEAT, i + 1
        if c == "+":
            return 1, _MAX_REPEAT, i + 1
        m = re.compile(r"\{(\d+)(,(\d*))?\}").match(self.p, i)
        if m is None:
            raise _Unsupported("brace")
        lo = int(m.group(1))
        hi = lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else lo + _MAX_REPEAT)
        return lo, hi, m.end()

    def atom(self, i: int) -> tuple[_Node, int]:
        p = self.p
        c = p[i]
        if c in "^$":
            return ("seq", []), i + 1
        if c == ".":
            return ("lit", "a"), i + 1
        if c == "[":
            return self.char_class(i + 1)
        if c == "(":
            if p.startswith("(?:", i):
                i += 3
            elif p.startswith("(?P<", i) or p.startswith("(?<", i):
                if p.startswith("(?<=", i) or p.startswith("(?<!", i):
                    raise _Unsupported("lookbehind")
                i = p.index(">", i) + 1
            elif p.startswith("(?", i):
                raise _Unsupported("group flags or lookaround")
            else:
                i += 1
            node, i = self.alternation(i)
            if i >= len(p) or p[i] != ")":
                raise _Unsupported("unclosed group")
            return node, i + 1
        if c == "\\":
            return self.escape(i + 1)
        return ("lit", c), i + 1

    def escape(self, i: int) -> tuple[_Node, int]:
        c = self.p[i]
        if c == "d":
            return ("lit", _DIGITS), i + 1
        if c == "w":
            return ("lit", _WORD), i + 1
        if c == "s":
            return ("lit", " "), i + 1
        if c in "DWS":
            return ("lit", {"D": "a", "W": "-", "S": "a"}[c]), i + 1
        if c in "bBAZz":
            return ("seq", []), i + 1
        if c in "nrtfv":
            return ("lit", {"n": "\n", "r": "\r", "t": "\t", "f": "\f", "v": "\v"}[c]), i + 1
        if c == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", self.p[i + 1 : i + 5]):
            return ("lit", chr(int(self.p[i + 1 : i + 5], 16))), i + 5
        if c == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", self.p[i + 1 : i + 3]):
            return ("lit", chr(int(self.p[i + 1 : i + 3], 16))), i + 3
        if c.isalnum():
            raise _Unsupported(f"escape \\{c}")
        return ("lit", c), i + 1

    def char_class(self, i: int) -> tuple[_Node, int]:
        p = self.p
        negate = i < len(p) and p[i] == "^"
        if negate:
            i += 1
        chars: set[str] = set()
        first = True
        while i < len(p) and (p[i] != "]" or first):
            first = False
            c, i = self._class_char(i)
            if i + 1 < len(p) and p[i] == "-" and p[i + 1] != "]" and len(c) == 1:
                end, i = self._class_char(i + 1)
                if len(end) != 1 or ord(end) < ord(c):
                    raise _Unsupported("range")
                chars.update(chr(x) for x in range(ord(c), min(ord(end), ord(c) + 512) + 1))
            else:
                chars.update(c)
        if i >= len(p):
            raise _Unsupported("unclosed class")
        if negate:
            allowed = "".join(sorted((ch for ch in _PRINTABLE if ch not in chars), key=_preference))
        else:
            allowed = "".join(sorted(chars, key=_preference))
        if not allowed:
            raise _Unsupported("empty class")
        return ("lit", allowed), i + 1

    def _class_char(self, i: int) -> tuple[str, int]:
        c = self.p[i]
        if c != "\\":
            return c, i + 1
        node, i = self.escape(i + 1)
        return (node[1] if node[0] == "lit" else ""), i


def _preference(ch: str) -> tuple[int, str]:
    """Letters first, then digits, then the rest: samples read like words."""
    return (0 if ch.isalpha() else 1 if ch.isdigit() else 2, ch)


def _render(node: _Node, extra: int, variant: int) -> str:
    """The sample: each atom its minimum times plus ``extra``; the choice points, in order,
    take the digits of ``variant`` (mixed radix), so different variants differ."""
    state = [variant]

    def choose(n: int) -> int:  # mixed radix: distinct variants give distinct strings
        index = state[0] % n
        state[0] //= n
        return index

    def walk(node: _Node) -> str:
        kind = node[0]
        if kind == "lit":
            chars: str = node[1]
            return chars[choose(len(chars))] if state[0] and len(chars) > 1 else chars[0]
        if kind == "seq":
            return "".join(walk(n) for n in node[1])
        if kind == "alt":
            options = node[1]
            return walk(options[choose(len(options))] if state[0] else options[0])
        _, inner, lo, hi = node
        return "".join(walk(inner) for _ in range(min(hi, lo + extra)))

    return walk(node)
