"""The batch runner: runs the lines of the batches left with the gateway, in its lifespan.

Every line goes through the gateway's own chat path (:class:`~switchpoint.api.chat.ChatRoute`
in process: routing, resilience, the caller's key, limits and budgets, the ledger), made for
the batch's owner, in the ``low`` priority lane of the governance queue, with at most
``batches.concurrency`` lines in flight per process. Its records carry the batch flag, so the
ledger prices them with the deployment's batch discount. A line refused for a moment (429, 503)
waits as told (``retry-after``) and goes again, a few times.

Durable: the state is in the database (``store/batches.py``). Answers are written every few
lines and when the runner stops; a line is only ever taken while it is pending, so a restart
goes on with the lines not yet answered and never runs an answered one again. Each line's
request id is ``{batch_id}-{line}``, so even a line cut by a crash mid-write is booked once in
the ledger (it skips a request id it has). A batch is held by one process at a time (a lease
renewed as answers are written, given up at stop): replicas sharing a database share the work.

When every line is answered the batch is finished: an OpenAI batch gets its output file (the
2xx answers) and error file (the others), both in OpenAI's batch output format; an Anthropic
batch's results are read from its lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import msgspec

from switchpoint.api.anthropic import AnthropicDialect
from switchpoint.api.batch_forward import Forwarder
from switchpoint.api.chat import JSON, ChatRoute, Reply, error_reply
from switchpoint.api.files import FileStore
from switchpoint.api.openai import OpenAIDialect
from switchpoint.api.responses import ResponsesDialect
from switchpoint.errors import AuthenticationFailed, BadRequest, SwitchpointError
from switchpoint.governance.gate import PRIORITY_HEADER
from switchpoint.governance.keys import principal_of
from switchpoint.governance.principal import ANONYMOUS, MASTER, Principal
from switchpoint.store import batches as store
from switchpoint.store import keys as key_store

if TYPE_CHECKING:
    from switchpoint.api.app import Gateway

log = logging.getLogger("switchpoint")

#: Answers kept in memory before they are written.
FLUSH_EVERY = 32
#: Lines fetched from the database at a time.
PAGE = 256
#: A line refused with 429 / 503 goes again this many times, waiting as told (when that is at
#: most RETRY_CAP_S).
RETRIES = 5
RETRY_CAP_S = 60.0
ANTHROPIC_VERSION = "2023-06-01"


def retry_wait(reply: Reply) -> float | None:
    """How long to wait before a line refused for a moment goes again (None: it does not):
    a 503, or a 429 whose ``retry-after`` is short (a spent budget's is not)."""
    if reply.status not in (429, 503):
        return None
    text = reply.headers.get("retry-after")
    try:
        wait = float(text) if text is not None else (1.0 if reply.status == 503 else None)
    except ValueError:
        wait = None
    return wait if wait is not None and 0 <= wait <= RETRY_CAP_S else None


def line_id(batch_id: str, line: int) -> str:
    return "batch_req_" + hashlib.sha256(f"{batch_id}:{line}".encode()).hexdigest()[:24]


def output_file_id(batch_id: str, kind: str) -> str:
    return "file-" + hashlib.sha256(f"{batch_id}:{kind}".encode()).hexdigest()[:24]


def openai_output_line(batch_id: str, r: store.LineResult) -> bytes:
    """One line of an OpenAI batch's output or error file."""
    doc: dict[str, Any] = {"id": line_id(batch_id, r.line), "custom_id": r.custom_id}
    if r.status == store.CANCELED:
        doc["response"] = None
        doc["error"] = {
            "code": "batch_cancelled",
            "message": "The batch was cancelled before this request ran.",
        }
    else:
        body = msgspec.json.decode(r.result) if r.result else None
        doc["response"] = {"status_code": r.status_code, "request_id": r.request_id, "body": body}
        doc["error"] = None
    return msgspec.json.encode(doc) + b"\n"


class BatchRunner:
    """The lifespan's worker (see the module's docstring)."""

    def __init__(self, gw: Gateway, files: FileStore) -> None:
        self.gw = gw
        self.files = files
        self.id = f"{os.uname().nodename}:{os.getpid()}:{os.urandom(4).hex()}"
        self.routes = {
            "/v1/chat/completions": ChatRoute(gw, OpenAIDialect(), "chat.completions", batch=True),
            "/v1/responses": ChatRoute(gw, ResponsesDialect(), "responses", batch=True),
            "/v1/messages": ChatRoute(gw, AnthropicDialect(), "messages", batch=True),
        }
        self.forwarder = Forwarder(self)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        #: Lines run by this process (for tests and /admin views).
        self.lines_run = 0

    @property
    def stopping(self) -> bool:
        return self._stopping

    def wake(self) -> None:
        """A batch was created or cancelled: look now."""
        self._wake.set()

    async def start(self) -> None:
        if self.gw.ledger is None:
            return
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name="switchpoint-batches")

    async def stop(self, timeout_s: float) -> None:
        """Stop taking lines; the lines in flight finish (within ``timeout_s``), their answers
        are written, and the leases are given up."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await self.files.run(store.release, self.files.engine(), self.id)

    async def _loop(self) -> None:
        engine = self.files.engine()
        while not self._stopping:
            moved = False
            try:
                held = await self.files.run(store.claim, engine, self.id, time.time(), store.LEASE_S)
                for batch in held:
                    if self.stopping:
                        break
                    moved = await self._run(batch) or moved
            except Exception:
                log.exception("batch runner: a pass failed; trying again")
            if moved and not self._stopping:
                continue  # more may be waiting; a pass that only looked at providers' batches pauses
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.gw.config.batches.poll_s)

    async def principal(self, owner: str) -> Principal | SwitchpointError:
        """Who the batch's lines are made for: its owner, as the key is now (a revoked key's
        lines fail with 401)."""
        if not owner.startswith("key:"):
            return MASTER if owner == "name:master" else ANONYMOUS
        ring = self.gw.auth.ring
        if ring is None:
            return AuthenticationFailed("The key that created this batch cannot be checked (no key store)")
        row = await self.files.run(key_store.get_key, ring.engine, owner.removeprefix("key:"))
        if (
            row is None
            or row.revoked_at is not None
            or (row.expires_at is not None and row.expires_at < time.time())
        ):
            return AuthenticationFailed(
                "The key that created this batch is revoked or expired", code="invalid_api_key"
            )
        team = None
        if row.team_id is not None:
            team = (await self.files.run(key_store.teams_by_id, ring.engine, [row.team_id])).get(row.team_id)
        return principal_of(row, team)

    async def _run(self, batch: store.BatchRow) -> bool:
        """Work on the batch; False when there was nothing to do yet (a provider's batch still
        running, or the runner stopping)."""
        engine = self.files.engine()
        if batch.status == "validating":
            await self.files.run(
                lambda: store.set_status(
                    engine, batch.id, "in_progress", only_from=("validating",), in_progress_at=time.time()
                )
            )
        cancelled = batch.status == "cancelling"
        if batch.deployment is not None:  # forwarded to the provider's own Batch API
            if batch.status != "finalizing" and not await self.forwarder.run(batch):
                return False
        elif batch.status in ("validating", "in_progress"):
            cancelled = await self._lines(batch)
        if self._stopping:
            return False
        current = await self.files.run(store.get_batch, engine, batch.id)
        if current is None:
            return False
        if cancelled or current.status == "cancelling":
            await self.files.run(store.cancel_pending, engine, batch.id)
            await self._finish(current, cancelled=True)
        elif not (await self.files.run(store.counts, engine, batch.id)).get(store.PENDING):
            await self._finish(current, cancelled=False)
        return True

    async def _lines(self, batch: store.BatchRow) -> bool:
        """Run the batch's pending lines; True when it was cancelled meanwhile."""
        engine = self.files.engine()
        route = self.routes[batch.endpoint]
        caller = await self.principal(batch.owner)
        page: deque[store.Line] = deque()
        cursor = -1
        done: list[store.LineResult] = []
        fetch, write = asyncio.Lock(), asyncio.Lock()
        state = {"cancelled": False, "exhausted": False}

        async def next_line() -> store.Line | None:
            nonlocal cursor
            async with fetch:
                if not page and not state["exhausted"]:
                    page.extend(await self.files.run(store.pending_lines, engine, batch.id, cursor, PAGE))
                    state["exhausted"] = not page
                if not page:
                    return None
                line = page.popleft()
                cursor = line.line
                return line

        async def flush() -> None:
            async with write:
                taken = done[:]
                del done[:]
                if not taken:
                    return
                status = await self.files.run(
                    store.save_results, engine, batch.id, taken, self.id, time.time() + store.LEASE_S
                )
                if status == "cancelling":
                    state["cancelled"] = True

        async def worker() -> None:
            while not self._stopping and not state["cancelled"]:
                line = await next_line()
                if line is None:
                    return
                done.append(await self._line(batch, route, caller, line))
                self.lines_run += 1
                if len(done) >= FLUSH_EVERY:
                    await flush()

        try:
            await asyncio.gather(*(worker() for _ in range(self.gw.config.batches.concurrency)))
        finally:
            await flush()
        return state["cancelled"]

    async def _line(
        self, batch: store.BatchRow, route: ChatRoute, caller: Principal | SwitchpointError, line: store.Line
    ) -> store.LineResult:
        rid = f"{batch.id}-{line.line}"
        headers = {"x-request-id": rid, PRIORITY_HEADER: "low", "content-type": JSON}
        if batch.dialect == "anthropic":
            headers["anthropic-version"] = ANTHROPIC_VERSION
        reply: Reply
        if isinstance(caller, SwitchpointError):
            reply = error_reply(route.dialect, caller, dict(headers))
        else:
            body = line.body.encode()
            for attempt in range(RETRIES + 1):
                reply = await route(headers, body, caller)
                if reply.stream is not None:  # refused at creation; never kept open
                    await reply.stream.aclose()
                    reply = error_reply(
                        route.dialect, BadRequest("streaming is not supported in a batch"), {}
                    )
                wait = retry_wait(reply)
                if wait is None or attempt == RETRIES or self._stopping:
                    break
                await asyncio.sleep(wait)
        ok = reply.status < 400
        return store.LineResult(
            line=line.line,
            custom_id=line.custom_id,
            status=store.SUCCEEDED if ok else store.ERRORED,
            status_code=reply.status,
            request_id=rid,
            result=reply.body.decode(),
        )

    async def _finish(self, batch: store.BatchRow, *, cancelled: bool) -> None:
        """Every line answered (or cancelled): the output and error files, then the last status."""
        engine = self.files.engine()
        now = time.time()
        values: dict[str, Any] = {}
        if batch.dialect == "openai":
            moving = "cancelling" if cancelled else "finalizing"
            await self.files.run(lambda: store.set_status(engine, batch.id, moving, finalizing_at=now))
            out, err = bytearray(), bytearray()
            after = -1
            while True:
                rows = await self.files.run(store.results, engine, batch.id, after, 1000)
                if not rows:
                    break
                for r in rows:
                    target = out if r.status == store.SUCCEEDED else err
                    target += openai_output_line(batch.id, r)
                after = rows[-1].line
            for kind, content in (("output", out), ("error", err)):
                if content:
                    row = await self.files.save(
                        batch.owner,
                        "batch_output",
                        f"{batch.id}_{kind}.jsonl",
                        bytes(content),
                        file_id=output_file_id(batch.id, kind),
                    )
                    values[f"{kind}_file_id"] = row.id
        status = "cancelled" if cancelled else "completed"
        values["cancelled_at" if cancelled else "completed_at"] = time.time()
        await self.files.run(
            lambda: store.set_status(engine, batch.id, status, only_from=store.ACTIVE, **values)
        )
        log.info("batch %s %s", batch.id, status)
