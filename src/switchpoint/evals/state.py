"""The run's state file: one JSON line per finished (candidate, case, repetition).

Lines are keyed by the suite hash, so a resumed run skips what is already there and a changed
suite starts over (its results are never mixed with the old ones).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from switchpoint.evals.checks import CheckResult
from switchpoint.evals.client import Outcome


class Result(msgspec.Struct, kw_only=True):
    suite_hash: str
    candidate: str
    case: str
    rep: int
    session: str
    outcome: Outcome
    checks: list[CheckResult]

    @property
    def key(self) -> str:
        return key(self.suite_hash, self.candidate, self.case, self.rep)


def key(suite_hash: str, candidate: str, case: str, rep: int) -> str:
    return f"{suite_hash}|{candidate}|{case}|{rep}"


_decoder = msgspec.json.Decoder(Result)


def read(path: Path, suite_hash: str) -> dict[str, Result]:
    """The results already in the file for this suite (a torn last line is ignored)."""
    out: dict[str, Result] = {}
    if not path.exists():
        return out
    for line in path.read_bytes().splitlines():
        try:
            result = _decoder.decode(line)
        except msgspec.DecodeError:
            continue
        if result.suite_hash == suite_hash:
            out[result.key] = result
    return out


class Appender:
    """Appends results, one flushed line each (an interruption loses at most the line in flight)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torn = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
        self._file = path.open("ab")
        if torn:  # a line cut by an interruption: the next result starts a line of its own
            self._file.write(b"\n")

    def write(self, result: Result) -> None:
        self._file.write(msgspec.json.encode(result) + b"\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
