"""The governance State protocol: the same tests against the in-memory and the Redis backend."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from switchpoint.governance.state import BUCKET_S, Adjust, Check, MemoryState, RedisState, State

REDIS_URL = os.environ.get("SWITCHPOINT_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _redis_up() -> bool:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


REDIS_UP = _redis_up()


async def _cleanup(prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[State]:
    if request.param == "memory":
        yield MemoryState()
        return
    if not REDIS_UP:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    prefix = f"sp-test-{uuid.uuid4().hex[:12]}:"
    s = RedisState(REDIS_URL, prefix)
    try:
        yield s
    finally:
        await s.close()
        await _cleanup(prefix)


async def test_window_admits_up_to_its_limit_and_says_when_room_comes_back(state: State) -> None:
    checks = [Check("window", "rpm:k", 3)]
    for i in range(3):
        out = await state.admit(f"r{i}", checks)
        assert out.refused is None
        assert out.used == [i + 1]
    out = await state.admit("r3", checks)
    assert out.refused == 0
    # memory: back at most BUCKET_S after the 60 s, never sooner; Redis: at 60 s
    assert 55 < out.retry_after <= 60 + BUCKET_S
    assert out.used == [3]
    assert 55 < out.reset[0] <= 60 + BUCKET_S


async def test_all_or_none(state: State) -> None:
    """A refusal on the second check takes nothing from the first."""
    await state.admit("a", [Check("budget", "b:x", 1.0, 0.9)])
    out = await state.admit("b", [Check("window", "rpm:y", 10), Check("budget", "b:x", 1.0, 0.2)])
    assert out.refused == 1
    out = await state.admit("c", [Check("window", "rpm:y", 1)])
    assert out.refused is None  # rpm:y was not taken by the refused request
    assert await state.spent("b:x") == pytest.approx(0.9)


async def test_tpm_settles_to_the_real_usage(state: State) -> None:
    checks = [Check("window", "tpm:k", 1000, 800)]
    assert (await state.admit("r1", checks)).refused is None
    assert (await state.admit("r2", [Check("window", "tpm:k", 1000, 300)])).refused == 0
    state.settle("r1", [Adjust("window", "tpm:k", -700)])  # it used 100
    await state.drain()
    out = await state.admit("r2", [Check("window", "tpm:k", 1000, 300)])
    assert out.refused is None
    assert out.used == [pytest.approx(400)]


async def test_a_request_above_the_whole_limit_passes_only_an_empty_window(state: State) -> None:
    assert (await state.admit("big", [Check("window", "tpm:z", 100, 500)])).refused is None
    assert (await state.admit("next", [Check("window", "tpm:z", 100, 1)])).refused == 0


async def test_slots_are_given_back(state: State) -> None:
    checks = [Check("slot", "par:k", 2)]
    assert (await state.admit("a", checks)).refused is None
    assert (await state.admit("b", checks)).refused is None
    assert (await state.admit("c", checks)).refused == 0
    state.settle("a", [Adjust("slot", "par:k")])
    await state.drain()
    assert (await state.admit("c", checks)).refused is None


async def test_budget_reserve_and_settle(state: State) -> None:
    until = time.time() + 3600
    c = Check("budget", "b:k", 1.0, 0.6, until)
    assert (await state.admit("a", [c])).refused is None
    out = await state.admit("b", [c])
    assert out.refused == 0
    assert 3500 < out.retry_after <= 3600
    state.settle("a", [Adjust("budget", "b:k", -0.5, until)])  # it cost 0.1
    await state.drain()
    assert await state.spent("b:k") == pytest.approx(0.1)
    assert (await state.admit("b", [c])).refused is None
    assert await state.spent("b:k") == pytest.approx(0.7)


async def test_seed_sets_only_an_unknown_budget(state: State) -> None:
    until = time.time() + 60
    await state.seed("b:s", 0.25, until)
    await state.seed("b:s", 0.99, until)
    assert await state.spent("b:s") == pytest.approx(0.25)


async def test_latch_fires_once(state: State) -> None:
    until = time.time() + 60
    results = await asyncio.gather(*[state.latch("alert:x", until) for _ in range(20)])
    assert sum(results) == 1


async def test_many_coroutines_race_for_the_last_slot_and_the_last_dollar(state: State) -> None:
    until = time.time() + 3600
    checks = [Check("slot", "par:race", 5), Check("budget", "b:race", 1.0, 0.1, until)]
    outs = await asyncio.gather(*[state.admit(f"r{i}", checks) for i in range(50)])
    assert sum(o.refused is None for o in outs) == 5  # the slots bind first
    for i, o in enumerate(outs):
        if o.refused is None:
            state.settle(f"r{i}", [Adjust("slot", "par:race")])
    await state.drain()
    outs = await asyncio.gather(*[state.admit(f"s{i}", checks[1:]) for i in range(50)])
    assert sum(o.refused is None for o in outs) == 5  # $0.50 left, $0.10 each
    assert await state.spent("b:race") == pytest.approx(1.0)


async def test_two_clients_share_one_redis() -> None:
    """Two RedisState objects (two processes) see each other's reservations."""
    if not REDIS_UP:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    prefix = f"sp-test-{uuid.uuid4().hex[:12]}:"
    a, b = RedisState(REDIS_URL, prefix), RedisState(REDIS_URL, prefix)
    try:
        checks = [Check("window", "rpm:shared", 10)]
        outs = await asyncio.gather(*[(a if i % 2 else b).admit(f"r{i}", checks) for i in range(30)])
        assert sum(o.refused is None for o in outs) == 10
    finally:
        await a.close()
        await b.close()
        await _cleanup(prefix)


