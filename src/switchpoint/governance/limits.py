"""Rate and concurrency limits: what a request takes from its key, its team and its deployment.

``rpm`` and ``tpm`` are sliding 60-second windows in the shared state (a request's tokens
come back 60 s after it was admitted, so no minute ever admits more than the limit); ``tpm`` is
reserved from an estimate (prompt tokens plus the output the request may produce) and corrected
to the real usage when the request ends. ``max_parallel`` caps requests in flight.

Everything per key is computed once per principal (:class:`CallerLimits`), so a request only
fills in its amounts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from switchpoint.config import Deployment
from switchpoint.governance.principal import Limits, Principal
from switchpoint.governance.state import Check
from switchpoint.tokens import DEFAULT_SAFETY_FACTOR

#: The character-based prompt estimate is raised by this much before it is reserved (dense text
#: runs more tokens per character); the real count replaces it when the request ends.
INPUT_MARGIN = 1.25


class Limit:
    """One limit of one holder: ``what`` is rpm, tpm or parallel; ``who`` names the holder
    in messages (``key 'ci'``, ``team 'ml'``, ``deployment 'gpt-a'``)."""

    __slots__ = ("key", "limit", "what", "who")

    def __init__(self, what: str, key: str, limit: int, who: str) -> None:
        self.what = what
        self.key = key
        self.limit = limit
        self.who = who

    def check(self, tokens: int) -> Check:
        if self.what == "rpm":
            return Check("window", self.key, self.limit, 1.0)
        if self.what == "tpm":
            return Check("window", self.key, self.limit, float(tokens))
        return Check("slot", self.key, self.limit)


def _of(limits: Limits, prefix: str, who: str) -> list[Limit]:
    out: list[Limit] = []
    if limits.rpm is not None:
        out.append(Limit("rpm", f"{prefix}:rpm", limits.rpm, who))
    if limits.tpm is not None:
        out.append(Limit("tpm", f"{prefix}:tpm", limits.tpm, who))
    if limits.max_parallel is not None:
        out.append(Limit("parallel", f"{prefix}:par", limits.max_parallel, who))
    return out


def caller_limits(principal: Principal) -> list[Limit]:
    """The key's limits, then its team's (each binds every key of the team)."""
    out: list[Limit] = []
    if principal.key_id is not None:
        out += _of(principal.limits, f"k:{principal.key_id}", f"key '{principal.name}'")
    team = principal.team
    if team is not None:
        out += _of(team.limits, f"t:{team.id}", f"team '{team.name}'")
    return out


def deployment_limits(dep: Deployment) -> list[Limit]:
    lim = dep.limits
    if lim is None:
        return []
    return _of(
        Limits(rpm=lim.rpm, tpm=lim.tpm, max_parallel=lim.max_parallel),
        f"d:{dep.name}",
        f"deployment '{dep.name}'",
    )


def family_factor(family: str) -> float:
    """Tokens on a deployment of ``family`` per token of the o200k basis (1 for OpenAI's own
    tokenizer, the safety factor for tokenizers that are not public)."""
    return 1.0 if family == "openai" else DEFAULT_SAFETY_FACTOR


#: Characters per token of the character-based estimate (routing's figures: ASCII text, other).
_ASCII_CHARS, _OTHER_CHARS = 4.0, 1.5


def text_tokens(texts: Sequence[str]) -> int:
    """A character-based token estimate of ``texts`` (an embeddings request's inputs), to be
    reserved with ``exact=False`` (the reservation raises it by ``INPUT_MARGIN``)."""
    n = 0.0
    for text in texts:
        n += len(text) / (_ASCII_CHARS if text.isascii() else _OTHER_CHARS)
    return math.ceil(n)


# --- response headers ------------------------------------------------------------------------


#: ``duration``'s answers for 1-60 s, by the whole seconds.
WHOLE_SECONDS = tuple(f"{s}s" for s in range(61))


def duration(seconds: float) -> str:
    """OpenAI's reset format: ``1s``, ``6m0s``, ``20ms``."""
    if seconds >= 1.0:
        whole = math.ceil(seconds)
        if whole <= 60:
            return WHOLE_SECONDS[whole]
        minutes, secs = divmod(whole, 60)
        return f"{minutes}m{secs}s"
    if seconds <= 0:
        return "0s"
    return f"{max(1, round(seconds * 1000))}ms"
