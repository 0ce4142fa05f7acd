"""The ``batches:`` section: how the gateway runs the batches clients leave with it
(``/v1/batches``, ``/v1/messages/batches``; docs/batches.md)."""

from __future__ import annotations

import msgspec

from switchpoint.config.base import _Base


class BatchesSpec(_Base):
    #: Lines of all batches in flight at once (per process), in the low-priority lane.
    concurrency: int = 4
    #: Where uploaded and produced files are kept: a directory (made when missing), or the
    #: ledger's database when unset.
    files_dir: str | None = None
    #: The largest file ``POST /v1/files`` accepts, bytes.
    max_file_bytes: int = 200 * 1024 * 1024
    #: The most lines one batch may have.
    max_lines: int = 50_000
    #: How often (seconds) an idle runner looks for work another process left behind.
    poll_s: float = 2.0


class Batches(msgspec.Struct, frozen=True, kw_only=True):
    concurrency: int = 4
    files_dir: str | None = None
    max_file_bytes: int = 200 * 1024 * 1024
    max_lines: int = 50_000
    poll_s: float = 2.0


def resolve_batches(spec: BatchesSpec | None, problems: list[str]) -> Batches:
    if spec is None:
        return Batches()
    for name in ("concurrency", "max_file_bytes", "max_lines"):
        if getattr(spec, name) < 1:
            problems.append(f"$.batches.{name}: must be at least 1")
    if spec.poll_s <= 0:
        problems.append("$.batches.poll_s: must be positive")
    return Batches(
        concurrency=spec.concurrency,
        files_dir=spec.files_dir or None,
        max_file_bytes=spec.max_file_bytes,
        max_lines=spec.max_lines,
        poll_s=spec.poll_s,
    )
