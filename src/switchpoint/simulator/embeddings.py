"""Deterministic embeddings: unit vectors built by hashing the words of the text.

Each word adds ±1 at a few hashed positions, so the same text always gives the same vector
and texts that share words point in similar directions (useful for semantic-cache tests).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import re
import sys
from array import array

_WORD = re.compile(r"\w+")
_FEATURES_PER_WORD = 4


@functools.lru_cache(maxsize=65536)
def _features(word: str) -> tuple[tuple[int, float], ...]:
    digest = hashlib.blake2b(
        word.encode("utf-8", "surrogatepass"), digest_size=4 * _FEATURES_PER_WORD
    ).digest()
    out = []
    for i in range(_FEATURES_PER_WORD):
        value = int.from_bytes(digest[4 * i : 4 * i + 4], "little")
        out.append((value >> 1, 1.0 if value & 1 else -1.0))
    return tuple(out)


def embed(text: str, dimensions: int) -> list[float]:
    """A unit vector of ``dimensions`` floats for ``text``."""
    vector = [0.0] * dimensions
    words = _WORD.findall(text.lower()) or [f"\x00{text}"]
    for word in words:
        for position, sign in _features(word):
            vector[position % dimensions] += sign
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        vector[0] = norm = 1.0
    return [v / norm for v in vector]


def to_base64(vector: list[float]) -> str:
    """The vector as little-endian float32 bytes in base64 (OpenAI ``encoding_format=base64``)."""
    packed = array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()