async def test_the_memory_states_prepared_path_puts_back_what_a_refusal_took() -> None:
    """The gate's usual path (checks resolved once) is all-or-none too."""
    s = MemoryState()
    until = time.time() + 3600
    items = s.prepare(
        [
            Check("window", "rpm:p", 10),
            Check("window", "tpm:p", 1000, 0),
            Check("slot", "par:p", 5),
            Check("budget", "b:p", 1.0, 0, until),
        ]
    )
    out = s.admit_prepared("a", items, 300.0, 0.9)
    assert out.refused is None and out.used == [1.0, 300.0, 1.0, pytest.approx(0.9)]
    out = s.admit_prepared("b", items, 300.0, 0.2)  # the budget refuses: nothing else is kept
    assert out.refused == 3
    assert s.admit_now("c", [Check("window", "rpm:p", 2)]).refused is None  # rpm held "a" only
    assert s.admit_now("c", [Check("window", "tpm:p", 1000, 700)]).refused is None  # 300 + 700
    assert s.admit_now("d", [Check("slot", "par:p", 2)]).refused is None  # "a" and "d" only
    assert await s.spent("b:p") == pytest.approx(0.9)
    levels = s.settle_prepared("a", items, -250.0, -0.8)  # it used 50 tokens and cost $0.10
    assert levels == [pytest.approx(0.1)]
    assert s.admit_now("e", [Check("window", "tpm:p", 1000, 250)]).refused is None  # 50 + 700 + 250


async def test_the_fast_redis_connection_answers_errors_and_reconnects() -> None:
    if not REDIS_UP:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    from switchpoint.governance.resp import FastRedis, RespError

    fast = FastRedis(REDIS_URL)
    try:
        with pytest.raises(RespError, match="NOSCRIPT"):
            await fast.call(b"EVALSHA", b"0" * 40, b"0")
        assert await fast.call(b"PING") == b"PONG"
        # many calls in flight on one connection: each gets its own answer
        answers = await asyncio.gather(*[fast.call(b"ECHO", str(i).encode()) for i in range(200)])
        assert answers == [str(i).encode() for i in range(200)]
        assert fast._proto is not None and fast._proto.transport is not None
        fast._proto.transport.close()  # the connection drops
        await asyncio.sleep(0.05)
        assert await fast.call(b"ECHO", b"back") == b"back"
    finally:
        await fast.close()


async def test_a_redis_state_reloads_its_scripts_when_redis_lost_them() -> None:
    """A Redis restarted (or SCRIPT FLUSHed) no longer knows the scripts: they are sent again."""
    if not REDIS_UP:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    prefix = f"sp-test-{uuid.uuid4().hex[:12]}:"
    s = RedisState(REDIS_URL, prefix)
    try:
        s._sha = {name: b"f" * 40 for name in s._sha}  # as if this Redis did not know them
        out = await s.admit("r", [Check("window", "rpm:reload", 5)])
        assert out.refused is None and out.used == [1.0]
        s.settle("r", [Adjust("slot", "par:reload")])
        await s.drain()
        assert s.settle_failures == 0
    finally:
        await s.close()
        await _cleanup(prefix)
