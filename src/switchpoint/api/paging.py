"""The ``limit`` (and OpenAI's ``order``) of the list endpoints, read as each API publishes it.

* OpenAI (``/v1/files``, ``/v1/batches``, ``/v1/responses/{id}/input_items``): the schema gives
  ``limit`` no minimum and no maximum (the descriptions say 1 to 10,000 for files, 1 to 100
  otherwise). ``limit=0`` is an empty page (``has_more`` says whether there are objects), a limit
  above the maximum is the maximum; a negative one, or one that is not a whole number, is a 400.
* Anthropic (``/v1/messages/batches``, ``/v1/models``): the schema says ``minimum: 1``,
  ``maximum: 1000``; a limit outside that range is a 400, as the API's validation answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from switchpoint.errors import BadRequest

_WHOLE = re.compile(r"-?[0-9]+")


def _whole(params: Mapping[str, str], default: int) -> int:
    text = params.get("limit", str(default))
    if not _WHOLE.fullmatch(text):
        raise BadRequest(f"'limit': expected an integer, got {text!r}", param="limit")
    return int(text)


def openai_limit(params: Mapping[str, str], *, default: int, most: int) -> int:
    """The page size asked for, from 0 (an empty page) to ``most`` (a larger one is ``most``)."""
    limit = _whole(params, default)
    if limit < 0:
        raise BadRequest(f"'limit': must not be negative (0 to {most})", param="limit")
    return min(limit, most)


def anthropic_limit(params: Mapping[str, str], *, default: int = 20, most: int = 1000) -> int:
    """The page size asked for, from 1 to ``most``."""
    limit = _whole(params, default)
    if not 1 <= limit <= most:
        raise BadRequest(f"limit: expected an integer from 1 to {most}", param="limit")
    return limit


def openai_order(params: Mapping[str, str], *, default: Literal["asc", "desc"]) -> Literal["asc", "desc"]:
    """``order``: ``asc`` or ``desc`` (``default`` when absent); anything else is a 400."""
    order = params.get("order", default)
    if order == "asc":
        return "asc"
    if order == "desc":
        return "desc"
    raise BadRequest("'order': must be 'asc' or 'desc'", param="order")
