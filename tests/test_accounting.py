"""Accounting: records are booked after the response, in batches, never blocking a request."""

from __future__ import annotations

import asyncio
import logging

import pytest

from switchpoint.accounting import Accounting
from switchpoint.canonical import Usage
from switchpoint.records import Attempt, RequestRecord


def _record(
    rid: str, *, status: int = 200, usage: Usage | None = None, deployment: str = "d"
) -> RequestRecord:
    attempt = Attempt(deployment=deployment, provider="p", family="openai", status=status, usage=usage)
    return RequestRecord(
        request_id=rid,
        started_at=0.0,
        dialect="openai",
        endpoint="chat",
        model="m",
        status=status,
        attempts=(attempt,),
    )


async def test_records_are_booked_once_the_loop_iteration_ends() -> None:
    acc = Accounting({})
    acc.start()
    for i in range(3):
        acc.submit(_record(f"r{i}", usage=Usage(input_tokens=10, output_tokens=2)))
    assert acc.requests == 0, "nothing is booked on the request path"
    await asyncio.sleep(0)
    assert acc.requests == 3 and [r.request_id for r, _ in acc.recent] == ["r0", "r1", "r2"]
    totals = acc.totals["d"]
    assert (totals.requests, totals.input_tokens, totals.output_tokens) == (3, 30, 6)
    acc.submit(_record("r3", status=502))
    await asyncio.sleep(0)
    assert (acc.requests, acc.failed) == (4, 1)
    await acc.stop()


async def test_a_full_buffer_drops_and_counts() -> None:
    acc = Accounting({}, queue_size=2)
    acc.start()
    for i in range(5):
        acc.submit(_record(f"r{i}"))
    assert acc.dropped == 3
    await acc.flush()
    assert acc.requests == 2 and acc.snapshot()["dropped"] == 3
    acc.submit(_record("r5"))  # room again once booked
    await acc.stop()
    assert acc.requests == 3 and acc.dropped == 3


async def test_a_bad_record_is_logged_and_the_rest_are_booked(caplog: pytest.LogCaptureFixture) -> None:
    acc = Accounting({})
    acc.start()
    acc.submit(_record("ok-1"))
    acc.submit(_record("bad", usage="not usage"))  # type: ignore[arg-type]
    acc.submit(_record("ok-2"))
    with caplog.at_level(logging.ERROR, logger="switchpoint.accounting"):
        await asyncio.sleep(0)
    assert [r.request_id for r, _ in acc.recent] == ["ok-1", "ok-2"]
    assert "could not account request bad" in caplog.text


async def test_records_before_start_wait_for_it_and_stop_books_the_rest() -> None:
    acc = Accounting({})
    acc.submit(_record("early"))
    assert acc.requests == 0
    acc.start()
    await asyncio.sleep(0)
    assert acc.requests == 1
    acc.submit(_record("late"))
    await acc.stop()
    assert acc.requests == 2


def test_records_in_transit_are_not_tracked_by_the_garbage_collector() -> None:
    """A booked record waits in the ledger's buffer for up to a flush window: its structs
    (record, attempts, usage, costs, the routing decision) hold no cycles, so the collector does
    not walk them on every collection in the meantime."""
    import gc

    from switchpoint.accounting import Booked
    from switchpoint.canonical import Usage
    from switchpoint.pricing import Cost
    from switchpoint.records import Attempt, RequestRecord
    from switchpoint.routing.explain import Decision

    usage = Usage(input_tokens=3, output_tokens=2)
    attempt = Attempt(deployment="d", provider="p", family="openai", usage=usage)
    decision = Decision(model="m", candidates=())
    record = RequestRecord(
        request_id="r",
        started_at=1.0,
        dialect="openai",
        endpoint="chat",
        model="m",
        attempts=(attempt,),
        usage=usage,
        decision=decision,
        tags=("a",),
    )
    booked = Booked(record=record, cost=Cost(), attempt_costs=(Cost(),), price_version="v")
    for obj in (usage, attempt, decision, record, booked, booked.cost):
        assert not gc.is_tracked(obj), type(obj).__name__
